package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// poolState reads one host pool's counts: checked-out conns, idle conns and
// queued waiters.
func poolState(c *Client, addr string) (out, idle, waiting int) {
	s := &c.shards[shardIndex(addr)]
	s.mu.RLock()
	hp := s.m[hostKey{addr: addr}]
	s.mu.RUnlock()
	if hp == nil {
		return 0, 0, 0
	}
	hp.mu.Lock()
	defer hp.mu.Unlock()
	for w := hp.waiters.head; w != nil; w = w.next {
		waiting++
	}
	return hp.out, len(hp.idle), waiting
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitQueued waits until n requests wait for a connection to addr.
func waitQueued(t testing.TB, c *Client, addr string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d queued requests", n), func() bool {
		_, _, w := poolState(c, addr)
		return w == n
	})
}

// peakHandler answers after a short delay and records how many requests it
// served at once.
type peakHandler struct {
	delay    time.Duration
	inflight atomic.Int32
	peak     atomic.Int32
}

func (h *peakHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raisePeak(&h.peak, h.inflight.Add(1))
	defer h.inflight.Add(-1)
	time.Sleep(h.delay)
	if r.URL.Path == "/close" {
		w.Header().Set("Connection", "close")
	}
	io.WriteString(w, "ok")
}

// connGauge is a Dialer that tracks the client's own view of its conns:
// how many it dialed and how many were open (or being dialed) at once. The
// client closes a conn before handing its slot on, so its peak must stay
// within the cap even when the server notices closes late.
type connGauge struct {
	dials, open, peak atomic.Int32
}

func (g *connGauge) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	g.dials.Add(1)
	raisePeak(&g.peak, g.open.Add(1))
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		g.open.Add(-1)
		return nil, err
	}
	return &gaugedConn{Conn: c, g: g}, nil
}

// gaugedConn counts its Close; NetConn keeps the socket visible to the
// idle check.
type gaugedConn struct {
	net.Conn
	g    *connGauge
	once sync.Once
}

func (c *gaugedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.open.Add(-1) })
	return err
}

func (c *gaugedConn) NetConn() net.Conn { return c.Conn }

func raisePeak(peak *atomic.Int32, n int32) {
	for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
	}
}

// holdConn sends a request and returns its response unread, so the conn it
// runs on stays checked out until the test closes the body.
func holdConn(t testing.TB, c *Client, req *http.Request) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), testTimeout)
	t.Cleanup(cancel)
	resp, err := c.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAndClose(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// oneConnHeld starts an echo server and a client allowed one conn to it,
// and takes that conn with a request whose response stays unread.
func oneConnHeld(t testing.TB) (srv *countedServer, addr string, c *Client, held *http.Response) {
	t.Helper()
	srv = startServer(t, http.HandlerFunc(echoHandler))
	c = newClient(t, Options{MaxConnsPerHost: 1})
	held = holdConn(t, c, mustReq(t, "POST", srv.URL, strings.NewReader("held")))
	return srv, srv.Listener.Addr().String(), c, held
}

// roundTripAsync runs do on its own goroutine; the result arrives on the channel.
func roundTripAsync(t testing.TB, c *Client, req *http.Request) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, body, err := do(t, c, req)
		if err == nil && body == "" {
			err = errors.New("empty body")
		}
		done <- err
	}()
	return done
}

