package breaker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

func passive(mod func(*config.PassiveHealth)) *config.PassiveHealth {
	ph := &config.PassiveHealth{
		ConsecutiveFailures: 5,
		FailureStatuses:     []int{500, 502, 503, 504},
		EjectionTime:        30 * time.Second,
		MaxEjectionTime:     300 * time.Second,
		MaxEjectedPercent:   100,
		PanicThreshold:      0,
	}
	if mod != nil {
		mod(ph)
	}
	return ph
}

func TestConsecutiveFailuresEject(t *testing.T) {
	e := func(k upstream.ErrorKind) upstream.Outcome { return upstream.Outcome{Err: k} }
	s := func(code int) upstream.Outcome { return upstream.Outcome{Status: code} }
	rep := func(o upstream.Outcome, n int) []upstream.Outcome {
		out := make([]upstream.Outcome, n)
		for i := range out {
			out[i] = o
		}
		return out
	}
	cat := func(parts ...[]upstream.Outcome) []upstream.Outcome {
		var out []upstream.Outcome
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name    string
		seq     []upstream.Outcome
		ejected bool
	}{
		{"five 503s", rep(s(503), 5), true},
		{"four 503s", rep(s(503), 4), false},
		{"success resets the run", cat(rep(s(503), 4), rep(s(200), 1), rep(s(503), 4)), false},
		{"cancel neither resets nor counts", cat(rep(s(503), 4), rep(e(upstream.ErrCanceled), 10), rep(s(503), 1)), true},
		{"cancels alone never eject", rep(e(upstream.ErrCanceled), 50), false},
		{"timeouts", rep(e(upstream.ErrTimeout), 5), true},
		{"resets", rep(e(upstream.ErrReset), 5), true},
		{"protocol errors", rep(e(upstream.ErrProtocol), 5), true},
		{"mixed failure kinds", cat(rep(s(500), 2), rep(e(upstream.ErrTimeout), 2), rep(s(504), 1)), true},
		{"404 is not a failure", rep(s(404), 20), false},
		{"501 is not in the list", rep(s(501), 20), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newFakePolicy(t, passive(nil), nil, nil, nil)
			h := members(p, 2)[0]
			for _, o := range tc.seq {
				if !h.Admit() {
					t.Fatal("Admit refused before the sequence ended")
				}
				h.Report(o)
			}
			if got := !h.Available(); got != tc.ejected {
				t.Fatalf("ejected = %v, want %v", got, tc.ejected)
			}
			st, _ := StatusOf(h)
			if want := map[bool]string{true: StateEjected, false: StateHealthy}[tc.ejected]; st.State != want {
				t.Fatalf("status state = %q, want %q", st.State, want)
			}
		})
	}
}

func TestEjectionTimeGrowsCapsAndEnds(t *testing.T) {
	p, clk := newFakePolicy(t, passive(func(ph *config.PassiveHealth) {
		ph.EjectionTime = 10 * time.Second
		ph.MaxEjectionTime = 35 * time.Second
	}), nil, nil, nil)
	h := members(p, 4)[0]
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 35 * time.Second, 35 * time.Second} {
		report(h, 5, bad503)
		got := time.Duration(h.ejectedUntil.Load() - clk.ns.Load())
		if got != want {
			t.Fatalf("ejection %d lasts %v, want %v", i+1, got, want)
		}
		clk.add(want - 1)
		if h.Available() || h.Admit() {
			t.Fatalf("ejection %d: available 1ns before it ends", i+1)
		}
		clk.add(1)
		if !h.Available() || !h.Admit() {
			t.Fatalf("ejection %d: not available when it ends", i+1)
		}
		h.Report(ok200)
	}
	if st, _ := StatusOf(h); st.TimesEjected != 5 {
		t.Fatalf("times ejected = %d, want 5", st.TimesEjected)
	}
}

