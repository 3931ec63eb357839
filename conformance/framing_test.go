package conformance

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBrokenRequestBodies: a request body that breaks its own framing, ends early or
// stalls is the client's fault: the client gets 400 (408 for a stall), never a 2xx, a
// broken chunked stream also ends the connection, and the backend never sees the request
// complete (no terminating 0-chunk, no full Content-Length), so it cannot act on half a
// body.
func TestBrokenRequestBodies(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	gw := startGateway(t, gatewaySpec{server: "read_timeout: 1s", routes: route("/", "retries: 0", be)})
	chunked := request("POST /upload HTTP/1.1", "Host: gw", "Transfer-Encoding: chunked")
	for _, c := range []struct {
		name       string
		req        string
		closeWrite bool          // half-close after sending
		want       int           // status
		wantClosed bool          // the connection must be closed after the answer
		within     time.Duration // answer expected within
	}{
		{"bad chunk size", chunked + "5\r\nhello\r\nzz\r\n", false, 400, true, 5 * time.Second},
		{"chunk size overflow", chunked + "5\r\nhello\r\nffffffffffffffffffff\r\n", false, 400, true, 5 * time.Second},
		{"bare LF", chunked + "5\nhello\n0\n\n", false, 400, true, 5 * time.Second},
		{"no CRLF after chunk data", chunked + "5\r\nhelloXX0\r\n\r\n", false, 400, true, 5 * time.Second},
		{"half-close mid-body", request("POST /upload HTTP/1.1", "Host: gw", "Content-Length: 100") + "0123456789",
			true, 400, false, 5 * time.Second},
		{"stall past read_timeout", request("POST /upload HTTP/1.1", "Host: gw", "Content-Length: 100") + "0123456789",
			false, 408, false, 1*time.Second + 5*time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, gw.addr)
			if err := cl.send(c.req); err != nil {
				t.Fatal(err)
			}
			if c.closeWrite {
				cl.nc.(*net.TCPConn).CloseWrite()
			}
			resp, body, err := cl.read("POST", c.within)
			if err != nil {
				t.Fatalf("no answer within %v: %v", c.within, err)
			}
			if resp.StatusCode != c.want {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, c.want)
			}
			if c.wantClosed {
				if err := cl.closedWithin(2 * time.Second); err != nil {
					t.Errorf("after the %d: %v", resp.StatusCode, err)
				}
			}
		})
	}
	// After the parallel subtests: every request the backend saw must have ended (the
	// gateway closed the upstream connection), none of them complete.
	t.Cleanup(func() {
		settled := be.waitFor(3*time.Second, func(rs []received) bool {
			return !slices.ContainsFunc(rs, func(r received) bool { return !r.Ended })
		})
		for _, r := range be.received() {
			if r.Complete {
				t.Errorf("backend received a complete request: %s %s body %q", r.Method, r.Target, r.Body)
			}
		}
		if !settled {
			t.Errorf("an upstream request body was left open mid-body (upstream connection not closed)")
		}
	})
}

// TestFramingAmbiguity: a request whose length could be read two ways must not leave the
// connection open for a next request, since a front proxy may have read it the other way.
func TestFramingAmbiguity(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	gw := startGateway(t, gatewaySpec{routes: route("/", "retries: 0", be)})
	body := "5\r\nhello\r\n0\r\n\r\n"
	for _, c := range []struct {
		name   string
		req    string
		wantOK bool // the request must also be served (2xx)
	}{
		{"Content-Length and chunked", request("POST /both HTTP/1.1", "Host: gw", "Content-Length: 5",
			"Transfer-Encoding: chunked") + body, true},
		{"HTTP/1.0 chunked keep-alive", request("POST /old HTTP/1.0", "Host: gw", "Transfer-Encoding: chunked",
			"Connection: keep-alive") + body + request("GET /smuggled HTTP/1.1", "Host: gw"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, gw.addr)
			if err := cl.send(c.req); err != nil {
				t.Fatal(err)
			}
			resp, rbody, err := cl.read("POST", readTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantOK && (resp.StatusCode < 200 || resp.StatusCode > 299) {
				t.Errorf("status %d %q, want 2xx", resp.StatusCode, rbody)
			}
			if err := cl.closedWithin(2 * time.Second); err != nil {
				t.Errorf("after the first response (%d): %v", resp.StatusCode, err)
			}
		})
	}
	t.Cleanup(func() {
		for _, r := range be.received() {
			if r.Target == "/smuggled" {
				t.Errorf("backend received the request smuggled in the body: %s %s", r.Method, r.Target)
			}
		}
	})
}

// TestClientTrailers: of a client's trailer fields only ordinary ones travel upstream;
// fields that steer routing, framing, authentication or forwarding never do, whether as
// trailers or merged into the header.
func TestClientTrailers(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	gw := startGateway(t, gatewaySpec{routes: route("/", "retries: 0", be)})
	cl := dial(t, gw.addr)
	// Go's server refuses Content-Length and Transfer-Encoding in the Trailer declaration
	// itself, so those two arrive undeclared; trailers need no declaration.
	req := request("POST /trailers HTTP/1.1", "Host: gw", "Transfer-Encoding: chunked", "X-Id: trailers",
		"Trailer: Host, Authorization, X-Forwarded-For, X-Custom") +
		"5\r\nhello\r\n0\r\n" +
		"Host: evil.example\r\nAuthorization: Bearer stolen\r\nContent-Length: 99\r\nTransfer-Encoding: gzip\r\n" +
		"X-Forwarded-For: 6.6.6.6\r\nX-Custom: yes\r\n\r\n"
	resp, body := cl.mustRoundTrip(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	got := be.find("X-Id", "trailers")
	if len(got) != 1 {
		t.Fatalf("backend received %d requests, want 1", len(got))
	}
	r := got[0]
	if string(r.Body) != "hello" || !r.Complete {
		t.Errorf("body %q complete=%v", r.Body, r.Complete)
	}
	if v := r.Trailer.Get("X-Custom"); v != "yes" {
		t.Errorf("trailer X-Custom = %q, want yes (trailers %v)", v, r.Trailer)
	}
	for _, name := range []string{"Host", "Authorization", "Content-Length", "Transfer-Encoding", "X-Forwarded-For"} {
		if v, ok := r.Trailer[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("backend received trailer %s: %q", name, v)
		}
	}
	if r.Host != "gw" {
		t.Errorf("backend saw Host %q, want gw", r.Host)
	}
	for name, bad := range map[string]string{"Authorization": "stolen", "X-Forwarded-For": "6.6.6.6"} {
		for _, v := range r.Header.Values(name) {
			if strings.Contains(v, bad) {
				t.Errorf("trailer %s reached the backend as a header: %q", name, v)
			}
		}
	}
}
