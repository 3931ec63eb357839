package breaker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// healthBackend serves /healthz with 200 or 500 as the test flips it; other paths 404.
func healthBackend(t *testing.T, healthy *atomic.Bool) upstream.Endpoint {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return upstream.Endpoint{Key: u.Host, Scheme: "http"}
}

// runChecker runs an active checker of pool until the test ends; the test's cleanup waits
// for it, so no probe outlives the backends.
func runChecker(t *testing.T, pool *upstream.Pool, hc *config.HealthCheck, m *Metrics) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewActiveChecker(pool, hc, nil, nil, m).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestActiveCheckerMarksDownAndUp(t *testing.T) {
	var flipUp, steadyUp atomic.Bool
	flipUp.Store(true)
	steadyUp.Store(true)
	flip := healthBackend(t, &flipUp)
	steady := healthBackend(t, &steadyUp)

	hc := &config.HealthCheck{Path: "/healthz", Interval: 5 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	// Active checks only: NewRoutePolicy still gives the checker somewhere to write.
	hp := NewRoutePolicy("svc", &config.Policy{HealthCheck: hc}, m, nil)
	pool := upstream.NewPool("svc", rrBuilder{}, upstream.PoolOptions{Health: hp})
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{flip, steady}))
	healthOf := func(key string) upstream.Health {
		for _, mb := range pool.View().Members {
			if mb.Key == key {
				return mb.State.Health()
			}
		}
		t.Fatalf("no member %s", key)
		return nil
	}
	fh, sh := healthOf(flip.Key), healthOf(steady.Key)

	runChecker(t, pool, hc, m)

	flipUp.Store(false)
	eventually(t, "endpoint marked unhealthy", func() bool { return !fh.Available() })
	if st, _ := StatusOf(fh); st.State != StateUnhealthy || st.ActiveCheck != "failing" || st.Panic {
		t.Fatalf("status while failing = %+v", st)
	}
	if !sh.Available() {
		t.Fatal("the steady endpoint was marked down")
	}
	if got := testutil.ToFloat64(m.checkFailures.WithLabelValues("svc")); got < 2 {
		t.Fatalf("check failures = %v, want >= 2", got)
	}

	flipUp.Store(true)
	eventually(t, "endpoint healthy again", fh.Available)
	if st, _ := StatusOf(fh); st.State != StateHealthy || st.ActiveCheck != "passing" {
		t.Fatalf("status after recovery = %+v", st)
	}

	// Both failing: 0% healthy is below the default panic threshold, so both serve.
	flipUp.Store(false)
	steadyUp.Store(false)
	eventually(t, "panic mode", func() bool {
		st, _ := StatusOf(fh)
		return st.Panic
	})
	if !fh.Available() || !sh.Available() {
		t.Fatal("panic mode did not fail open")
	}
}

func TestActiveCheckerExpectStatus(t *testing.T) {
	tests := []struct {
		expect []int
		status int
		want   bool
	}{
		{nil, 200, true},
		{nil, 302, true},
		{nil, 404, false},
		{nil, 503, false},
		{[]int{204}, 200, false},
		{[]int{200, 204}, 204, true},
	}
	pool := upstream.NewPool("p", rrBuilder{}, upstream.PoolOptions{})
	for _, tc := range tests {
		c := NewActiveChecker(pool, &config.HealthCheck{Path: "/h", ExpectStatus: tc.expect}, nil, nil, nil)
		if got := c.passing(tc.status); got != tc.want {
			t.Errorf("expect %v, status %d: passing = %v, want %v", tc.expect, tc.status, got, tc.want)
		}
	}
}

// fakeProbe fails the endpoints in down and passes the rest, noting whether each call had
// the check's timeout and whether the checker closed it.
type fakeProbe struct {
	down       map[string]bool
	noDeadline atomic.Bool
	closed     atomic.Bool
}

func (p *fakeProbe) Check(ctx context.Context, m *upstream.Member) (bool, string) {
	if _, ok := ctx.Deadline(); !ok {
		p.noDeadline.Store(true)
	}
	if p.down[m.Key] {
		return false, "fake down"
	}
	return true, "fake up"
}

func (p *fakeProbe) CloseIdleConnections() { p.closed.Store(true) }

// TestActiveCheckerWithProbe checks that a plugged-in probe replaces the HTTP GET (the
// endpoints here serve nothing, so a GET would fail both), gets the check's timeout, and is
// closed when Run returns.
func TestActiveCheckerWithProbe(t *testing.T) {
	hc := &config.HealthCheck{GRPC: true, Interval: 5 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 1}
	hp := NewRoutePolicy("svc", &config.Policy{HealthCheck: hc}, nil, nil)
	pool := upstream.NewPool("svc", rrBuilder{}, upstream.PoolOptions{Health: hp})
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{{Key: "down.invalid:1"}, {Key: "up.invalid:1"}, {Key: "up2.invalid:1"}}))
	health := map[string]upstream.Health{}
	for _, m := range pool.View().Members {
		health[m.Key] = m.State.Health()
	}
	probe := &fakeProbe{down: map[string]bool{"down.invalid:1": true}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewActiveChecker(pool, hc, nil, nil, nil).WithProbe(probe).Run(ctx)
	}()
	eventually(t, "endpoint marked unhealthy", func() bool { return !health["down.invalid:1"].Available() })
	cancel()
	<-done
	if !health["up.invalid:1"].Available() || !health["up2.invalid:1"].Available() {
		t.Fatal("an endpoint the probe passed was marked down")
	}
	if probe.noDeadline.Load() {
		t.Fatal("a probe was called without the check's timeout")
	}
	if !probe.closed.Load() {
		t.Fatal("Run returned without closing the probe's idle connections")
	}
}

// TestActiveCheckerProbeByConfig checks which probe a checker starts with: the HTTP GET, or
// for a gRPC check with no probe plugged in, one that fails saying why.
func TestActiveCheckerProbeByConfig(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	ep := healthBackend(t, &up)
	pool := upstream.NewPool("p", rrBuilder{}, upstream.PoolOptions{})
	for _, tc := range []struct {
		name   string
		hc     *config.HealthCheck
		pass   bool
		detail string
	}{
		{"http get", &config.HealthCheck{Path: "/healthz"}, true, "200 OK"},
		{"http get of a missing path", &config.HealthCheck{Path: "/nope"}, false, "404"},
		{"grpc without a probe", &config.HealthCheck{GRPC: true}, false, "breaker/grpcprobe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewActiveChecker(pool, tc.hc, nil, nil, nil)
			defer c.ownTransport.CloseIdleConnections()
			m := upstream.Member{Endpoint: ep}
			pass, detail := c.probe.Check(context.Background(), &m)
			if pass != tc.pass || !strings.Contains(detail, tc.detail) {
				t.Fatalf("probe = %v %q, want %v %q", pass, detail, tc.pass, tc.detail)
			}
		})
	}
}
