package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// memConn is an in-memory net.Conn that serves a fixed byte stream, chunk
// bytes per Read (everything left when chunk is 0) and discards writes.
// When the client closes it, it notes how much of the stream the conn's
// read buffer still held: that gives the end of the last message read on a
// conn the client did not pool.
type memConn struct {
	data            []byte
	off             int
	chunk           int
	pc              *persistConn
	closed          bool
	bufferedAtClose int
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.closed {
		return 0, net.ErrClosed
	}
	if m.off == len(m.data) {
		return 0, io.EOF
	}
	if m.chunk > 0 && len(p) > m.chunk {
		p = p[:m.chunk]
	}
	n := copy(p, m.data[m.off:])
	m.off += n
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) { return len(p), nil }

func (m *memConn) Close() error {
	if !m.closed && m.pc != nil && m.pc.br != nil {
		m.bufferedAtClose = m.pc.br.Buffered()
	}
	m.closed = true
	return nil
}

func (m *memConn) LocalAddr() net.Addr              { return stringAddr("local") }
func (m *memConn) RemoteAddr() net.Addr             { return stringAddr("remote") }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// message is one final response as a reader saw it.
type message struct {
	err           error
	status        int
	header        http.Header
	contentLength int64
	body          string
	trailer       http.Header
	end           int  // offset in the stream just past the message
	reused        bool // h1 only: the conn went back to the pool
	close         bool // net/http only: the message ends the conn
	mustReject    bool // net/http only: a head of it breaks a rule h1 adds
}

var fuzzURL = &url.URL{Scheme: "http", Host: "upstream.test", Path: "/"}

// readH1 reads the stream as responses to the given methods through the
// production path: exchange (request write, readFinal, readOne's checks,
// the respBody wrapper, finish's reuse decision). A second response is read
// only if the client pooled the conn after the first.
func readH1(c *Client, stream []byte, chunk int, methods []string) []message {
	hp := &hostPool{}
	mc := &memConn{data: stream, chunk: chunk}
	pc := newPersistConn(hp, mc)
	mc.pc = pc
	defer func() {
		if !mc.closed {
			pc.close()
		}
	}()
	var out []message
	for _, method := range methods {
		hp.out = 1
		req := &http.Request{Method: method, URL: fuzzURL, Host: fuzzURL.Host, Header: http.Header{}}
		resp, _, err := c.exchange(context.Background(), pc, req, nil, 0)
		if err != nil {
			return append(out, message{err: err})
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return append(out, message{err: err})
		}
		m := message{status: resp.StatusCode, header: resp.Header, contentLength: resp.ContentLength,
			body: string(body), trailer: resp.Trailer}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return append(out, m) // the rest of the stream is not HTTP
		}
		m.reused = len(hp.idle) == 1
		if m.reused {
			hp.idle = hp.idle[:0]
			m.end = mc.off - pc.br.Buffered()
		} else {
			m.end = mc.off - mc.bufferedAtClose
		}
		out = append(out, m)
		if !m.reused {
			return out
		}
	}
	return out
}

// readStd reads the stream as net/http's client would: http.ReadResponse,
// informational responses skipped (as many as h1 allows), the body read
// fully.
func readStd(stream []byte, methods []string) []message {
	r := bytes.NewReader(stream)
	br := bufio.NewReader(r)
	var out []message
	for _, method := range methods {
		req := &http.Request{Method: method, URL: fuzzURL, Host: fuzzURL.Host, Header: http.Header{}}
		var resp *http.Response
		var err error
		mustReject := false
		for n := 0; ; n++ {
			if n > max1xxResponses {
				return append(out, message{err: errTooMany1xx})
			}
			start := len(stream) - r.Len() - br.Buffered()
			resp, err = http.ReadResponse(br, req)
			if err != nil {
				return append(out, message{err: err})
			}
			head := stream[start : len(stream)-r.Len()-br.Buffered()]
			mustReject = mustReject || breaksH1Rules(head, resp)
			if code := resp.StatusCode; code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
				break
			}
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return append(out, message{err: err})
		}
		out = append(out, message{status: resp.StatusCode, header: resp.Header, contentLength: resp.ContentLength,
			body: string(body), trailer: resp.Trailer, end: len(stream) - r.Len() - br.Buffered(), close: resp.Close,
			mustReject: mustReject})
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return out
		}
	}
	return out
}

