package lb

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// policies lists every builder under its config name, for table-driven tests.
var policies = []struct {
	name    string
	builder upstream.PickerBuilder
}{
	{"round_robin", RoundRobin{}},
	{"weighted", Weighted{}},
	{"least_conn", LeastConn{}},
	{"random", Random{}},
	{"least_time", LeastTime{}},
}

// variants adds the weighted policy's table-free picker to policies, for tests that must
// cover every Pick implementation (with unequal weights, see benchWeights).
var variants = append(policies[:len(policies):len(policies)], struct {
	name    string
	builder upstream.PickerBuilder
}{"weighted/interleaved", Weighted{MaxSchedule: 2}})

// fakeHealth is a scripted upstream.Health: pure picker logic needs no real breaker.
type fakeHealth struct {
	testkit.HealthStub
	down    atomic.Bool // Available reports false
	refuse  atomic.Bool // Admit reports false
	admits  atomic.Int64
	reports atomic.Int64
}

func (h *fakeHealth) Available() bool { return !h.down.Load() }

func (h *fakeHealth) Admit() bool {
	if h.refuse.Load() {
		return false
	}
	h.admits.Add(1)
	return true
}

func (h *fakeHealth) Report(upstream.Outcome) { h.reports.Add(1) }

// fakePolicy hands out one fakeHealth per key, so tests can flip endpoints by key.
type fakePolicy struct {
	mu sync.Mutex
	hs map[string]*fakeHealth
}

func (p *fakePolicy) NewHealth(key string) upstream.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hs == nil {
		p.hs = make(map[string]*fakeHealth)
	}
	h := &fakeHealth{HealthStub: testkit.HealthStub{EndpointKey: key}}
	p.hs[key] = h
	return h
}

func (p *fakePolicy) SetMembers([]upstream.Health) {}

// key names the i-th test endpoint; the zero padding keeps key order equal to index order.
func key(i int) string { return fmt.Sprintf("127.0.0.1:%05d", 10000+i) }

// makeMembers builds members with the given weights, each with its own fakeHealth.
func makeMembers(weights ...int) ([]upstream.Member, []*fakeHealth) {
	ms := make([]upstream.Member, len(weights))
	hs := make([]*fakeHealth, len(weights))
	for i, w := range weights {
		hs[i] = &fakeHealth{}
		ms[i] = upstream.Member{
			Endpoint: upstream.Endpoint{Key: key(i), Scheme: "http", Weight: w},
			State:    upstream.NewEndpointState(key(i), hs[i]),
		}
	}
	return ms, hs
}

// makeMeasuredMembers is makeMembers with states that measure latency, as a Pool makes them
// for least_time.
func makeMeasuredMembers(weights ...int) ([]upstream.Member, []*fakeHealth) {
	ms, hs := makeMembers(weights...)
	for i := range ms {
		ms[i].State = upstream.NewMeasuredEndpointState(ms[i].Key, hs[i])
	}
	return ms, hs
}

// equalWeights returns n ones.
func equalWeights(n int) []int {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = 1
	}
	return ws
}

// indexOf returns m's position in members, failing the test for a foreign member.
func indexOf(t testing.TB, members []upstream.Member, m *upstream.Member) int {
	t.Helper()
	for i := range members {
		if &members[i] == m {
			return i
		}
	}
	t.Fatalf("picked member %q is not one of the picker's members", m.Key)
	return -1
}

// requireDrained fails unless every request admitted on states has been ended, and (for
// fake health) every admission has been reported exactly once.
func requireDrained(t testing.TB, states []*upstream.EndpointState) {
	t.Helper()
	for _, s := range states {
		if n := s.InFlight(); n != 0 {
			t.Errorf("endpoint %s: %d requests still in flight", s.Key(), n)
		}
		if h, ok := s.Health().(*fakeHealth); ok && h.admits.Load() != h.reports.Load() {
			t.Errorf("endpoint %s: %d admits but %d reports", s.Key(), h.admits.Load(), h.reports.Load())
		}
	}
}

// statesOf returns the members' states.
func statesOf(ms []upstream.Member) []*upstream.EndpointState {
	out := make([]*upstream.EndpointState, len(ms))
	for i := range ms {
		out[i] = ms[i].State
	}
	return out
}

// drainAfter registers a cleanup that checks the members are drained when the test ends.
func drainAfter(t *testing.T, ms []upstream.Member) {
	t.Cleanup(func() { requireDrained(t, statesOf(ms)) })
}
