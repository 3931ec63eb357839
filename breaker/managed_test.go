package breaker

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// forwardingPolicy is a HealthPolicy of another kind than this package's, wrapping every
// Health the way a tracing or metrics layer would: its Health counts reports and forwards
// everything else by embedding upstream.Health. SetMembers is forwarded as it is, so
// the wrapped policy is handed the wrappers, not its own values.
type forwardingPolicy struct {
	upstream.HealthPolicy
	reports atomic.Int64
}

func (p *forwardingPolicy) NewHealth(key string) upstream.Health {
	return &forwardingHealth{Health: p.HealthPolicy.NewHealth(key), reports: &p.reports}
}

type forwardingHealth struct {
	upstream.Health
	reports *atomic.Int64
}

func (h *forwardingHealth) Report(o upstream.Outcome) {
	h.reports.Add(1)
	h.Health.Report(o)
}

// Active checks, the admin status and the pool-wide rules (panic mode needs the members)
// must work through a policy that wraps this package's, against real loopback backends.
func TestActiveChecksAndStatusThroughWrappedPolicy(t *testing.T) {
	var flipUp, steadyUp atomic.Bool
	flipUp.Store(true)
	steadyUp.Store(true)
	flip, steady := healthBackend(t, &flipUp), healthBackend(t, &steadyUp)

	hc := &config.HealthCheck{Path: "/healthz", Interval: 5 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}
	wrapped := &forwardingPolicy{HealthPolicy: NewRoutePolicy("svc", &config.Policy{
		PassiveHealth: config.WithDefaults(&config.PassiveHealth{PanicThreshold: 50}),
		HealthCheck:   hc,
	}, nil, nil)}
	pool := upstream.NewPool("svc", rrBuilder{}, upstream.PoolOptions{Health: wrapped})
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{flip, steady}))
	var fh, sh upstream.Health
	for _, m := range pool.View().Members {
		if _, ok := m.State.Health().(*forwardingHealth); !ok {
			t.Fatalf("member %s health is %T, want the wrapper", m.Key, m.State.Health())
		}
		if m.Key == flip.Key {
			fh = m.State.Health()
		} else {
			sh = m.State.Health()
		}
	}
	status := func(h upstream.Health) Status {
		t.Helper()
		st, ok := StatusOf(h)
		if !ok {
			t.Fatal("StatusOf a wrapped Health reported no status")
		}
		return st
	}
	if st := status(fh); st.Key != flip.Key || st.State != StateHealthy || st.ActiveCheck != "passing" {
		t.Fatalf("status before checks = %+v", st)
	}

	runChecker(t, pool, hc, nil)

	steps := []struct {
		name             string
		flipUp, steadyUp bool
		want             func() bool
	}{
		{"flip fails its checks", false, true, func() bool {
			st := status(fh)
			return !fh.Available() && st.State == StateUnhealthy && st.ActiveCheck == "failing" && sh.Available()
		}},
		// Panic mode counts the members SetMembers was handed, here the wrappers.
		{"both fail: panic mode uses both", false, false, func() bool {
			return status(fh).Panic && fh.Available() && sh.Available()
		}},
		{"both pass again", true, true, func() bool {
			st := status(fh)
			return !st.Panic && st.State == StateHealthy && st.ActiveCheck == "passing" && fh.Available()
		}},
	}
	for _, s := range steps {
		flipUp.Store(s.flipUp)
		steadyUp.Store(s.steadyUp)
		eventually(t, s.name, s.want)
	}

	// The request path goes through the wrapper too.
	m, err := pool.Pick(nil, upstream.Excluded{})
	if err != nil {
		t.Fatal(err)
	}
	m.State.Done(upstream.Outcome{Status: 200})
	if got := wrapped.reports.Load(); got != 1 {
		t.Fatalf("wrapper saw %d reports, want 1", got)
	}
}
