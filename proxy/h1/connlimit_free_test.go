package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// freeingHandler serves the ways a conn can end instead of returning to the
// pool: /close answers with Connection: close, /big sends more body than
// Close may drain, /upgrade switches protocols (a tunnel until the client
// closes it); anything else echoes.
func freeingHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/close":
		w.Header().Set("Connection", "close")
		io.WriteString(w, "closing")
	case "/big":
		io.WriteString(w, strings.Repeat("x", 1<<20))
	case "/upgrade":
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, brw) // until the client closes the tunnel
	default:
		echoHandler(w, r)
	}
}

// TestWaiterServedWhenHeldConnEnds: with MaxConnsPerHost 1, a waiter is
// served as soon as the one conn ends, whether it is returned for reuse (the
// waiter gets it) or closed (the waiter gets its slot and dials); a closed
// conn that kept its slot would leave the waiter waiting until its context
// ended.
func TestWaiterServedWhenHeldConnEnds(t *testing.T) {
	tests := []struct {
		name      string
		request   func(t *testing.T, url string) *http.Request
		end       func(resp *http.Response) // ends the held exchange
		wantConns int32                     // 1: the conn was handed over; 2: the waiter dialed
	}{
		{"body read to the end: conn returned", func(t *testing.T, url string) *http.Request {
			return mustReq(t, "POST", url, strings.NewReader("held"))
		}, readAndClose, 1},
		{"response says Connection: close", func(t *testing.T, url string) *http.Request {
			return mustReq(t, "GET", url+"/close", nil)
		}, readAndClose, 2},
		{"request says Connection: close", func(t *testing.T, url string) *http.Request {
			req := mustReq(t, "POST", url, strings.NewReader("held"))
			req.Close = true
			return req
		}, readAndClose, 2},
		{"body closed unread", func(t *testing.T, url string) *http.Request {
			return mustReq(t, "GET", url+"/big", nil)
		}, func(resp *http.Response) { resp.Body.Close() }, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, http.HandlerFunc(freeingHandler))
			addr := srv.Listener.Addr().String()
			c := newClient(t, Options{MaxConnsPerHost: 1})
			held := holdConn(t, c, tt.request(t, srv.URL))
			done := roundTripAsync(t, c, mustReq(t, "POST", srv.URL, strings.NewReader("waiter")))
			waitQueued(t, c, addr, 1)
			select {
			case err := <-done:
				t.Fatalf("the waiter finished while the only conn was in use: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
			tt.end(held)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := srv.conns.Load(); n != tt.wantConns {
				t.Errorf("%d conns, want %d", n, tt.wantConns)
			}
			if out, idle, waiting := poolState(c, addr); out != 0 || idle != 1 || waiting != 0 {
				t.Errorf("%d out, %d idle, %d waiting; want 0, 1, 0", out, idle, waiting)
			}
		})
	}
}

// TestUpgradeLeavesCount: as in http.Transport, a conn upgraded by a 101
// leaves the pool and its count, so an open tunnel holds no slot.
func TestUpgradeLeavesCount(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(freeingHandler))
	c := newClient(t, Options{MaxConnsPerHost: 1})
	req := mustReq(t, "GET", srv.URL+"/upgrade", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "test")
	tunnel := holdConn(t, c, req)
	defer tunnel.Body.Close()
	if tunnel.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", tunnel.StatusCode)
	}
	if _, _, err := do(t, c, mustReq(t, "GET", srv.URL, nil)); err != nil {
		t.Fatalf("with the tunnel open: %v", err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("%d conns, want the tunnel plus one", n)
	}
}

// TestFailedDialFreesSlot: a dial that fails while others wait gives its
// slot to the first of them.
func TestFailedDialFreesSlot(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(echoHandler))
	addr := srv.Listener.Addr().String()
	var dials atomic.Int32
	firstDialing, failFirst := make(chan struct{}), make(chan struct{})
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			close(firstDialing)
			<-failFirst
			return nil, errors.New("refused, for the test")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}
	c := newClient(t, Options{MaxConnsPerHost: 1, Dialer: dial})
	first := roundTripAsync(t, c, mustReq(t, "POST", srv.URL, strings.NewReader("first")))
	<-firstDialing
	second := roundTripAsync(t, c, mustReq(t, "POST", srv.URL, strings.NewReader("second")))
	waitQueued(t, c, addr, 1) // a dial in progress counts against the cap
	close(failFirst)
	if err := <-first; !IsDialError(err) {
		t.Errorf("first: %v, want its dial error", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second: %v", err)
	}
}

// TestHandedConnIsChecked: a conn released to a waiter passes the same idle
// check as one taken from the pool, since the server may have written to it
// after the response (here: between the hand-over and the waiter's use).
func TestHandedConnIsChecked(t *testing.T) {
	tests := []struct {
		name string
		late lateWrite
	}{
		{"a second, unsolicited response", lateWrite{bytes: "replay"}},
		{"FIN", lateWrite{hangUp: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startInjecting(t, nil, func(n int, _ *http.Request, resp string) lateWrite {
				if n != 1 {
					return lateWrite{}
				}
				late := tt.late
				if late.bytes == "replay" {
					late.bytes = resp
				}
				return late
			})
			addr := b.ln.Addr().String()
			c := newClient(t, Options{MaxConnsPerHost: 1})
			held := holdConn(t, c, idRequest(t, http.MethodPost, b.URL(), "first"))
			testHookTurnGranted = func() { b.inject() }
			t.Cleanup(func() { testHookTurnGranted = nil })

			done := make(chan error, 1)
			go func() {
				// Not replayable: the stale-conn retry cannot hide a bad conn.
				resp, body, err := do(t, c, idRequest(t, http.MethodPost, b.URL(), "second"))
				done <- checkOwn(resp, body, "second", http.MethodPost, err)
			}()
			waitQueued(t, c, addr, 1)
			body, _ := io.ReadAll(held.Body)
			held.Body.Close()
			if string(body) != "id=first" {
				t.Fatalf("first: body %q", body)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := b.conns.Load(); n != 2 {
				t.Errorf("%d conns, want 2: the tainted conn dropped, a fresh one dialed", n)
			}
		})
	}
}

// TestCloseWhileWaiting: requests waiting when the client is closed fail
// with ErrClosed once a conn frees up, each passing the turn on.
func TestCloseWhileWaiting(t *testing.T) {
	srv, addr, c, held := oneConnHeld(t)
	var waiters []<-chan error
	for i := 0; i < 3; i++ {
		waiters = append(waiters, roundTripAsync(t, c, mustReq(t, "POST", srv.URL, strings.NewReader("waiter"))))
		waitQueued(t, c, addr, i+1)
	}
	c.Close()
	readAndClose(held)
	for i, w := range waiters {
		if err := <-w; !errors.Is(err, ErrClosed) {
			t.Errorf("waiter %d: %v, want ErrClosed", i, err)
		}
	}
	if out, idle, waiting := poolState(c, addr); out != 0 || idle != 0 || waiting != 0 {
		t.Errorf("%d out, %d idle, %d waiting; want none", out, idle, waiting)
	}
}
