package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every request a test makes, so a bug hangs nothing.
const testTimeout = 10 * time.Second

func newClient(t testing.TB, opts Options) *Client {
	c := New(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// countedServer is an httptest server that counts accepted connections.
type countedServer struct {
	*httptest.Server
	conns  atomic.Int32
	closed chan struct{} // receives one value per closed (or hijacked) conn
}

func startServer(t testing.TB, h http.Handler) *countedServer {
	s := &countedServer{Server: httptest.NewUnstartedServer(h), closed: make(chan struct{}, 1024)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed <- struct{}{}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// rawServer accepts loopback conns and hands each to handle, which is free to
// misbehave. Every conn carries a deadline so a stuck test cannot hang.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  []net.Conn
}

func startRaw(t testing.TB, handle func(c net.Conn, br *bufio.Reader)) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			c.SetDeadline(time.Now().Add(testTimeout))
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

// readHead consumes one request head and returns it as a parsed request.
func readHead(br *bufio.Reader) (*http.Request, error) {
	return http.ReadRequest(br)
}

// serveOnce answers each request on the conn with resp, until the client
// closes or perConn requests were served (then the server closes, which is
// how a stale keep-alive conn is produced).
func serveOnce(resp string, perConn int) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for i := 0; perConn <= 0 || i < perConn; i++ {
			req, err := readHead(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

func do(t testing.TB, c http.RoundTripper, req *http.Request) (*http.Response, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), testTimeout)
	defer cancel()
	resp, err := c.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func mustReq(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// waitClosed waits for n server-side conn closures.
func waitClosed(t testing.TB, s *countedServer, n int) {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-s.closed:
		case <-timer.C:
			t.Fatalf("only %d of %d server conns closed", i, n)
		}
	}
}

// opaqueConn hides the socket under a conn, as a custom Dialer's conn type
// may: the idle check cannot peek the kernel's buffer then, so a conn the
// server closed while pooled is found stale only when a request fails on it.
type opaqueConn struct{ net.Conn }

func opaqueDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}
