package httpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// goleak proves Close stops every watch the transport started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// fakeRegistry is a Discoverer whose snapshot the test sets; answer false keeps it silent.
type fakeRegistry struct {
	mu      sync.Mutex
	snap    upstream.Snapshot
	set     bool
	changed chan struct{}
	targets []upstream.Target
}

func newFakeRegistry() *fakeRegistry { return &fakeRegistry{changed: make(chan struct{})} }

func (f *fakeRegistry) Set(keys ...string) {
	eps := make([]upstream.Endpoint, len(keys))
	for i, k := range keys {
		eps[i] = upstream.Endpoint{Key: k}
	}
	f.mu.Lock()
	f.snap, f.set = upstream.NewSnapshot(eps), true
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeRegistry) Watch(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
	f.mu.Lock()
	f.targets = append(f.targets, t)
	f.mu.Unlock()
	for {
		f.mu.Lock()
		s, set, changed := f.snap, f.set, f.changed
		f.mu.Unlock()
		if set {
			update(s)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// backend is an HTTP server on loopback answering with its own address and the Host it got.
func backend(t testing.TB, status int, delay time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Body", string(body))
		w.WriteHeader(status)
		io.WriteString(w, r.Context().Value(http.LocalAddrContextKey).(net.Addr).String())
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newClient returns a client over a Transport on reg, closed at cleanup.
func newClient(t *testing.T, reg upstream.Discoverer, opts Options) (*http.Client, *Transport) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	rt, err := New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return &http.Client{Transport: rt, Timeout: 10 * time.Second}, rt
}

// get returns which backend answered, or the error.
func get(c *http.Client, url string) (addr string, status int, err error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

func TestRoutesByServiceName(t *testing.T) {
	a, b := backend(t, 200, 0), backend(t, 200, 0)
	reg := newFakeRegistry()
	reg.Set(a, b)
	c, _ := newClient(t, reg, Options{})
	seen := map[string]int{}
	for i := range 10 {
		url := "http://users/v1/x"
		if i%2 == 1 {
			url = "http://USERS/v1/x" // the same service: host names are case-insensitive
		}
		addr, _, err := get(c, url)
		if err != nil {
			t.Fatal(err)
		}
		seen[addr]++
	}
	if seen[a] != 5 || seen[b] != 5 {
		t.Fatalf("round robin gave %v", seen)
	}
	resp, err := c.Post("http://users/echo", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Host") != "users" || resp.Header.Get("X-Body") != "hello" {
		t.Fatalf("Host %q, body %q; want the service name and the body", resp.Header.Get("X-Host"), resp.Header.Get("X-Body"))
	}
	if len(reg.targets) != 1 || reg.targets[0].Service != "users" {
		t.Fatalf("watched %v, want users once", reg.targets)
	}
}

func TestBadRequests(t *testing.T) {
	reg := newFakeRegistry()
	reg.Set()
	c, _ := newClient(t, reg, Options{})
	for _, tc := range []struct{ url, err string }{
		{"http://users:8080/", "takes no port"},
		{"http://users/", "no endpoint available"},
	} {
		_, _, err := get(c, tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err %v, want one containing %q", tc.url, err, tc.err)
		}
	}
	// http.NewRequest drops an empty port; a URL built by hand keeps it, and would watch a
	// service named "users:".
	emptyPort, _ := http.NewRequest(http.MethodGet, "http://users/", nil)
	emptyPort.URL.Host = "users:"
	if _, err := c.Transport.RoundTrip(emptyPort); err == nil || !strings.Contains(err.Error(), "takes no port") {
		t.Errorf("host %q: err %v, want one containing %q", emptyPort.URL.Host, err, "takes no port")
	}
	if _, err := New(reg, Options{Policy: "fastest"}); err == nil || !strings.Contains(err.Error(), "unknown policy") {
		t.Fatalf("New with an unknown policy: %v", err)
	}
	rt, _ := New(reg, Options{})
	rt.Close()
	r, _ := http.NewRequest(http.MethodGet, "http://users/", nil)
	if _, err := rt.RoundTrip(r); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestMaxServices(t *testing.T) {
	reg := newFakeRegistry()
	reg.Set(backend(t, 200, 0))
	c, _ := newClient(t, reg, Options{MaxServices: 2})
	for _, host := range []string{"a", "b", "a"} {
		if _, _, err := get(c, "http://"+host+"/"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := get(c, "http://c/"); err == nil || !strings.Contains(err.Error(), "MaxServices") {
		t.Fatalf("a third service: %v", err)
	}
}

// TestRegistrySilent: a registry that never answers fails the request after ResolveTimeout,
// or sooner when the request's own context ends.
func TestRegistrySilent(t *testing.T) {
	reg := newFakeRegistry() // never Set
	c, _ := newClient(t, reg, Options{ResolveTimeout: 50 * time.Millisecond})
	if _, _, err := get(c, "http://users/"); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("err %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://users/", nil)
	if _, err := c.Do(r); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v", err)
	}
}

// TestRefusedConnectionRetried: an instance that refuses connections costs no request (GET
// and a POST whose body can be replayed go to another instance) and is set aside.
func TestRefusedConnectionRetried(t *testing.T) {
	live, dead := backend(t, 200, 0), deadAddr(t)
	reg := newFakeRegistry()
	reg.Set(live, dead)
	c, rt := newClient(t, reg, Options{})
	for range 10 {
		addr, _, err := get(c, "http://users/")
		if err != nil || addr != live {
			t.Fatalf("got %q, %v", addr, err)
		}
		resp, err := c.Post("http://users/", "text/plain", bytes.NewReader([]byte("x")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Body") != "x" {
			t.Fatalf("retried POST arrived with body %q", resp.Header.Get("X-Body"))
		}
	}
	for _, m := range rt.Pool("users").View().Members {
		if m.Key == dead && m.State.Available() {
			t.Fatal("the refusing instance is still available")
		}
	}
}

// TestRefusedRetryEdges: a request with http.NoBody is retried like one without a body; a
// body that cannot be replayed is not retried; when every instance refuses, the error is
// the refusal, not "no endpoint".
func TestRefusedRetryEdges(t *testing.T) {
	live := backend(t, 200, 0)
	regNoBody := newFakeRegistry()
	regNoBody.Set(deadAddr(t), live)
	cNoBody, _ := newClient(t, regNoBody, Options{})
	// Round robin sends one of the first two requests to the refusing instance first.
	for range 2 {
		r, _ := http.NewRequest(http.MethodGet, "http://users/", http.NoBody)
		resp, err := cNoBody.Do(r)
		if err != nil {
			t.Fatalf("GET with NoBody: %v", err)
		}
		resp.Body.Close()
	}

	reg := newFakeRegistry()
	dead := deadAddr(t)
	reg.Set(dead)
	c, _ := newClient(t, reg, Options{})
	r, _ := http.NewRequest(http.MethodPost, "http://users/", io.NopCloser(strings.NewReader("x")))
	r.GetBody = nil
	if _, err := c.Do(r); err == nil || !strings.Contains(err.Error(), dead) {
		t.Fatalf("POST to a refusing instance: %v, want the refusal", err)
	}
	_, _, err := get(c, "http://users/")
	if err == nil || !strings.Contains(err.Error(), "no endpoint available") {
		// The refusing instance is set aside now: nothing is left to try.
		t.Fatalf("GET with the only instance set aside: %v", err)
	}
	reg2 := newFakeRegistry()
	deadA, deadB := deadAddr(t), deadAddr(t)
	reg2.Set(deadA, deadB)
	c2, _ := newClient(t, reg2, Options{})
	if _, _, err := get(c2, "http://users/"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("GET with every instance refusing: %v, want the last refusal", err)
	}
}

// TestFailingInstanceEjected: an instance answering 503 is ejected after the passive
// health's consecutive failures, and then gets no more requests.
func TestFailingInstanceEjected(t *testing.T) {
	good, bad := backend(t, 200, 0), backend(t, 503, 0)
	reg := newFakeRegistry()
	reg.Set(good, bad)
	c, _ := newClient(t, reg, Options{PassiveHealth: &config.PassiveHealth{ConsecutiveFailures: 3}})
	failures := 0
	for range 100 {
		_, status, err := get(c, "http://users/")
		if err != nil {
			t.Fatal(err)
		}
		if status == 503 {
			failures++
		}
	}
	if failures != 3 {
		t.Fatalf("%d requests reached the failing instance, want 3 (then ejected)", failures)
	}
}

// TestLeastTimeAvoidsSlowInstance: with least_time, an instance 50 ms slower than the
// others gets few requests, because its latency is measured. One caller sends the requests
// one after the other, so every instance is idle at each pick and in-flight counts carry no
// information: least_conn, the control, spreads evenly and gives the slow one about a third.
// Connections are opened before counting, so no dial inflates a fast instance's first
// estimate; and the estimates themselves are checked, so the test fails if latency is not
// measured (least_time then degrades to least_conn).
func TestLeastTimeAvoidsSlowInstance(t *testing.T) {
	const delay = 50 * time.Millisecond
	slow := backend(t, 200, delay)
	fast1, fast2 := backend(t, 200, 0), backend(t, 200, 0)
	for _, tc := range []struct {
		policy   string
		maxShare float64
		minShare float64
	}{
		// Not 0: on a loaded machine a fast instance's answer can take 50 ms too.
		{config.LBLeastTime, 0.10, 0},
		// A third expected; 0.2 is 3.5 standard deviations below it at 150 requests.
		{config.LBLeastConn, 0.5, 0.2},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			base := &http.Transport{MaxIdleConnsPerHost: 2}
			t.Cleanup(base.CloseIdleConnections)
			for _, addr := range []string{slow, fast1, fast2} {
				req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := base.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			reg := newFakeRegistry()
			reg.Set(slow, fast1, fast2)
			c, rt := newClient(t, reg, Options{Policy: tc.policy, Base: base})
			const total = 150
			counts := map[string]int{}
			for range total {
				addr, _, err := get(c, "http://users/")
				if err != nil {
					t.Fatal(err)
				}
				counts[addr]++
			}
			share := float64(counts[slow]) / total
			t.Logf("%s: slow instance share %.3f (%v)", tc.policy, share, counts)
			if share > tc.maxShare || share < tc.minShare {
				t.Fatalf("slow instance share %.3f, want between %.2f and %.2f", share, tc.minShare, tc.maxShare)
			}
			if tc.policy != config.LBLeastTime {
				return
			}
			for _, m := range rt.Pool("users").View().Members {
				nanos, _, measured := m.State.LatencyEstimate()
				if !measured {
					t.Fatalf("%s: latency not measured", m.Key)
				}
				if m.Key == slow && time.Duration(nanos) < delay {
					t.Fatalf("slow instance's estimate %v, want at least its delay %v", time.Duration(nanos), delay)
				}
			}
		})
	}
}

// TestInFlightUntilBodyClosed: a request counts in flight on its instance until its body
// is closed, and a caller that gives up mid-body is not held against the instance.
func TestInFlightUntilBodyClosed(t *testing.T) {
	a := backend(t, 200, 0)
	reg := newFakeRegistry()
	reg.Set(a)
	c, rt := newClient(t, reg, Options{})
	resp, err := c.Get("http://users/")
	if err != nil {
		t.Fatal(err)
	}
	state := rt.Pool("users").View().Members[0].State
	if n := state.InFlight(); n != 1 {
		t.Fatalf("in flight %d before the body is closed, want 1", n)
	}
	resp.Body.Close()
	resp.Body.Close()
	if n := state.InFlight(); n != 0 {
		t.Fatalf("in flight %d after Close, want 0", n)
	}
}

// TestTargets: Options.Targets refines what a host watches; other hosts watch their own
// name.
func TestTargets(t *testing.T) {
	reg := newFakeRegistry()
	reg.Set(backend(t, 200, 0))
	targets := map[string]upstream.Target{"users": {Service: "users-svc", Tags: []string{"v2"}, Datacenter: "dc2"}}
	c, _ := newClient(t, reg, Options{Targets: targets})
	targets["users"].Tags[0] = "changed" // the transport keeps its own copy
	for _, host := range []string{"users", "orders"} {
		if _, _, err := get(c, "http://"+host+"/"); err != nil {
			t.Fatal(err)
		}
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.targets) != 2 {
		t.Fatalf("watched %v", reg.targets)
	}
	got := map[string]upstream.Target{}
	for _, tg := range reg.targets {
		got[tg.Service] = tg
	}
	if u := got["users-svc"]; u.Datacenter != "dc2" || len(u.Tags) != 1 || u.Tags[0] != "v2" {
		t.Fatalf("users watched as %+v", u)
	}
	if _, ok := got["orders"]; !ok {
		t.Fatalf("orders not watched by its name: %v", reg.targets)
	}
}

// TestCallerDeadlineAndCancel: a caller's deadline passing before the headers is the
// instance's timeout (counted by passive health: the hung instance is ejected), a caller's
// cancel is not.
func TestCallerDeadlineAndCancel(t *testing.T) {
	hung, fine := backend(t, 200, 10*time.Second), backend(t, 200, 0)
	do := func(c *http.Client, ctx context.Context) error {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://users/", nil)
		resp, err := c.Do(r)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	t.Run("deadline", func(t *testing.T) {
		reg := newFakeRegistry()
		reg.Set(hung, fine)
		c, rt := newClient(t, reg, Options{PassiveHealth: &config.PassiveHealth{ConsecutiveFailures: 2}})
		timeouts := 0
		for range 8 {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			if err := do(c, ctx); err != nil {
				timeouts++
			}
			cancel()
		}
		if timeouts != 2 {
			t.Fatalf("%d requests timed out, want 2 (then the hung instance is ejected)", timeouts)
		}
		for _, m := range rt.Pool("users").View().Members {
			if m.Key == hung && m.State.Available() {
				t.Fatal("the hung instance is still available")
			}
		}
	})
	t.Run("http.Client.Timeout", func(t *testing.T) {
		reg := newFakeRegistry()
		reg.Set(hung, fine)
		_, rt := newClient(t, reg, Options{PassiveHealth: &config.PassiveHealth{ConsecutiveFailures: 2}})
		c := &http.Client{Transport: rt, Timeout: 50 * time.Millisecond}
		timeouts := 0
		for range 8 {
			if err := do(c, context.Background()); err != nil {
				timeouts++
			}
		}
		if timeouts != 2 {
			t.Fatalf("%d requests timed out, want 2 (then the hung instance is ejected)", timeouts)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		reg := newFakeRegistry()
		reg.Set(hung)
		c, rt := newClient(t, reg, Options{PassiveHealth: &config.PassiveHealth{ConsecutiveFailures: 2}})
		for range 4 {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			if err := do(c, ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
		}
		if m := rt.Pool("users").View().Members[0]; !m.State.Available() {
			t.Fatal("cancelled requests ejected the instance")
		}
	})
}
