package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPaceBudget(t *testing.T) {
	p := &ClientPacing{Idle: 10 * time.Second, MinRate: 100, Grace: time.Second}
	now := time.Unix(1000, 0)
	tests := []struct {
		name   string
		waited time.Duration
		n      int64
		limit  time.Time
		want   time.Duration // from now; -1: budget used up
	}{
		{"fresh: grace only", 0, 0, time.Time{}, time.Second},
		{"earned by bytes", 0, 500, time.Time{}, 6 * time.Second},
		{"capped by idle", 0, 100000, time.Time{}, 10 * time.Second},
		{"used up", 3 * time.Second, 100, time.Time{}, -1},
		{"capped by server limit", 0, 500, now.Add(2 * time.Second), 2 * time.Second},
	}
	for _, tt := range tests {
		a := pace{p: p, waited: tt.waited, n: tt.n, limit: tt.limit}
		d, ok := a.next(now)
		if tt.want < 0 {
			if ok {
				t.Errorf("%s: deadline %v, want none", tt.name, d.Sub(now))
			}
			continue
		}
		if !ok || d.Sub(now) != tt.want {
			t.Errorf("%s: %v %v, want %v", tt.name, d.Sub(now), ok, tt.want)
		}
	}
}

// bodyBackend is an upstream that counts requests whose body it read completely, and its
// open connections.
func bodyBackend(t *testing.T) (addr string, complete, open *atomic.Int32) {
	complete, open = new(atomic.Int32), new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		complete.Add(1)
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), complete, open
}

// rawExchange sends raw bytes to addr, optionally half-closes, and returns the response
// and whether the connection was closed after it.
func rawExchange(t *testing.T, addr, req string, halfClose bool) (*http.Response, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	_, err = br.ReadByte()
	return res, err == io.EOF
}

func TestBrokenRequestBody(t *testing.T) {
	be, complete, _ := bodyBackend(t)
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}, retries: 1, retry: defaultRetry()}.build(t))
	addr := gw.Listener.Addr().String()
	head := "POST /up HTTP/1.1\r\nHost: x\r\n"
	tests := []struct {
		name      string
		req       string
		halfClose bool
	}{
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", false},
		{"chunk size overflow", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nffffffffffffffffffff\r\n", false},
		{"missing CRLF after data", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n", false},
		{"short body then half-close", head + "Content-Length: 100\r\n\r\n0123456789", true},
		{"chunked cut then half-close", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, closed := rawExchange(t, addr, tt.req, tt.halfClose)
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", res.StatusCode)
			}
			if !closed {
				t.Error("connection kept open after a broken body")
			}
		})
	}
	if n := complete.Load(); n != 0 {
		t.Errorf("backend completed %d truncated requests", n)
	}
}

func TestChunkedRequestClosesConnection(t *testing.T) {
	be, complete, _ := bodyBackend(t)
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	res, closed := rawExchange(t, gw.Listener.Addr().String(),
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false)
	if res.StatusCode != 200 || !closed || complete.Load() != 1 {
		t.Errorf("status %d closed %v complete %d: want 200, closed, 1", res.StatusCode, closed, complete.Load())
	}
}

// slowUpload sends a Content-Length body one byte per interval and returns the status and
// how long it took.
func slowUpload(t *testing.T, addr string, interval time.Duration) (int, time.Duration) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	done := make(chan *http.Response, 1)
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			res = nil
		}
		done <- res
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			if res == nil {
				return 0, time.Since(start)
			}
			return res.StatusCode, time.Since(start)
		case <-tick.C:
			c.Write([]byte("x")) // errors once the gateway gave up: the response tells
		}
	}
}