func TestMaxConnsPerHostHolds(t *testing.T) {
	tests := []struct {
		name     string
		cap      int
		requests int
		path     string // "/close": every response closes its conn
	}{
		{"one conn, keep-alive", 1, 10, "/"},
		{"three conns, keep-alive", 3, 30, "/"},
		{"every response closes its conn", 2, 12, "/close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &peakHandler{delay: 5 * time.Millisecond}
			srv := startServer(t, h)
			var gauge connGauge
			c := newClient(t, Options{MaxConnsPerHost: tt.cap, Dialer: gauge.dial})
			var wg sync.WaitGroup
			errs := make(chan error, tt.requests)
			for i := 0; i < tt.requests; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, body, err := do(t, c, mustReq(t, "GET", srv.URL+tt.path, nil)); err != nil || body != "ok" {
						errs <- fmt.Errorf("request: %q %v", body, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if p, open := h.peak.Load(), gauge.peak.Load(); p > int32(tt.cap) || open > int32(tt.cap) {
				t.Errorf("%d requests served at once, %d conns open at once, cap %d", p, open, tt.cap)
			}
			accepted := srv.conns.Load()
			if tt.path == "/close" {
				if accepted != int32(tt.requests) {
					t.Errorf("server accepted %d conns, want one per request (%d)", accepted, tt.requests)
				}
			} else if accepted > int32(tt.cap) || gauge.dials.Load() > int32(tt.cap) {
				t.Errorf("server accepted %d conns, client dialed %d, cap %d", accepted, gauge.dials.Load(), tt.cap)
			}
			if out, idle, waiting := poolState(c, srv.Listener.Addr().String()); out != 0 || waiting != 0 || idle > tt.cap {
				t.Errorf("after the burst: %d out, %d idle, %d waiting", out, idle, waiting)
			}
		})
	}
}

// passableDeadline is a context whose deadline passes when the test says,
// not on a timer that a loaded machine could beat to the queue.
type passableDeadline struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func (d *passableDeadline) Done() <-chan struct{} { return d.done }

func (d *passableDeadline) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (d *passableDeadline) pass() { d.once.Do(func() { close(d.done) }) }

func TestWaiterContextEnds(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (ctx context.Context, end func()) // end ends ctx; it may run twice
		want error
	}{
		{"deadline passes", func() (context.Context, func()) {
			d := &passableDeadline{Context: context.Background(), done: make(chan struct{})}
			return d, d.pass
		}, context.DeadlineExceeded},
		{"canceled", func() (context.Context, func()) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr, c, held := oneConnHeld(t)

			ctx, end := tt.ctx()
			defer end()
			errc := make(chan error, 1)
			go func() {
				_, err := c.RoundTrip(mustReq(t, "GET", srv.URL, nil).WithContext(ctx))
				errc <- err
			}()
			waitQueued(t, c, addr, 1)
			end()
			select {
			case err := <-errc:
				if !errors.Is(err, tt.want) || !IsContextError(err) || !strings.Contains(err.Error(), "waiting for a free connection") {
					t.Errorf("err = %v, want a wait that ended with %v", err, tt.want)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the waiter did not give up when its context ended")
			}
			if out, _, waiting := poolState(c, addr); out != 1 || waiting != 0 {
				t.Errorf("after the wait: %d out, %d waiting; want only the held conn", out, waiting)
			}

			readAndClose(held)
			if _, _, err := do(t, c, mustReq(t, "GET", srv.URL, nil)); err != nil {
				t.Fatal(err)
			}
			if n := srv.conns.Load(); n != 1 {
				t.Errorf("%d conns: the abandoned wait must not have dialed or kept a slot", n)
			}
		})
	}
}

func TestWaitersServedInOrder(t *testing.T) {
	srv, addr, c, held := oneConnHeld(t)

	const waiters = 6
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			resp, err := c.RoundTrip(mustReq(t, "POST", srv.URL, strings.NewReader(fmt.Sprint("waiter ", i))).WithContext(ctx))
			if err != nil {
				t.Error(err)
				return
			}
			// With one conn, the next waiter is served only after this body
			// is closed, so order is the order of the grants.
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			readAndClose(resp)
		}()
		waitQueued(t, c, addr, i+1) // queue them one by one, in a known order
	}
	readAndClose(held)
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("served in order %v, want FIFO", order)
		}
	}
	if len(order) != waiters {
		t.Fatalf("%d of %d waiters served", len(order), waiters)
	}
}

// TestCapUnderChurn mixes requests that give up at random moments (before
// queuing, while queued, just as they are granted) with ones that complete:
// every completed request must be served within the cap, and no slot may
// leak, whichever way a wait ended.
func TestCapUnderChurn(t *testing.T) {
	const capacity, workers, rounds = 2, 16, 8
	// A request given up on leaves its handler running while the client has
	// already closed the conn and dialed anew, so only the client's count of
	// open conns is exact here.
	srv := startServer(t, &peakHandler{delay: time.Millisecond})
	addr := srv.Listener.Addr().String()
	var gauge connGauge
	c := newClient(t, Options{MaxConnsPerHost: capacity, Dialer: gauge.dial})
	var wg sync.WaitGroup
	var served atomic.Int32
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				timeout := testTimeout
				if (w+r)%2 == 0 {
					timeout = time.Duration(rand.IntN(3000)) * time.Microsecond
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				resp, err := c.RoundTrip(mustReq(t, "GET", srv.URL, nil).WithContext(ctx))
				if err == nil {
					readAndClose(resp)
					served.Add(1)
				} else if timeout == testTimeout {
					t.Error(err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if p := gauge.peak.Load(); p > capacity {
		t.Errorf("%d conns open at once, cap %d", p, capacity)
	}
	if served.Load() < workers*rounds/2 {
		t.Errorf("only %d requests served", served.Load())
	}
	if out, idle, waiting := poolState(c, addr); out != 0 || waiting != 0 || idle > capacity {
		t.Errorf("after the churn: %d out, %d idle, %d waiting", out, idle, waiting)
	}
	// Every slot is free again: a full set of conns opens at once.
	var bodies []io.ReadCloser
	for i := 0; i < capacity; i++ {
		bodies = append(bodies, holdConn(t, c, mustReq(t, "POST", srv.URL, strings.NewReader("held"))).Body)
	}
	for _, b := range bodies {
		io.Copy(io.Discard, b)
		b.Close()
	}
}
