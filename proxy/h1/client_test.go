package h1

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// echoHandler reports what the server saw (method, framing, body) and
// answers with the body either Content-Length framed or chunked.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Req-CL", strconv.FormatInt(r.ContentLength, 10))
	w.Header().Set("X-Req-TE", strings.Join(r.TransferEncoding, ","))
	w.Header().Set("X-Host", r.Host)
	w.Header().Set("X-Proto", r.Proto)
	w.Header().Set("X-Custom", r.Header.Get("X-Custom"))
	if r.URL.Query().Get("chunked") == "1" {
		w.WriteHeader(200)
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush() // forces chunked framing
		w.Write(b[len(b)/2:])
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func TestMethodsAndBodies(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(echoHandler))
	c := newClient(t, Options{})
	tests := []struct {
		name     string
		method   string
		body     string
		unknown  bool // ContentLength -1: must go out chunked
		chunked  bool // server answers chunked
		wantCL   string
		wantTE   string
		wantBody string
	}{
		{name: "GET", method: "GET", wantCL: "0"},
		{name: "GET chunked response", method: "GET", chunked: true, wantCL: "0"},
		{name: "POST content-length", method: "POST", body: "hello world", wantCL: "11", wantBody: "hello world"},
		{name: "POST chunked request", method: "POST", body: "streamed body", unknown: true, wantCL: "-1", wantTE: "chunked", wantBody: "streamed body"},
		{name: "PUT chunked both ways", method: "PUT", body: "both ways", unknown: true, chunked: true, wantCL: "-1", wantTE: "chunked", wantBody: "both ways"},
		{name: "POST empty", method: "POST", wantCL: "0"},
		{name: "HEAD", method: "HEAD", wantCL: "0"},
		{name: "DELETE", method: "DELETE", wantCL: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := srv.URL + "/echo"
			if tt.chunked {
				url += "?chunked=1"
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.unknown {
					body = io.MultiReader(body) // hides the length from NewRequest
				}
			}
			req := mustReq(t, tt.method, url, body)
			req.Header.Set("X-Custom", "v1")
			resp, got, err := do(t, c, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if tt.method != "HEAD" && got != tt.wantBody {
				t.Errorf("body %q, want %q", got, tt.wantBody)
			}
			h := resp.Header
			if h.Get("X-Method") != tt.method || h.Get("X-Req-CL") != tt.wantCL || h.Get("X-Req-TE") != tt.wantTE {
				t.Errorf("server saw method=%s CL=%s TE=%q; want %s %s %q",
					h.Get("X-Method"), h.Get("X-Req-CL"), h.Get("X-Req-TE"), tt.method, tt.wantCL, tt.wantTE)
			}
			if h.Get("X-Custom") != "v1" {
				t.Errorf("custom header lost: %q", h.Get("X-Custom"))
			}
			if tt.chunked && tt.method != "HEAD" && len(resp.TransferEncoding) == 0 {
				t.Errorf("response was not chunked")
			}
		})
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d conns for %d sequential requests, want 1", n, len(tests))
	}
}

func TestHostHeader(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(echoHandler))
	c := newClient(t, Options{})
	req := mustReq(t, "GET", srv.URL, nil)
	req.Host = "api.example.com"
	resp, _, err := do(t, c, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Host"); got != "api.example.com" {
		t.Errorf("Host %q", got)
	}
	resp, _, err = do(t, c, mustReq(t, "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Header.Get("X-Host"), strings.TrimPrefix(srv.URL, "http://"); got != want {
		t.Errorf("Host %q, want URL host %q", got, want)
	}
}

func TestTrailers(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Resp-Sum")
		w.WriteHeader(200)
		w.Write(b)
		w.Header().Set("X-Resp-Sum", fmt.Sprintf("%d:%s", len(b), r.Trailer.Get("X-Req-Sum")))
	}))
	c := newClient(t, Options{})
	req := mustReq(t, "POST", srv.URL, io.MultiReader(strings.NewReader("payload")))
	req.Trailer = http.Header{"X-Req-Sum": {"abc"}}
	resp, got, err := do(t, c, req)
	if err != nil {
		t.Fatal(err)
	}
	if got != "payload" {
		t.Errorf("body %q", got)
	}
	if ts := resp.Trailer.Get("X-Resp-Sum"); ts != "7:abc" {
		t.Errorf("trailer %q, want 7:abc (request trailer must reach the server)", ts)
	}
}

// patternReader yields n deterministic bytes without holding them in memory.
type patternReader struct{ n, off int }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if len(b) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		b[i] = byte((p.off + i) % 251)
	}
	p.off += len(b)
	return len(b), nil
}

