package h1

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// lateWrite is something an injectingBackend owes a connection: bytes (or,
// with hangUp, a FIN) that it sends only after the client has finished the
// exchange and pooled the conn, i.e. after finish's Buffered() check. With
// now, the bytes instead ride in the same write as the response.
type lateWrite struct {
	c      net.Conn
	bytes  string
	hangUp bool
	now    bool
}

// injectingBackend is a malicious upstream. It answers every request with
// its X-Id echoed (header, and body unless HEAD), and plan may attach late
// bytes to a response: a replay of that response (an answer to a request
// nobody sent, carrying another caller's id), the body of a HEAD response,
// or a hang-up. Late writes are held until inject, which the test calls once
// the conns sit idle in the client's pool. Injecting on a timer instead
// would also hit the window between a client's idle check and its request
// write, where any HTTP/1.1 client (http.Transport included) takes those
// bytes as the answer: that race is inherent to the protocol and is not what
// these tests are about.
type injectingBackend struct {
	*rawServer
	plan    func(n int, req *http.Request, resp string) lateWrite
	served  atomic.Int32
	mu      sync.Mutex
	pending []lateWrite
}

func startInjecting(t testing.TB, tlsCfg *tls.Config, plan func(n int, req *http.Request, resp string) lateWrite) *injectingBackend {
	b := &injectingBackend{plan: plan}
	b.rawServer = startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if tlsCfg != nil {
			tc := tls.Server(c, tlsCfg)
			c, br = tc, bufio.NewReader(tc)
		}
		b.serve(c, br)
	})
	return b
}

