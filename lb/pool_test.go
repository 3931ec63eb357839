package lb

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/switchyard/switchyard/upstream"
)

// snapshot builds a snapshot of test endpoints idx, with weight 1 + idx mod 4 so weighted
// pools are not all-equal.
func snapshot(idx ...int) upstream.Snapshot {
	eps := make([]upstream.Endpoint, len(idx))
	for i, k := range idx {
		eps[i] = upstream.Endpoint{Key: key(k), Weight: 1 + k%4}
	}
	return upstream.NewSnapshot(eps)
}

// stateOf returns the pool's current state for k, or nil.
func stateOf(p *upstream.Pool, k string) *upstream.EndpointState {
	for _, m := range p.View().Members {
		if m.Key == k {
			return m.State
		}
	}
	return nil
}

// TestReannouncedEndpointKeepsCount: a request picked before its endpoint left the snapshot
// is still counted when a registry re-announces the endpoint, on the state the new picker
// uses, and ending it brings the count back to zero.
func TestReannouncedEndpointKeepsCount(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			pool := upstream.NewPool("svc", p.builder, upstream.PoolOptions{Health: &fakePolicy{}})
			pool.Update(snapshot(0, 1, 2))
			m, err := pool.Pick(nil, upstream.Excluded{})
			if err != nil {
				t.Fatal(err)
			}
			var others []int
			for i := range 3 {
				if key(i) != m.Key {
					others = append(others, i)
				}
			}
			pool.Update(snapshot(others...))
			pool.Update(snapshot(0, 1, 2))
			st := stateOf(pool, m.Key)
			if st != m.State {
				t.Fatalf("re-announced %s got a new state", m.Key)
			}
			if n := st.InFlight(); n != 1 {
				t.Fatalf("re-announced %s: in flight %d, want 1", m.Key, n)
			}
			// The new picker must see that count: least_conn avoids the busy member.
			if p.name == "least_conn" {
				for range 20 {
					m2, err := pool.Pick(nil, upstream.Excluded{})
					if err != nil {
						t.Fatal(err)
					}
					if m2.Key == m.Key {
						t.Fatalf("least_conn picked %s, which is busy, over idle members", m.Key)
					}
					m2.State.Done(upstream.Outcome{Status: 200})
				}
			}
			m.State.Done(upstream.Outcome{Status: 200})
			requireDrained(t, statesOf(pool.View().Members))
		})
	}
}

// TestRemovedEndpointStillDecrements: a request on an endpoint that is then removed for good
// ends on the state it started on; an endpoint added later under the same key starts fresh.
func TestRemovedEndpointStillDecrements(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			pool := upstream.NewPool("svc", p.builder, upstream.PoolOptions{RetainRemoved: -1})
			pool.Update(snapshot(0, 1))
			m, err := pool.Pick(nil, upstream.Excluded{})
			if err != nil {
				t.Fatal(err)
			}
			old := m.State
			pool.Update(snapshot())
			if _, err := pool.Pick(nil, upstream.Excluded{}); !errors.Is(err, upstream.ErrNoEndpoint) {
				t.Fatalf("empty pool: Pick error %v, want ErrNoEndpoint", err)
			}
			m.State.Done(upstream.Outcome{Status: 502})
			if n := old.InFlight(); n != 0 {
				t.Fatalf("removed endpoint: in flight %d after Done, want 0", n)
			}
			pool.Update(snapshot(0, 1))
			if st := stateOf(pool, m.Key); st == old || st.InFlight() != 0 {
				t.Fatalf("endpoint re-added after release: state reused (%v) or busy (%d)", st == old, st.InFlight())
			}
		})
	}
}