func TestSlowUploadIsCut(t *testing.T) {
	be, complete, open := bodyBackend(t)
	rt := routeSpec{prefix: "/", backends: []string{be}}.build(t)
	t.Run("below min rate", func(t *testing.T) {
		gw, _ := startGatewayWith(t, Options{Pacing: &ClientPacing{Idle: 5 * time.Second, MinRate: 100, Grace: time.Second}}, nil, rt)
		status, took := slowUpload(t, gw.Listener.Addr().String(), 200*time.Millisecond)
		if status != http.StatusRequestTimeout || took > 5*time.Second {
			t.Errorf("status %d after %v, want 408 within ~1.1 s", status, took)
		}
	})
	t.Run("idle", func(t *testing.T) {
		gw, _ := startGatewayWith(t, Options{Pacing: &ClientPacing{Idle: 500 * time.Millisecond}}, nil, rt)
		status, took := slowUpload(t, gw.Listener.Addr().String(), time.Hour)
		if status != http.StatusRequestTimeout || took > 4*time.Second {
			t.Errorf("status %d after %v, want 408 after ~0.5 s", status, took)
		}
	})
	t.Run("route timeout during upload", func(t *testing.T) {
		rt := routeSpec{prefix: "/", backends: []string{be}, timeout: 500 * time.Millisecond}.build(t)
		gw, _ := startGateway(t, nil, rt)
		status, took := slowUpload(t, gw.Listener.Addr().String(), 100*time.Millisecond)
		if status != http.StatusRequestTimeout || took > 4*time.Second {
			t.Errorf("status %d after %v, want 408 after ~0.5 s", status, took)
		}
	})
	waitUntil(t, "upstream connections of cut uploads closed", func() bool { return open.Load() == 0 })
	if complete.Load() != 0 {
		t.Errorf("backend completed %d cut uploads", complete.Load())
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSlowReaderIsCut(t *testing.T) {
	var writeFailed atomic.Bool
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 50 << 20 / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				writeFailed.Store(true)
				return
			}
		}
	})
	rt := routeSpec{prefix: "/", backends: []string{be}}.build(t)
	gw, _ := startGatewayWith(t, Options{Pacing: &ClientPacing{Idle: 500 * time.Millisecond}}, nil, rt)
	c, err := net.DialTimeout("tcp", gw.Listener.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	waitUntil(t, "upstream released after the client stopped reading", writeFailed.Load)
}

func TestQuietStreamIsNotCut(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		big := strings.Repeat("x", 100<<10) // past pacedAfter, so writes are paced
		for i := range 3 {
			fmt.Fprintf(w, "data: %d %s\n\n", i, big)
			w.(http.Flusher).Flush()
			time.Sleep(700 * time.Millisecond)
		}
	})
	rt := routeSpec{prefix: "/", backends: []string{be}}.build(t)
	gw, _ := startGatewayWith(t, Options{Pacing: &ClientPacing{Idle: 300 * time.Millisecond, MinRate: 1 << 20, Grace: 100 * time.Millisecond}}, nil, rt)
	res, err := http.Get("http://" + gw.Listener.Addr().String() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || strings.Count(string(b), "data: ") != 3 {
		t.Fatalf("stream cut: %d bytes, %v", len(b), err)
	}
}

// deadlineRecorder counts the read deadlines set on the client's connection.
type deadlineRecorder struct {
	http.ResponseWriter
	set atomic.Int32
}

func (d *deadlineRecorder) SetReadDeadline(time.Time) error { d.set.Add(1); return nil }

// Once the handler returned, the connection is net/http's again: an HTTP/2 upstream client
// closing the body late, or the route timer firing late, must not touch it (a data race
// with net/http's handlerDone otherwise).
func TestClientBodyLeavesConnectionAfterHandler(t *testing.T) {
	tests := []struct {
		name     string
		returned bool
		late     func(b *clientBody, attempt int64)
		want     int32
	}{
		{"interrupt while handling", false, func(b *clientBody, a int64) { b.interruptRead(a) }, 1},
		{"interrupt after return", true, func(b *clientBody, a int64) { b.interruptRead(a) }, 0},
		{"expire while handling", false, func(b *clientBody, _ int64) { b.expire() }, 1},
		{"expire after return", true, func(b *clientBody, _ int64) { b.expire() }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &deadlineRecorder{ResponseWriter: httptest.NewRecorder()}
			r := httptest.NewRequest("POST", "/", strings.NewReader("x"))
			b := newClientBody(r, http.NewResponseController(w), nil, time.Now())
			attempt := b.nextAttempt()
			b.reading.Store(true) // an upstream client's Read is waiting on the client
			if tt.returned {
				b.handlerReturned()
			}
			tt.late(b, attempt)
			if got := w.set.Load(); got != tt.want {
				t.Fatalf("%d read deadlines set, want %d", got, tt.want)
			}
		})
	}
}
