package breaker

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

var refusedDial = upstream.Outcome{Err: upstream.ErrConnect}

func TestRefusingEndpointBackoff(t *testing.T) {
	p, clock := newFakePolicy(t, passive(nil), nil, nil, nil)
	h := members(p, 3)[0]
	// Backoff doubles per refused dial while the endpoint keeps refusing.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		report(h, 1, refusedDial)
		if h.Available() || h.Admit() {
			t.Fatalf("refusal %d: still available", i+1)
		}
		if st, _ := StatusOf(h); st.State != StateRefusing || st.RefusingUntil == nil {
			t.Fatalf("refusal %d: status %+v", i+1, st)
		}
		clock.add(want - time.Millisecond)
		if h.Available() {
			t.Fatalf("refusal %d: available before %v", i+1, want)
		}
		clock.add(time.Millisecond)
		if !h.Available() {
			t.Fatalf("refusal %d: not back after %v", i+1, want)
		}
	}
	// Any answer makes it reachable again and resets the backoff.
	report(h, 1, ok200)
	report(h, 1, refusedDial)
	clock.add(time.Second)
	if !h.Available() {
		t.Fatal("backoff not reset by an answer")
	}
}

func TestRefusingEndpointNeverUsedInPanic(t *testing.T) {
	p, _ := newFakePolicy(t, passive(func(ph *config.PassiveHealth) { ph.ConsecutiveFailures, ph.PanicThreshold = 1, 50 }), nil, nil, nil)
	hs := members(p, 3)
	report(hs[0], 1, refusedDial)
	report(hs[1], 1, bad503) // ejected
	report(hs[2], 1, bad503) // ejected: no healthy member left, panic mode
	if !p.panicMode.Load() {
		t.Fatal("not in panic with every reachable member ejected")
	}
	if hs[0].Available() {
		t.Error("panic mode uses an endpoint that refuses connections")
	}
	if !hs[1].Available() || !hs[2].Available() {
		t.Error("panic mode does not use the ejected members")
	}
}

// The scenario of issue #12: one endpoint answers 500, one is dead, one is healthy. The dead
// one must not count as a member, so the failing one can still be ejected under
// max_ejected_percent 50 and the pool does not enter panic mode: traffic goes to the
// healthy one alone.
func TestRefusingEndpointNotCountedAsMember(t *testing.T) {
	p, _ := newFakePolicy(t, passive(func(ph *config.PassiveHealth) { ph.MaxEjectedPercent, ph.PanicThreshold = 50, 50 }), nil, nil, nil)
	hs := members(p, 3)
	healthy, failing, dead := hs[0], hs[1], hs[2]
	report(failing, 5, bad503)
	report(dead, 1, refusedDial)
	report(dead, 4, refusedDial) // probes that also fail (Admit refuses while set aside)
	if failing.Available() {
		t.Error("failing endpoint not ejected: the dead one counted against max_ejected_percent")
	}
	if p.panicMode.Load() {
		t.Error("panic mode entered: the dead one counted as an unhealthy member")
	}
	if !healthy.Available() || dead.Available() {
		t.Errorf("available: healthy %v dead %v", healthy.Available(), dead.Available())
	}
}
