package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// mirroredRequest is what a mirror backend received.
type mirroredRequest struct {
	method, uri, host, body string
}

// recordingBackend records every request it gets and answers status.
func recordingBackend(t testing.TB, status int) (string, chan mirroredRequest) {
	t.Helper()
	got := make(chan mirroredRequest, 1024)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- mirroredRequest{r.Method, r.RequestURI, r.Host, string(b)}
		w.WriteHeader(status)
	})
	return addr, got
}

// waitFor polls cond until it holds; the bound only detects a hang.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func receiveMirrored(t testing.TB, got chan mirroredRequest) mirroredRequest {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no mirrored request arrived")
		return mirroredRequest{}
	}
}

func count(c prometheus.Counter) int { return int(testutil.ToFloat64(c)) }

// send makes a request through the gateway and returns status and body.
func send(t testing.TB, c *http.Client, method, url, host, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func mirrorRoute(t testing.TB, main, mirror *upstream.Pool, retry *config.Retry) *Route {
	t.Helper()
	return mirrorRouteAt(t, "/m", main, mirror, retry)
}

func mirrorRouteAt(t testing.TB, prefix string, main, mirror *upstream.Pool, retry *config.Retry) *Route {
	t.Helper()
	one := 1
	rc := &config.Route{Prefix: prefix, Mirror: &config.Mirror{Percent: 100}}
	rc.Retries, rc.Retry = &one, retry
	rc.Upgrades = []string{"websocket"}
	return trafficRoute(t, rc, RouteOptions{Pool: main, MirrorPool: mirror})
}

func TestMirrorCopies(t *testing.T) {
	addr, got := recordingBackend(t, http.StatusOK)
	rt := mirrorRoute(t, poolOf(t, "main", nil, namedBackend(t, "main")), poolOf(t, "shadow", nil, addr), defaultRetry())
	srv, _ := startGateway(t, nil, rt)

	for _, tc := range []struct{ method, host, body, wantHost string }{
		{http.MethodPost, "example.com", "hello", "example.com-shadow"},
		{http.MethodPut, "example.com:8443", strings.Repeat("x", 60<<10), "example.com-shadow:8443"},
		{http.MethodGet, "api.example.com", "", "api.example.com-shadow"},
	} {
		status, body := send(t, srv.Client(), tc.method, srv.URL+"/m/path?q=1", tc.host, tc.body)
		if status != 200 || body != "main" {
			t.Fatalf("%s: main answer %d %q", tc.method, status, body)
		}
		m := receiveMirrored(t, got)
		want := mirroredRequest{tc.method, "/m/path?q=1", tc.wantHost, tc.body}
		if m != want {
			t.Errorf("mirror got %s %s host %s body %d bytes, want %s %s host %s body %d bytes",
				m.method, m.uri, m.host, len(m.body), want.method, want.uri, want.host, len(want.body))
		}
	}
	waitFor(t, "3 sent", func() bool { return count(rt.mirror.sent) == 3 })
}

// TestMirrorSkips: a body past the limit is not mirrored (and counted), nor is the request
// lost for the main route.
func TestMirrorSkips(t *testing.T) {
	addr, got := recordingBackend(t, http.StatusOK)
	retry := defaultRetry()
	retry.MaxBodyBytes = 1024
	rt := mirrorRoute(t, poolOf(t, "main", nil, namedBackend(t, "main")), poolOf(t, "shadow", nil, addr), retry)
	srv, _ := startGateway(t, nil, rt)

	if status, body := send(t, srv.Client(), http.MethodPost, srv.URL+"/m/big", "", strings.Repeat("x", 2048)); status != 200 || body != "main" {
		t.Fatalf("main answer %d %q", status, body)
	}
	if n := count(rt.mirror.skipped); n != 1 {
		t.Fatalf("skipped %d, want 1", n)
	}
	up, _ := http.NewRequest(http.MethodGet, srv.URL+"/m/ws", nil)
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	res, err := srv.Client().Do(up)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if n := count(rt.mirror.skipped); n != 2 {
		t.Fatalf("skipped %d after an upgrade, want 2", n)
	}
	if status, _ := send(t, srv.Client(), http.MethodPost, srv.URL+"/m/small", "", "tiny"); status != 200 {
		t.Fatal(status)
	}
	if m := receiveMirrored(t, got); m.uri != "/m/small" || m.body != "tiny" {
		t.Fatalf("mirror got %+v, want the small request only", m)
	}
}

// TestMirrorDropsWhenFull: a mirror that does not answer fills its workers and queue; more
// copies are dropped and counted, and every main request is answered as usual.
func TestMirrorDropsWhenFull(t *testing.T) {
	release := make(chan struct{})
	stuck := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	rt := mirrorRoute(t, poolOf(t, "main", nil, namedBackend(t, "main")), poolOf(t, "shadow", nil, stuck), defaultRetry())
	srv, _ := startGateway(t, nil, rt)
	const n = 100
	for i := range n {
		if status, body := send(t, srv.Client(), http.MethodGet, srv.URL+"/m/", "", ""); status != 200 || body != "main" {
			t.Fatalf("request %d: main answer %d %q", i, status, body)
		}
	}
	// At most mirrorWorkers copies are taken off the queue, which holds mirrorQueue.
	dropped := count(rt.mirror.dropped)
	if lo, hi := n-mirrorQueue-mirrorWorkers, n-mirrorQueue; dropped < lo || dropped > hi {
		t.Fatalf("dropped %d, want %d..%d", dropped, lo, hi)
	}
	if count(rt.mirror.sent)+count(rt.mirror.failed) != 0 {
		t.Fatal("a copy completed against a mirror that does not answer")
	}
}

// TestMirrorCloseCancels: Close ends copies in flight (the route is gone) and returns.
func TestMirrorCloseCancels(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	stuck := backend(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	rt := mirrorRoute(t, poolOf(t, "main", nil, namedBackend(t, "main")), poolOf(t, "shadow", nil, stuck), defaultRetry())
	srv, _ := startGateway(t, nil, rt)
	send(t, srv.Client(), http.MethodGet, srv.URL+"/m/", "", "")
	<-arrived
	rt.Close()
	if n := count(rt.mirror.failed); n != 1 {
		t.Fatalf("failed %d, want the canceled copy", n)
	}
	send(t, srv.Client(), http.MethodGet, srv.URL+"/m/", "", "")
	if n := count(rt.mirror.dropped); n != 1 {
		t.Fatalf("dropped %d after Close, want 1", n)
	}
}

// TestMirrorNeverTouchesHealth: a mirror sharing the route's pool (same service) that fails
// every copy leaves the endpoints' health with only the main requests' outcomes; a mirror
// that cannot be reached only counts failures.
func TestMirrorNeverTouchesHealth(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Host, "-shadow") || strings.Contains(r.Host, "-shadow:") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "main")
	})
	policy := &recordingPolicy{hs: map[string]*recordingHealth{}}
	pool := poolOf(t, "shared", policy, addr)
	rt := mirrorRoute(t, pool, pool, defaultRetry())
	dead := mirrorRouteAt(t, "/dead", pool, poolOf(t, "dead", nil, deadAddr(t)), defaultRetry())
	srv, _ := startGateway(t, nil, rt, dead)
	for range 20 {
		if status, body := send(t, srv.Client(), http.MethodGet, srv.URL+"/m/", "", ""); status != 200 || body != "main" {
			t.Fatalf("main answer %d %q", status, body)
		}
		if status, body := send(t, srv.Client(), http.MethodGet, srv.URL+"/dead/", "", ""); status != 200 || body != "main" {
			t.Fatalf("main answer with a dead mirror %d %q", status, body)
		}
	}
	waitFor(t, "20 copies answered", func() bool { return count(rt.mirror.sent) == 20 })
	waitFor(t, "20 copies failed", func() bool { return count(dead.mirror.failed) == 20 })
	var ok, canceled int
	for _, o := range policy.of(addr).all() {
		switch {
		case o.Err == upstream.ErrCanceled:
			canceled++
		case o.Err == upstream.ErrNone && o.Status == 200:
			ok++
		default:
			t.Errorf("health saw %+v", o)
		}
	}
	if ok != 40 || canceled != 20 {
		t.Fatalf("health saw %d answers and %d cancels, want 40 and 20", ok, canceled)
	}
}