// TestChurnReleasesState: over 1,000 churn cycles, each replacing part of the pool while
// requests are in flight, the state of endpoints gone for good becomes garbage: neither the
// pickers nor the pool keep it once RetainRemoved has passed.
func TestChurnReleasesState(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			pool := upstream.NewPool("svc", p.builder, upstream.PoolOptions{
				RetainRemoved: 3 * time.Second,
				Now:           func() time.Time { return now },
			})
			var seen []weak.Pointer[upstream.EndpointState]
			known := make(map[*upstream.EndpointState]bool)
			var held []*upstream.Member
			const size = 8
			for cycle := range 1000 {
				idx := make([]int, size)
				for i := range idx {
					idx[i] = cycle + i // each cycle one endpoint leaves, one arrives
				}
				pool.Update(snapshot(idx...))
				now = now.Add(time.Second)
				for _, m := range pool.View().Members {
					if !known[m.State] {
						known[m.State] = true
						seen = append(seen, weak.Make(m.State))
					}
				}
				// End the requests of the previous cycle, some on now-removed endpoints,
				// then start new ones that will outlive the next update.
				for _, m := range held {
					m.State.Done(upstream.Outcome{Status: 200})
				}
				held = held[:0]
				for range 3 {
					m, err := pool.Pick(nil, upstream.Excluded{})
					if err != nil {
						t.Fatal(err)
					}
					held = append(held, m)
				}
			}
			for _, m := range held {
				m.State.Done(upstream.Outcome{Status: 200})
			}
			held = nil
			requireDrained(t, statesOf(pool.View().Members))
			known = nil
			runtime.GC()
			runtime.GC()
			live := 0
			for _, w := range seen {
				if w.Value() != nil {
					live++
				}
			}
			limit := size + pool.RetainedCount()
			if live > limit || pool.RetainedCount() > 3 {
				t.Fatalf("after 1000 cycles %d of %d states live, %d retained; want at most %d live, 3 retained",
					live, len(seen), pool.RetainedCount(), limit)
			}
		})
	}
}

// TestConcurrentPicksDuringSwaps: pickers race 1,000 pool updates (endpoints joining,
// leaving, coming back, changing weight) with requests held across updates; every pick gets
// a member and every state ever used ends with nothing in flight. Run under -race.
func TestConcurrentPicksDuringSwaps(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			pool := upstream.NewPool("svc", p.builder, upstream.PoolOptions{Health: &fakePolicy{}})
			r := rand.New(rand.NewPCG(5, 6))
			randomSnapshot := func() upstream.Snapshot {
				idx := []int{r.IntN(4)} // never empty
				for k := 4; k < 60; k++ {
					if r.IntN(3) == 0 {
						idx = append(idx, k)
					}
				}
				s := snapshot(idx...)
				eps := s.Endpoints()
				out := make([]upstream.Endpoint, len(eps))
				for i, e := range eps {
					e.Weight = 1 + r.IntN(5)
					out[i] = e
				}
				return upstream.NewSnapshot(out)
			}
			states := make(map[*upstream.EndpointState]bool)
			update := func() {
				pool.Update(randomSnapshot())
				for _, m := range pool.View().Members {
					states[m.State] = true
				}
			}
			update()

			var stop atomic.Bool
			var picks, failures atomic.Int64
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					var held []*upstream.Member
					for !stop.Load() {
						m, err := pool.Pick(nil, upstream.Excluded{})
						if err != nil {
							failures.Add(1)
							continue
						}
						picks.Add(1)
						held = append(held, m)
						if len(held) == 4 {
							for _, h := range held {
								h.State.Done(upstream.Outcome{Status: 200})
							}
							held = held[:0]
						}
						runtime.Gosched()
					}
					for _, h := range held {
						h.State.Done(upstream.Outcome{Status: 200})
					}
				})
			}
			for range 1000 {
				update()
			}
			stop.Store(true)
			wg.Wait()
			if failures.Load() != 0 || picks.Load() == 0 {
				t.Fatalf("%d picks, %d failures; want picks and no failures", picks.Load(), failures.Load())
			}
			all := make([]*upstream.EndpointState, 0, len(states))
			for s := range states {
				all = append(all, s)
			}
			requireDrained(t, all)
		})
	}
}
