package conformance

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is a raw TCP upstream. For each request on a connection it parses the head with
// http.ReadRequest, reads the body to its end (as its framing says), records both, and then
// runs the test's script, which writes whatever bytes it likes on the connection.
type backend struct {
	ln     net.Listener
	script script
	done   chan struct{} // closed when the backend shuts down; scripts' waits end with it
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	nconn int         // connections accepted so far
	reqs  []*received // every request head read, in arrival order
}

// script answers one request. It returns false to close the connection, true to read the
// next request from it.
type script func(x *exchange) bool

// received is one request as the backend saw it.
type received struct {
	Conn     int    // which accepted connection, from 1
	Method   string //
	Target   string // the request target exactly as on the request line
	Host     string // the Host field (http.ReadRequest takes it out of Header)
	Proto    string
	Header   http.Header
	Trailer  http.Header // after the body, when it was chunked
	Body     []byte      // the body bytes read, complete or not
	Ended    bool        // body reading has ended (completely or with BodyErr)
	Complete bool        // the body ended as its framing says (0-chunk, or Content-Length bytes)
	BodyErr  error       // why the body ended early
	At       time.Time   // when the head arrived
	EndedAt  time.Time   // when body reading ended
}

// exchange is what a script works with: the request and the raw connection.
type exchange struct {
	req  received
	conn net.Conn
	br   *bufio.Reader // the connection's reader; may hold bytes after the request
	b    *backend
}

// newBackend starts a raw backend on a free loopback port; it shuts down in t.Cleanup.
// A nil script answers every request 200 "ok".
func newBackend(t testing.TB, s script) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		s = reply(response("200 OK", "ok"))
	}
	b := &backend{ln: ln, script: s, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *backend) url() string { return "http://" + b.ln.Addr().String() }

func (b *backend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.nconn++
		id := b.nconn
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go b.serve(c, id)
	}
}

func (b *backend) serve(c net.Conn, id int) {
	defer b.wg.Done()
	defer func() {
		c.Close()
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		rec := &received{Conn: id, Method: req.Method, Target: req.RequestURI, Host: req.Host, Proto: req.Proto,
			Header: req.Header, At: time.Now()}
		b.mu.Lock()
		b.reqs = append(b.reqs, rec)
		b.mu.Unlock()
		body, err := io.ReadAll(req.Body)
		b.mu.Lock()
		rec.Body, rec.BodyErr, rec.Ended, rec.Complete, rec.EndedAt = body, err, true, err == nil, time.Now()
		rec.Trailer = req.Trailer.Clone()
		x := &exchange{req: *rec, conn: c, br: br, b: b}
		b.mu.Unlock()
		if err != nil || !b.script(x) {
			return
		}
	}
}

// close stops accepting, closes every connection and waits for every script to return.
func (b *backend) close() {
	close(b.done)
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// received returns a copy of every request recorded so far.
func (b *backend) received() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]received, len(b.reqs))
	for i, r := range b.reqs {
		out[i] = *r
	}
	return out
}

// openConns counts the connections accepted and not yet closed, and all accepted so far.
func (b *backend) openConns() (open, accepted int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns), b.nconn
}

// find returns the requests whose header name has the value.
func (b *backend) find(name, value string) []received {
	var out []received
	for _, r := range b.received() {
		if r.Header.Get(name) == value {
			out = append(out, r)
		}
	}
	return out
}

// completed counts requests whose body arrived complete.
func (b *backend) completed() int {
	n := 0
	for _, r := range b.received() {
		if r.Complete {
			n++
		}
	}
	return n
}

// waitFor polls until cond holds for the requests recorded, or timeout; it reports whether
// cond held.
func (b *backend) waitFor(timeout time.Duration, cond func([]received) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond(b.received()) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// write sends raw bytes on the exchange's connection.
func (x *exchange) write(s string) error {
	x.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	_, err := io.WriteString(x.conn, s)
	return err
}

// sleep waits d, or less if the backend shuts down; it reports whether the full time passed.
func (x *exchange) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-x.b.done:
		return false
	}
}

// reply is a script that answers every request with the same raw bytes and keeps the
// connection.
func reply(raw string) script {
	return func(x *exchange) bool { return x.write(raw) == nil }
}

// response renders a response with the given status ("200 OK"), fields and body, framed
// by Content-Length.
func response(status, body string, fields ...string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + status + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// aliasesOf returns the header names that normalise (lower case, "_" as "-") to
// one of names: the spellings a backend framework might read as the real field.
func aliasesOf(h http.Header, names ...string) []string {
	var out []string
	for k := range h {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		for _, want := range names {
			if n == strings.ToLower(want) {
				out = append(out, k)
			}
		}
	}
	return out
}
