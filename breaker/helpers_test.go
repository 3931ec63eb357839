package breaker

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock drives the policy's monotonic clock in pure-logic tests.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// newFakePolicy builds a policy whose clock only moves when the test says so. Breakers keep
// gobreaker's real clock, so breaker tests use newPolicy's default clock instead.
func newFakePolicy(t *testing.T, ph *config.PassiveHealth, hc *config.HealthCheck, m *Metrics, log *slog.Logger) (*policy, *fakeClock) {
	t.Helper()
	p := newPolicy("r", ph, nil, hc, m, log)
	if p == nil {
		t.Fatal("newPolicy returned nil")
	}
	fc := &fakeClock{}
	fc.ns.Store(int64(time.Hour)) // far from zero, so "0 = not ejected" is never ambiguous
	p.clock = fc.ns.Load
	return p, fc
}

// members creates n endpoints of p and announces them as the pool's members.
func members(p *policy, n int) []*health {
	hs := make([]*health, n)
	uh := make([]upstream.Health, n)
	for i := range hs {
		hs[i] = p.newHealth(string(rune('a'+i)) + ":80")
		uh[i] = hs[i]
	}
	p.SetMembers(uh)
	return hs
}

// report reports n admitted requests answered with status.
func report(h *health, n int, o upstream.Outcome) {
	for range n {
		h.Admit()
		h.Report(o)
	}
}

// Synthetic outcomes carry no latency, which the breaker takes as "admitted in the current
// generation"; a made-up latency longer than the time since Admit would look stale.
var (
	ok200   = upstream.Outcome{Status: 200}
	bad503  = upstream.Outcome{Status: 503}
	canceld = upstream.Outcome{Err: upstream.ErrCanceled}
)

// countHandler counts log records by message.
type countHandler struct {
	mu   sync.Mutex
	msgs map[string]int
}

func newCountHandler() *countHandler { return &countHandler{msgs: map[string]int{}} }

func (c *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (c *countHandler) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs[r.Message]++
	return nil
}
func (c *countHandler) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *countHandler) WithGroup(string) slog.Handler      { return c }
func (c *countHandler) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs[msg]
}

// rrBuilder is a test-only round-robin picker builder; the real balancers live in lb.
type rrBuilder struct{}

func (rrBuilder) Build(ms []upstream.Member) upstream.Picker { return &rrPicker{ms: ms} }

type rrPicker struct {
	ms []upstream.Member
	n  atomic.Uint64
}

func (p *rrPicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	for range p.ms {
		m := &p.ms[p.n.Add(1)%uint64(len(p.ms))]
		if ex.Has(m.State) || !m.State.Available() {
			continue
		}
		if m.State.TryAcquire() {
			return m, nil
		}
	}
	return nil, upstream.ErrNoEndpoint
}

// eventually polls cond until it holds or a generous bound passes; the bound only keeps a
// broken test from hanging, it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