func TestLargeBodiesStreamed(t *testing.T) {
	const size = 6 << 20
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Sum", fmt.Sprintf("%d-%x", n, h.Sum(nil)))
		io.Copy(w, &patternReader{n: size})
	}))
	c := newClient(t, Options{})
	want := sha256.New()
	io.Copy(want, &patternReader{n: size})
	wantSum := fmt.Sprintf("%x", want.Sum(nil))
	for _, unknown := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", unknown), func(t *testing.T) {
			var body io.Reader = &patternReader{n: size}
			req := mustReq(t, "POST", srv.URL, body)
			if unknown {
				req.ContentLength = -1
			} else {
				req.ContentLength = size
			}
			resp, err := c.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("X-Sum"); got != fmt.Sprintf("%d-%s", size, wantSum) {
				t.Errorf("server got %s", got)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil || n != size || fmt.Sprintf("%x", h.Sum(nil)) != wantSum {
				t.Errorf("response: n=%d err=%v sum mismatch=%v", n, err, fmt.Sprintf("%x", h.Sum(nil)) != wantSum)
			}
		})
	}
}

func TestReuseAfterBodylessResponses(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		case "/empty":
			w.Header().Set("Content-Length", "0")
		default:
			w.Write([]byte("0123456789"))
		}
	}))
	c := newClient(t, Options{})
	tests := []struct{ method, path string }{
		{"GET", "/204"}, {"GET", "/304"}, {"HEAD", "/"}, {"GET", "/empty"}, {"GET", "/"}, {"GET", "/204"},
	}
	for i := 0; i < 3; i++ {
		for _, tt := range tests {
			resp, err := c.RoundTrip(mustReq(t, tt.method, srv.URL+tt.path, nil))
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d conns, want 1", n)
	}
}

func TestEarlyCloseDrainsSmallRemainder(t *testing.T) {
	big := strings.Repeat("x", 256<<10)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, "small body, already buffered")
	}))
	c := newClient(t, Options{})
	tests := []struct {
		path      string
		wantConns int32
	}{
		{"/small", 1}, // remainder buffered: drained, conn kept
		{"/small", 1},
		{"/big", 1},   // closed early: that conn is dropped...
		{"/small", 2}, // ...so the next request dials
	}
	for _, tt := range tests {
		resp, err := c.RoundTrip(mustReq(t, "GET", srv.URL+tt.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if _, err := resp.Body.Read(buf); err == nil {
			t.Error("Read after Close succeeded")
		}
		if n := srv.conns.Load(); n != tt.wantConns {
			t.Errorf("after %s: %d conns, want %d", tt.path, n, tt.wantConns)
		}
	}
}

func TestConcurrentRequests(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(echoHandler))
	c := newClient(t, Options{MaxIdleConnsPerHost: 16})
	const workers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				want := fmt.Sprintf("worker %d request %d", w, i)
				req := mustReq(t, "POST", srv.URL, strings.NewReader(want))
				_, got, err := do(t, c, req)
				if err == nil && got != want {
					err = fmt.Errorf("got %q want %q", got, want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.conns.Load(); n > workers {
		t.Errorf("%d conns for %d workers: pool is not reusing", n, workers)
	}
}

func TestCloseAndCloseIdle(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(echoHandler))
	c := New(Options{})
	for _, closeAll := range []bool{false, true} {
		if _, _, err := do(t, c, mustReq(t, "GET", srv.URL, nil)); err != nil {
			t.Fatal(err)
		}
		if closeAll {
			c.Close()
		} else {
			c.CloseIdleConnections()
		}
		waitClosed(t, srv, 1) // the server sees the idle conn go away
	}
	if _, err := c.RoundTrip(mustReq(t, "GET", srv.URL, nil)); err != ErrClosed {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the bad-cert case below is expected
	srv.EnableHTTP2 = true                           // the server offers h2; ALPN must still settle on http/1.1
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := newClient(t, Options{TLSConfig: &tls.Config{RootCAs: pool}})
	for i := 0; i < 3; i++ {
		resp, got, err := do(t, c, mustReq(t, "POST", srv.URL, bytes.NewReader([]byte("over tls"))))
		if err != nil {
			t.Fatal(err)
		}
		if got != "over tls" || resp.Header.Get("X-Proto") != "HTTP/1.1" {
			t.Errorf("got %q over %q", got, resp.Header.Get("X-Proto"))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d TLS conns, want 1", n)
	}

	// An untrusted certificate is a connection failure, reported as a dial error.
	bad := newClient(t, Options{})
	_, err := bad.RoundTrip(mustReq(t, "GET", srv.URL, nil))
	if !IsDialError(err) {
		t.Errorf("untrusted cert: %v, want dial error", err)
	}
}