func TestTimesEjectedDecays(t *testing.T) {
	p, clk := newFakePolicy(t, passive(func(ph *config.PassiveHealth) { ph.EjectionTime = 10 * time.Second }), nil, nil, nil)
	h := members(p, 4)[0]
	report(h, 5, bad503) // 10s
	clk.add(10 * time.Second)
	report(h, 5, bad503) // 20s
	clk.add(20 * time.Second)
	// 25s of good service forgive two ejections (one per base ejection time).
	clk.add(25 * time.Second)
	if st, _ := StatusOf(h); st.TimesEjected != 0 {
		t.Fatalf("times ejected after decay = %d, want 0", st.TimesEjected)
	}
	report(h, 5, bad503)
	if got := time.Duration(h.ejectedUntil.Load() - clk.ns.Load()); got != 10*time.Second {
		t.Fatalf("ejection after decay lasts %v, want the base 10s", got)
	}
}

func TestMaxEjectedPercentCountedAfter(t *testing.T) {
	tests := []struct {
		size, pct, want int
	}{
		{1, 50, 1}, // the only bad host of a pool of one is still ejected
		{2, 50, 1},
		{3, 50, 1},
		{10, 50, 5},
		{10, 10, 1},
		{3, 0, 1}, // one ejection is always allowed
		{3, 100, 3},
		{4, 75, 3},
	}
	for _, tc := range tests {
		p, _ := newFakePolicy(t, passive(func(ph *config.PassiveHealth) { ph.MaxEjectedPercent = tc.pct }), nil, nil, nil)
		hs := members(p, tc.size)
		for _, h := range hs {
			report(h, 5, bad503)
		}
		got := 0
		for _, h := range hs {
			if !h.Available() {
				got++
			}
		}
		if got != tc.want {
			t.Errorf("pool %d, max %d%%: %d ejected, want %d", tc.size, tc.pct, got, tc.want)
		}
	}
}

func TestPanicThreshold(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	logs := newCountHandler()
	p, clk := newFakePolicy(t, passive(func(ph *config.PassiveHealth) { ph.PanicThreshold = 50 }), nil, m, slog.New(logs))
	hs := members(p, 4)
	steps := []struct {
		eject     int
		panic     bool
		available int
	}{
		{0, false, 3}, // 75% healthy
		{1, false, 2}, // 50% healthy: not below the threshold
		{2, true, 4},  // 25% healthy: every endpoint is used
	}
	for _, s := range steps {
		report(hs[s.eject], 5, bad503)
		avail := 0
		for _, h := range hs {
			if h.Available() {
				avail++
			}
		}
		if p.panicMode.Load() != s.panic || avail != s.available {
			t.Fatalf("after ejecting %d: panic=%v available=%d, want %v %d", s.eject+1, p.panicMode.Load(), avail, s.panic, s.available)
		}
	}
	// More traffic while in panic must not log or count panic again.
	for _, h := range hs {
		report(h, 3, ok200)
	}
	if got := testutil.ToFloat64(m.panics.WithLabelValues("r")); got != 1 {
		t.Fatalf("panic entries = %v, want 1", got)
	}
	if got := logs.count("panic mode: too few healthy endpoints, using all of them"); got != 1 {
		t.Fatalf("panic logged %d times, want 1", got)
	}
	// Ejections end by time alone; the next admission notices and leaves panic mode.
	clk.add(30 * time.Second)
	hs[3].Admit()
	hs[3].Report(ok200)
	if p.panicMode.Load() {
		t.Fatal("still in panic after every ejection ended")
	}
	if got := testutil.ToFloat64(m.ejections.WithLabelValues("r")); got != 3 {
		t.Fatalf("ejections metric = %v, want 3", got)
	}
}

func TestNilPolicyAndForeignHealth(t *testing.T) {
	if p := NewPolicy("r", nil, nil, nil, nil); p != nil {
		t.Fatalf("NewPolicy(nil, nil) = %v, want nil", p)
	}
	off := false
	if p := NewPolicy("r", &config.PassiveHealth{Enabled: &off}, &config.Breaker{Enabled: &off}, nil, nil); p != nil {
		t.Fatalf("disabled blocks: got %v, want nil", p)
	}
	if p := NewRoutePolicy("r", &config.Policy{HealthCheck: &config.HealthCheck{Path: "/h"}}, nil, nil); p == nil {
		t.Fatal("NewRoutePolicy with only active checks returned nil")
	}
	if _, ok := StatusOf(nil); ok {
		t.Fatal("StatusOf(nil) reported ok")
	}
	var m *Metrics
	m.ejected("r") // a nil *Metrics counts nothing and does not panic
}