// breaksH1Rules judges a response head that http.ReadResponse accepted by
// the rules h1 adds, independently of h1's raw scan: textproto, unlike
// ReadResponse, keeps both Content-Length and Transfer-Encoding, and it
// keeps a field name with a space as it is.
func breaksH1Rules(head []byte, resp *http.Response) bool {
	if resp.StatusCode < 100 || resp.StatusCode > 599 || resp.ProtoMajor != 1 {
		return true
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := tp.ReadLine(); err != nil {
		return false
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return false
	}
	if _, cl := h["Content-Length"]; cl {
		if _, te := h["Transfer-Encoding"]; te {
			return true
		}
	}
	for k := range h {
		if strings.ContainsAny(k, " \t") {
			return true
		}
	}
	return false
}

// deliberatelyStricter reports whether err is one of the rejections h1 adds
// on top of http.ReadResponse.
func deliberatelyStricter(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe) &&
		(pe.Err == errAmbiguousFraming || pe.Err == errBadFieldName || pe.Err == errBadStatus || pe.Err == errBadVersion)
}

// FuzzReadResponse checks h1's response reading against net/http's on a
// stream of up to two pipelined responses. Whenever h1 accepts a message,
// net/http must accept it too, with the same status, header, body, trailer
// and end in the stream. h1 rejects more, exactly where a head breaks one of
// its own rules (CL with TE, whitespace in a field name, status outside
// 100-599, version not HTTP/1.x), which breaksH1Rules judges apart from h1's
// code. chunk sets how
// many bytes each conn Read returns, which moves heads across buffer fills.
func FuzzReadResponse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s.stream), s.chunk, s.head1, s.head2)
	}
	c := newClient(f, Options{IdleConnTimeout: -1, MaxResponseHeaderBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8, head1, head2 bool) {
		// Room for a head larger than the 4 KiB read buffer; bigger inputs only
		// slow the fuzzer down (minimizing them takes minutes).
		if len(stream) > 6<<10 {
			return
		}
		methods := []string{http.MethodGet, http.MethodGet}
		if head1 {
			methods[0] = http.MethodHead
		}
		if head2 {
			methods[1] = http.MethodHead
		}
		got := readH1(c, stream, int(chunk), methods)
		want := readStd(stream, methods)
		for i, h := range got {
			var s message
			if i < len(want) {
				s = want[i]
			} else {
				s.err = errors.New("no such message")
			}
			if h.err != nil {
				if s.err == nil && !(s.mustReject && deliberatelyStricter(h.err)) {
					t.Fatalf("message %d: h1 rejects what net/http accepts: %v", i, h.err)
				}
				return
			}
			if s.err != nil {
				t.Fatalf("message %d: h1 accepts what net/http rejects (%v): %+v", i, s.err, h)
			}
			if s.mustReject {
				t.Fatalf("message %d: h1 accepts a head its own rules reject: %+v", i, h)
			}
			if h.status == http.StatusSwitchingProtocols {
				// h1's body is the upgraded stream: all that follows the head.
				s.body, h.end = string(stream[s.end:]), s.end
			}
			if h.status != s.status || h.body != s.body || h.contentLength != s.contentLength ||
				!reflect.DeepEqual(h.header, s.header) || !reflect.DeepEqual(h.trailer, s.trailer) {
				t.Fatalf("message %d differs:\nh1       %+v\nnet/http %+v", i, h, s)
			}
			if h.end != s.end {
				t.Fatalf("message %d: h1 ends it at %d, net/http at %d", i, h.end, s.end)
			}
			if h.reused && s.close {
				t.Fatalf("message %d: h1 pooled a conn that net/http would close", i)
			}
		}
	})
}

// fuzzSeeds are the starting corpus; testdata/fuzz/FuzzReadResponse holds
// more, including anything the fuzzer once found.
var fuzzSeeds = []struct {
	stream       string
	chunk        uint8
	head1, head2 bool
}{
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n", 0, false, false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1, false, false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0;last\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 7, false, false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 2\r\n\r\n", 3, false, false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0, false, false},
	{"HTTP/1.1 200 OK\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok", 0, false, false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nok", 0, false, false},
	{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 5, false, false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, true, false},
	{"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", 0, false, false},
	{"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 2, false, false},
	{"HTTP/1.1 200 OK\nContent-Length: 2\n\nokHTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n0\n\n", 0, false, false},
	{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", 0, false, false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok", 0, false, false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, false, false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", 0, false, false},
	{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 200 OK\r\n\r\nto the end", 0, false, false},
	{"HTTP/1.1 200 OK\r\n\r\nclose-delimited body", 4, false, false},
	{"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n", 0, false, false},
	{"HTTP/1.1 099 Odd\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, false, false},
	{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nraw bytes", 0, false, false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 0, false, false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 0, false, false},
	{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n", 0, false, true},
}