func (b *injectingBackend) serve(c net.Conn, br *bufio.Reader) {
	for {
		req, err := readHead(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		id := req.Header.Get("X-Id")
		body := "id=" + id
		if req.URL.Path == "/big" {
			body += strings.Repeat(".", 10000)
		}
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Id: %s\r\n\r\n", len(body), id)
		if req.Method != http.MethodHead {
			resp += body
		}
		// Queued before the response goes out, so it is pending by the time
		// the client has the response.
		if late := b.plan(int(b.served.Add(1)), req, resp); late.now {
			resp += late.bytes
		} else if late.bytes != "" || late.hangUp {
			late.c = c
			b.mu.Lock()
			b.pending = append(b.pending, late)
			b.mu.Unlock()
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

// inject sends every pending late write and reports how many there were.
func (b *injectingBackend) inject() int {
	b.mu.Lock()
	pending := b.pending
	b.pending = nil
	b.mu.Unlock()
	for _, w := range pending {
		if w.hangUp {
			w.c.Close()
			continue
		}
		io.WriteString(w.c, w.bytes)
	}
	return len(pending)
}

// idRequest builds a request tagged with id. Non-HEAD requests are POSTs
// with a body that cannot be replayed, so no failure can hide behind the
// client's stale-conn retry.
func idRequest(t testing.TB, method, url, id string) *http.Request {
	var body io.Reader
	if method != http.MethodHead {
		method = http.MethodPost
		body = io.MultiReader(strings.NewReader("payload of " + id))
	}
	req := mustReq(t, method, url, body)
	req.Header.Set("X-Id", id)
	return req
}

// checkOwn fails unless resp answers the request tagged id.
func checkOwn(resp *http.Response, body, id, method string, err error) error {
	if err != nil {
		return fmt.Errorf("%s %s: %v", method, id, err)
	}
	wantBody := "id=" + id
	if method == http.MethodHead {
		wantBody = ""
	}
	if got := resp.Header.Get("X-Id"); got != id || body != wantBody {
		return fmt.Errorf("%s %s: got the response for %q with body %q", method, id, got, body)
	}
	return nil
}

func TestLateBytesOnIdleConn(t *testing.T) {
	first := func(late lateWrite) func(int, *http.Request, string) lateWrite {
		return func(n int, _ *http.Request, resp string) lateWrite {
			if n != 1 {
				return lateWrite{}
			}
			if late.bytes == "replay" {
				late.bytes = resp
			}
			return late
		}
	}
	tests := []struct {
		name        string
		firstMethod string
		late        lateWrite
		followUps   int
	}{
		// As reported: an answer to a request nobody sent, written after the
		// real one; every later caller got the previous caller's response.
		{"late second response", http.MethodPost, lateWrite{bytes: "replay"}, 3},
		{"late second response, other framing", http.MethodPost, lateWrite{bytes: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Id: injected\r\n\r\n3\r\nbad\r\n0\r\n\r\n"}, 3},
		// As reported: 18 of 30 requests after it failed.
		{"HEAD response with its body in a second write", http.MethodHead, lateWrite{bytes: "id=first"}, 30},
		{"unsolicited 408 while idle", http.MethodPost, lateWrite{bytes: "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"}, 3},
		// Without the check the follow-up POST would fail: it cannot be retried.
		{"FIN while idle", http.MethodPost, lateWrite{hangUp: true}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startInjecting(t, nil, first(tt.late))
			c := newClient(t, Options{})
			resp, body, err := do(t, c, idRequest(t, tt.firstMethod, b.URL(), "first"))
			if err := checkOwn(resp, body, "first", tt.firstMethod, err); err != nil {
				t.Fatal(err)
			}
			if n := b.inject(); n != 1 {
				t.Fatalf("%d late writes, want 1", n)
			}
			for i := 0; i < tt.followUps; i++ {
				id := fmt.Sprint("next-", i)
				resp, body, err := do(t, c, idRequest(t, http.MethodPost, b.URL(), id))
				if err := checkOwn(resp, body, id, http.MethodPost, err); err != nil {
					t.Fatal(err)
				}
			}
			// The tainted conn was dropped; its replacement served the rest.
			if n := b.conns.Load(); n != 2 {
				t.Errorf("%d conns, want 2", n)
			}
		})
	}
}

func TestLateBytesUnderConcurrency(t *testing.T) {
	// Every third response owes late bytes: a replay after a POST, the body
	// after a HEAD.
	b := startInjecting(t, nil, func(n int, req *http.Request, resp string) lateWrite {
		if n%3 != 0 {
			return lateWrite{}
		}
		if req.Method == http.MethodHead {
			return lateWrite{bytes: "id=" + req.Header.Get("X-Id")}
		}
		return lateWrite{bytes: resp}
	})
	c := newClient(t, Options{MaxIdleConnsPerHost: 16})
	const workers, rounds = 16, 50
	errs := make(chan error, workers*rounds)
	injected := 0
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				method := http.MethodPost
				if (round+w)%4 == 0 {
					method = http.MethodHead
				}
				id := fmt.Sprintf("w%d-r%d", w, round)
				resp, body, err := do(t, c, idRequest(t, method, b.URL(), id))
				if err := checkOwn(resp, body, id, method, err); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		// All conns are idle in the pool now: the late bytes land there.
		injected += b.inject()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if injected < rounds {
		t.Errorf("only %d injections: the backend did not exercise the client", injected)
	}
}

// testTLSConfigs returns a server config that writes whole 16 KiB records
// (so a response and stray bytes can share one record) and a client config
// trusting it.
func testTLSConfigs(t testing.TB) (server, client *tls.Config) {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	server = ts.TLS.Clone()
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ts.Close()
	server.NextProtos = []string{"http/1.1"}
	server.DynamicRecordSizingDisabled = true
	return server, &tls.Config{RootCAs: roots}
}

func TestLateBytesOverTLS(t *testing.T) {
	const stray = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Id: injected\r\n\r\ninjected"
	tests := []struct {
		name      string
		path      string
		late      lateWrite
		wantConns int32
	}{
		// The timeout of the idle check must not poison the TLS conn.
		{"clean conn reused", "/", lateWrite{}, 1},
		{"late record", "/", lateWrite{bytes: stray}, 2},
		// Same record as a large body: the client's TLS layer has already
		// decrypted the stray bytes when the conn goes idle, so only a read
		// through the TLS conn, not one on the socket, can see them.
		{"stray bytes inside the TLS record", "/big", lateWrite{bytes: stray, now: true}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverCfg, clientCfg := testTLSConfigs(t)
			b := startInjecting(t, serverCfg, func(n int, _ *http.Request, _ string) lateWrite {
				if n == 1 {
					return tt.late
				}
				return lateWrite{}
			})
			url := "https://" + b.ln.Addr().String()
			c := newClient(t, Options{TLSConfig: clientCfg})
			resp, err := c.RoundTrip(idRequest(t, http.MethodPost, url+tt.path, "first"))
			if err != nil {
				t.Fatal(err)
			}
			// io.Discard reads 8 KiB at a time: the tail of a large body is
			// read straight from the TLS conn, bypassing the bufio buffer.
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.Header.Get("X-Id") != "first" {
				t.Fatalf("first: %v %q", err, resp.Header.Get("X-Id"))
			}
			b.inject()
			for i := 0; i < 3; i++ {
				id := fmt.Sprint("next-", i)
				resp, body, err := do(t, c, idRequest(t, http.MethodPost, url, id))
				if err := checkOwn(resp, body, id, http.MethodPost, err); err != nil {
					t.Fatal(err)
				}
			}
			if n := b.conns.Load(); n != tt.wantConns {
				t.Errorf("%d conns, want %d", n, tt.wantConns)
			}
		})
	}
}
