package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy/h1"
	"github.com/switchyard/switchyard/upstream"
)

// cappedBackend answers after a short delay and records how many requests it served at once
// and how many connections it accepted. A path ending in /hold sends its headers at once and
// then holds its body, and so its connection, until release is closed.
type cappedBackend struct {
	addr     string
	delay    time.Duration
	release  chan struct{}
	once     sync.Once
	accepted atomic.Int32
	inflight atomic.Int32
	peak     atomic.Int32
}

func startCappedBackend(t *testing.T, delay time.Duration) *cappedBackend {
	t.Helper()
	b := &cappedBackend{delay: delay, release: make(chan struct{})}
	srv := httptest.NewUnstartedServer(b)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.accepted.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(func() {
		b.unblock()
		srv.Close()
	})
	b.addr = srv.Listener.Addr().String()
	return b
}

// unblock lets every held response finish.
func (b *cappedBackend) unblock() { b.once.Do(func() { close(b.release) }) }

func (b *cappedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := b.inflight.Add(1)
	defer b.inflight.Add(-1)
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	if strings.HasSuffix(r.URL.Path, "/hold") {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "held")
		return
	}
	time.Sleep(b.delay)
	io.WriteString(w, "ok")
}

// enteredTransport reports the path of each request handed to the upstream client, without
// ever blocking it.
type enteredTransport struct {
	http.RoundTripper
	entered chan string
}

func (e enteredTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case e.entered <- r.URL.Path:
	default:
	}
	return e.RoundTripper.RoundTrip(r)
}

// startCappedGateway serves routes through a Handler whose transport is built by NewTransport
// with transport.max_conns_per_host set to maxConns. The channel reports each request the
// transport was handed.
func startCappedGateway(t *testing.T, maxConns int, routes ...*Route) (*httptest.Server, <-chan string) {
	t.Helper()
	tr, err := NewTransport(config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64,
		IdleConnTimeout: 30 * time.Second, MaxConnsPerHost: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	client, ok := tr.http1.(*h1.Client)
	if !ok {
		t.Fatalf("NewTransport's HTTP/1.1 client is %T, want *h1.Client", tr.http1)
	}
	entered := make(chan string, 16)
	h := New(Options{Transport: enteredTransport{RoundTripper: tr, entered: entered}})
	h.SetTable(NewTable(routes, nil))
	gw := httptest.NewServer(h)
	t.Cleanup(func() {
		gw.Close()
		client.Close()
	})
	return gw, entered
}

// TestMaxConnsPerHostThroughGateway: with max_conns_per_host set, requests beyond the cap
// wait for a connection instead of failing, and the upstream never sees more connections
// than the cap.
func TestMaxConnsPerHostThroughGateway(t *testing.T) {
	const maxConns, requests = 2, 12
	be := startCappedBackend(t, 20*time.Millisecond)
	gw, _ := startCappedGateway(t, maxConns, routeSpec{prefix: "/", backends: []string{be.addr}, timeout: 10 * time.Second}.build(t))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: requests}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Get(gw.URL + "/api")
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Errorf("status %d, body %q: a request beyond the cap must wait, not fail", res.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if p := be.peak.Load(); p > maxConns {
		t.Errorf("upstream served %d requests at once, cap %d", p, maxConns)
	}
	if n := be.accepted.Load(); n > maxConns {
		t.Errorf("upstream accepted %d connections, cap %d", n, maxConns)
	}
}

// TestWaitForConnEnds: a request still waiting for a connection when its route timeout fires
// is a timeout (504, reported against the endpoint); one whose client leaves is canceled
// (reported as such, never counted). Neither reaches the upstream.
func TestWaitForConnEnds(t *testing.T) {
	tests := []struct {
		name       string
		path       string // /short: 200ms route timeout; /long: 10s
		wantStatus int    // 0: the client leaves once its request waits; there is no status
		wantKind   upstream.ErrorKind
	}{
		{"route timeout fires while waiting", "/short/api", http.StatusGatewayTimeout, upstream.ErrTimeout},
		{"client leaves while waiting", "/long/api", 0, upstream.ErrCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := startCappedBackend(t, 0)
			short, long := &recordingPolicy{}, &recordingPolicy{}
			gw, entered := startCappedGateway(t, 1,
				routeSpec{prefix: "/short", backends: []string{be.addr}, timeout: 200 * time.Millisecond, policy: short}.build(t),
				routeSpec{prefix: "/long", backends: []string{be.addr}, timeout: 10 * time.Second, policy: long}.build(t))
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()

			// The only connection: headers have arrived, the body is held.
			held, err := client.Get(gw.URL + "/long/hold")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Body.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tt.wantStatus == 0 {
				go leaveOnceWaiting(entered, tt.path, cancel)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.URL+tt.path, nil)
			res, err := client.Do(req)
			if tt.wantStatus == 0 {
				if err == nil {
					res.Body.Close()
					t.Fatalf("status %d, want the client gone", res.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != tt.wantStatus {
					t.Errorf("status %d, want %d", res.StatusCode, tt.wantStatus)
				}
			}
			policy := short
			if strings.HasPrefix(tt.path, "/long") {
				policy = long
			}
			outcome := awaitOutcome(t, policy.of(be.addr))
			if outcome.Err != tt.wantKind || outcome.Status != 0 {
				t.Errorf("reported %+v, want error kind %v", outcome, tt.wantKind)
			}
			if n := be.accepted.Load(); n != 1 {
				t.Errorf("upstream accepted %d connections, want only the held one", n)
			}
			be.unblock()
			if body, _ := io.ReadAll(held.Body); string(body) != "held" {
				t.Errorf("held request: body %q", body)
			}
		})
	}
}

// leaveOnceWaiting cancels a client's request once the gateway handed it to the transport and
// it had a moment to queue there. (Should it be canceled before it queued, the outcome is the
// same: the client left.)
func leaveOnceWaiting(entered <-chan string, path string, cancel context.CancelFunc) {
	defer cancel()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-entered:
			if p == path {
				time.Sleep(20 * time.Millisecond)
				return
			}
		case <-timeout:
			return
		}
	}
}

// awaitOutcome waits for the first outcome reported to h.
func awaitOutcome(t *testing.T, h *recordingHealth) upstream.Outcome {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if all := h.all(); len(all) > 0 {
			return all[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no outcome reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