func TestMirrorSample(t *testing.T) {
	for _, tc := range []struct {
		percent float64
		n, want int
	}{
		{100, 1000, 1000},
		{10, 1000, 100},
		{50, 10, 5},
		{33.3, 1000, 333},
		{0.01, 1_000_000, 100},
		{0, 1000, 0},
	} {
		m := &mirror{ppm: uint64(tc.percent*10000 + 0.5)}
		got := 0
		for range tc.n {
			if m.sample() {
				got++
			}
		}
		if got != tc.want {
			t.Errorf("%v%% of %d: %d mirrored, want %d", tc.percent, tc.n, got, tc.want)
		}
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":      "example.com-shadow",
		"example.com:8080": "example.com-shadow:8080",
		"[::1]:8080":       "[::1-shadow]:8080",
		"":                 "-shadow",
	} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMirrorTimeout: a copy that gets no answer ends at the route's timeout, as a failure.
func TestMirrorTimeout(t *testing.T) {
	release := make(chan struct{})
	stuck := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	one := 1
	rc := &config.Route{Prefix: "/m", Mirror: &config.Mirror{Percent: 100}}
	rc.Retries, rc.Retry, rc.Timeout = &one, defaultRetry(), 100*time.Millisecond
	rt := trafficRoute(t, rc, RouteOptions{Pool: poolOf(t, "main", nil, namedBackend(t, "main")), MirrorPool: poolOf(t, "shadow", nil, stuck)})
	srv, _ := startGateway(t, nil, rt)
	if status, body := send(t, srv.Client(), http.MethodGet, srv.URL+"/m/", "", ""); status != 200 || body != "main" {
		t.Fatalf("main answer %d %q", status, body)
	}
	waitFor(t, "the copy to time out", func() bool { return count(rt.mirror.failed) == 1 })
}
