package breaker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// openTimeout is short because gobreaker reads the real clock; tests wait for it to pass.
const openTimeout = 20 * time.Millisecond

// newBreakerHealth returns one member of a breaker-only policy (real clock).
func newBreakerHealth(t *testing.T, m *Metrics) *health {
	t.Helper()
	p := newPolicy("r", nil, &config.Breaker{
		FailureRatio:     0.5,
		MinRequests:      4,
		Interval:         time.Minute,
		OpenTimeout:      openTimeout,
		HalfOpenRequests: 2,
	}, nil, m, nil)
	h := p.newHealth("a:80")
	p.SetMembers([]upstream.Health{h})
	return h
}

func (h *health) breakerState() gobreaker.State { return gobreaker.State(h.circuitState.Load()) }

// trip drives h's breaker open and waits until it may go half-open.
func trip(t *testing.T, h *health) {
	t.Helper()
	report(h, 2, ok200)
	report(h, 2, bad503)
	if h.breakerState() != gobreaker.StateOpen || h.Available() || h.Admit() {
		t.Fatalf("breaker %v after 2/4 failures, want open and refusing", h.breakerState())
	}
	eventually(t, "open timeout", h.Available)
}

func TestBreakerTripsOnRatio(t *testing.T) {
	tests := []struct {
		name string
		ok   int
		bad  int
		open bool
	}{
		{"below min requests", 0, 3, false},
		{"ratio below", 3, 2, false},
		{"ratio reached", 2, 2, true},
		{"all failed", 0, 4, true},
		{"cancels are not requests", 0, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newBreakerHealth(t, nil)
			report(h, tc.ok, ok200)
			report(h, 10, canceld)
			report(h, tc.bad, bad503)
			if got := h.breakerState() == gobreaker.StateOpen; got != tc.open {
				t.Fatalf("open = %v, want %v (state %v)", got, tc.open, h.breakerState())
			}
			if h.Available() == tc.open {
				t.Fatalf("Available = %v with breaker open = %v", h.Available(), tc.open)
			}
		})
	}
}

func TestBreakerHalfOpenBoundedProbesThenCloses(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	h := newBreakerHealth(t, m)
	trip(t, h)
	if !h.Admit() || !h.Admit() {
		t.Fatal("half-open breaker refused its two probes")
	}
	if h.breakerState() != gobreaker.StateHalfOpen {
		t.Fatalf("state %v, want half-open", h.breakerState())
	}
	if h.Available() || h.Admit() {
		t.Fatal("a third probe was admitted with HalfOpenRequests = 2")
	}
	// Probes finish out of order and one is canceled: its slot goes back.
	h.Report(canceld)
	if !h.Admit() {
		t.Fatal("a canceled probe's slot was not released")
	}
	h.Report(ok200)
	if h.breakerState() != gobreaker.StateHalfOpen {
		t.Fatal("closed before every probe succeeded")
	}
	h.Report(ok200)
	if h.breakerState() != gobreaker.StateClosed || !h.Available() || !h.Admit() {
		t.Fatalf("state %v after all probes succeeded, want closed", h.breakerState())
	}
	h.Report(ok200)
	for to, want := range map[string]float64{"open": 1, "half-open": 1, "closed": 1} {
		if got := testutil.ToFloat64(m.breakerStates.WithLabelValues("r", to)); got != want {
			t.Errorf("state changes to %s = %v, want %v", to, got, want)
		}
	}
}

func TestBreakerProbeFailureReopens(t *testing.T) {
	h := newBreakerHealth(t, nil)
	trip(t, h)
	if !h.Admit() {
		t.Fatal("no probe admitted")
	}
	h.Report(bad503)
	if h.breakerState() != gobreaker.StateOpen || h.Admit() {
		t.Fatalf("state %v after a failed probe, want open", h.breakerState())
	}
}

func TestBreakerDropsStaleReports(t *testing.T) {
	h := newBreakerHealth(t, nil)
	// Two requests admitted while closed are still running when the breaker trips.
	h.Admit()
	h.Admit()
	trip(t, h)
	if !h.Admit() {
		t.Fatal("no probe admitted")
	}
	// They finish now, in half-open: a failure must not re-open the breaker, a cancel must
	// not free the probe's slot, a success must not count as a probe.
	old := time.Hour
	h.Report(upstream.Outcome{Status: 503, Latency: old})
	h.Report(upstream.Outcome{Err: upstream.ErrCanceled, Latency: old})
	h.Report(upstream.Outcome{Status: 200, Latency: old})
	if h.breakerState() != gobreaker.StateHalfOpen {
		t.Fatalf("state %v after stale reports, want half-open", h.breakerState())
	}
	if got := h.probes.Load(); got != 1 {
		t.Fatalf("probe slots taken = %d, want 1", got)
	}
	if c := h.circuit.Counts(); c.Requests != 0 {
		t.Fatalf("gobreaker counted %d stale requests", c.Requests)
	}
}

func TestBreakerStatus(t *testing.T) {
	h := newBreakerHealth(t, nil)
	report(h, 1, ok200)
	report(h, 1, bad503)
	st, ok := StatusOf(h)
	if !ok || st.Breaker != "closed" || st.RecentRequests != 2 || st.RecentFailures != 1 || !st.Available {
		t.Fatalf("status = %+v", st)
	}
	report(h, 2, bad503)
	if st, _ := StatusOf(h); st.Breaker != "open" || st.Available {
		t.Fatalf("status after trip = %+v", st)
	}
}

func TestBreakerHalfOpenCannotWedge(t *testing.T) {
	h := newBreakerHealth(t, nil)
	trip(t, h)
	h.Admit()
	h.Admit()
	// Both probes' reports look stale (a proxy measuring latency from too early), so
	// neither frees nor resolves its slot.
	h.Report(upstream.Outcome{Status: 200, Latency: time.Hour})
	h.Report(upstream.Outcome{Status: 200, Latency: time.Hour})
	if h.Available() || h.Admit() {
		t.Fatal("a probe admitted beyond HalfOpenRequests")
	}
	// After one open timeout the stuck generation is failed and a fresh one starts later.
	eventually(t, "stuck half-open to re-open", func() bool {
		h.Admit()
		return h.breakerState() == gobreaker.StateOpen
	})
	eventually(t, "fresh half-open", h.Available)
	if !h.Admit() {
		t.Fatal("fresh half-open generation refused a probe")
	}
}

// TestExplicitZerosFromTheFileAreSettings: values the README documents as settings when
// written as zero reach the breaker as written, not replaced by the built-in defaults.
func TestExplicitZerosFromTheFileAreSettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		breaker  string
		failures int  // 503s reported, no successes
		open     bool // breaker open afterwards
	}{
		{"min_requests 0: the first failure counts", "{ min_requests: 0, failure_ratio: 0.5 }", 1, true},
		{"default min_requests 20: one failure does not", "{ failure_ratio: 0.5 }", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("r.yaml", []byte("routes:\n  - prefix: /\n    upstreams: [\"http://127.0.0.1:9\"]\n    breaker: "+tc.breaker+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			p := newPolicy("r", nil, cfg.Routes[0].Breaker, nil, nil, nil)
			h := p.newHealth("a:80")
			p.SetMembers([]upstream.Health{h})
			report(h, tc.failures, bad503)
			if open := h.breakerState() == gobreaker.StateOpen; open != tc.open {
				t.Fatalf("open %v after %d failures, want %v", open, tc.failures, tc.open)
			}
		})
	}
}
