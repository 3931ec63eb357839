package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

// flaky is a loopback backend whose behaviour the test changes at will.
type flaky struct {
	srv    *httptest.Server
	status atomic.Int64 // status to answer; 0 means 200
	hits   atomic.Int64
}

func newFlaky(t *testing.T) *flaky {
	f := &flaky{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if s := f.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (fx *fixture) apply(t testing.TB, yaml string) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) endpointState(t *testing.T, key string) string {
	t.Helper()
	for _, p := range fx.gw.Upstreams() {
		for _, e := range p.Endpoints {
			if e.Key == key && e.Health != nil {
				return e.Health.State
			}
		}
	}
	return ""
}

func emptyFixture(t *testing.T) *fixture {
	return newFixture(t, fmt.Sprintf(routesTmpl, "http://127.0.0.1:1", "http://127.0.0.1:1"))
}

// a) A backend killed during GET load: no client request fails (retried on the other
// endpoint) and the dead one is ejected.
func TestFaultBackendKilledUnderLoad(t *testing.T) {
	a, b := newFlaky(t), newFlaky(t)
	fx := emptyFixture(t)
	fx.apply(t, fmt.Sprintf(`
discovery: {}
routes:
  - prefix: /
    upstreams: [%q, %q]
    retries: 2
    passive_health: { consecutive_failures: 3, ejection_time: 30s, max_ejected_percent: 50 }
`, a.srv.URL, b.srv.URL))
	l := startLoad(fx.server.URL+"/x", 3, 0, nil) // 3 clients: within the retry budget's minimum concurrency
	time.Sleep(500 * time.Millisecond)
	a.srv.CloseClientConnections()
	a.srv.Listener.Close() // killed: open connections reset, new ones refused
	time.Sleep(1500 * time.Millisecond)
	total, failed := l.finish()
	t.Logf("%d requests, %d failed; backend killed after 0.5 s of 2 s", total, failed)
	if failed != 0 {
		t.Fatalf("%d of %d requests failed, want 0", failed, total)
	}
	// A refused dial sets the endpoint aside at once (breaker/refusing.go); it may also
	// have been ejected by then, if enough probes failed.
	if st := fx.endpointState(t, a.srv.Listener.Addr().String()); st != "refusing" && st != "ejected" {
		t.Fatalf("killed backend state %q, want refusing (or ejected)", st)
	}
}

// b) A backend answering 500 is ejected within consecutive_failures requests, traffic
// shifts to the healthy one, and it comes back on its own after the ejection time.
func TestFaultBackend500EjectedAndReturns(t *testing.T) {
	bad, good := newFlaky(t), newFlaky(t)
	bad.status.Store(500)
	fx := emptyFixture(t)
	fx.apply(t, fmt.Sprintf(`
discovery: {}
routes:
  - prefix: /
    upstreams: [%q, %q]
    passive_health: { consecutive_failures: 3, ejection_time: 300ms, max_ejected_percent: 50 }
    breaker: { enabled: false }
`, bad.srv.URL, good.srv.URL))
	errors := 0
	for i := 0; i < 40; i++ {
		if code, _ := fx.get(t, "/"); code != 200 {
			errors++
		}
	}
	if errors != 3 {
		t.Fatalf("%d client-visible 500s, want exactly 3 (consecutive_failures) before ejection", errors)
	}
	if st := fx.endpointState(t, bad.srv.Listener.Addr().String()); st != "ejected" {
		t.Fatalf("state %q, want ejected", st)
	}
	bad.status.Store(0)
	hitsBefore := bad.hits.Load()
	time.Sleep(400 * time.Millisecond)
	for i := 0; i < 10; i++ {
		fx.get(t, "/")
	}
	if bad.hits.Load()-hitsBefore < 4 {
		t.Fatalf("recovered backend got %d of 10 requests after the ejection time, want its share back", bad.hits.Load()-hitsBefore)
	}
}

// c) Every backend failing: with a panic threshold the gateway keeps trying all of them
// (fail open); without one, once all are ejected it answers 503 at once.
func TestFaultAllBackendsFailing(t *testing.T) {
	a, b := newFlaky(t), newFlaky(t)
	a.status.Store(503)
	b.status.Store(503)
	for _, tc := range []struct {
		name      string
		panic     int
		wantFinal int
	}{
		{"panic threshold 50: fail open", 50, 503}, // upstreams' own 503s, passed through
		{"no panic threshold: all ejected", 0, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := emptyFixture(t)
			fx.apply(t, fmt.Sprintf(`
discovery: {}
routes:
  - prefix: /
    upstreams: [%q, %q]
    retries: 0
    passive_health: { consecutive_failures: 2, ejection_time: 30s, max_ejected_percent: 100, panic_threshold: %d }
    breaker: { enabled: false }
`, a.srv.URL, b.srv.URL, tc.panic))
			for i := 0; i < 6; i++ {
				fx.get(t, "/")
			}
			before := a.hits.Load() + b.hits.Load()
			code, body := fx.get(t, "/")
			reached := a.hits.Load()+b.hits.Load() > before
			if code != tc.wantFinal {
				t.Fatalf("status %d (%s), want %d", code, body, tc.wantFinal)
			}
			if tc.panic > 0 && !reached {
				t.Fatal("panic mode: request never reached a backend")
			}
			if tc.panic == 0 && (reached || body == "") {
				t.Fatalf("all ejected: want the gateway's own 503 without touching a backend, got reached=%v body=%q", reached, body)
			}
		})
	}
}

// f) A rate-limited route admits rate x time + burst and answers 429 with headers after.
func TestRateLimitThroughProxy(t *testing.T) {
	be := newFlaky(t)
	fx := emptyFixture(t)
	fx.apply(t, fmt.Sprintf(`
discovery: {}
routes:
  - prefix: /
    upstreams: [%q]
    rate_limit: { rps: 20, burst: 5 }
`, be.srv.URL))
	start := time.Now()
	ok, limited := 0, 0
	var last *http.Response
	for time.Since(start) < 500*time.Millisecond {
		res, err := http.Get(fx.server.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		switch res.StatusCode {
		case 200:
			ok++
		case 429:
			limited++
			last = res
		default:
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	elapsed := time.Since(start).Seconds()
	want := 5 + 20*elapsed
	if float64(ok) < want-2 || float64(ok) > want+2 {
		t.Fatalf("admitted %d in %.2fs, want about %.1f (burst 5 + 20/s)", ok, elapsed, want)
	}
	if limited == 0 || last == nil {
		t.Fatal("nothing was limited")
	}
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if last.Header.Get(h) == "" {
			t.Errorf("429 without %s", h)
		}
	}
}
