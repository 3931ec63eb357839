package lb

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// pickCounts makes n picks with ex, ending each at once, and counts them per member.
func pickCounts(t *testing.T, p upstream.Picker, ms []upstream.Member, ex upstream.Excluded, n int) []int {
	t.Helper()
	counts := make([]int, len(ms))
	for range n {
		m, err := p.Pick(nil, ex)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		counts[indexOf(t, ms, m)]++
		m.State.Done(upstream.Outcome{Status: 200})
	}
	return counts
}

// TestSkipsUnavailable: members the health layer marks unavailable are never picked, and the
// survivors share evenly (weighted: in proportion to their weights), for scattered and for
// clustered outages.
func TestSkipsUnavailable(t *testing.T) {
	tests := []struct {
		name    string
		builder upstream.PickerBuilder
		weights []int
		down    []int
		share   []float64 // expected share per member; 0 for down ones
		tol     float64   // allowed deviation of each share
	}{
		// Fresh tickets for dead members keep round robin exact: stepping to the neighbour
		// instead would give member 2 half of all picks here.
		{"round_robin/one down", RoundRobin{}, equalWeights(4), []int{1}, []float64{1. / 3, 0, 1. / 3, 1. / 3}, 0},
		{"round_robin/run of 3", RoundRobin{}, equalWeights(6), []int{1, 2, 3}, []float64{1. / 3, 0, 0, 0, 1. / 3, 1. / 3}, 0},
		{"round_robin/large run", RoundRobin{}, equalWeights(20), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
			[]float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, .25, .25, .25, .25}, 0},
		{"weighted/heavy down", Weighted{}, []int{5, 1, 1, 2}, []int{0}, []float64{0, .25, .25, .5}, 0.05},
		{"weighted/light down", Weighted{}, []int{5, 1, 1, 2}, []int{2}, []float64{5. / 8, 1. / 8, 0, 2. / 8}, 0.05},
		{"weighted/interleaved", Weighted{MaxSchedule: 4}, []int{5, 1, 1, 2}, []int{3}, []float64{5. / 7, 1. / 7, 1. / 7, 0}, 0.05},
		{"least_conn/scan", LeastConn{}, equalWeights(4), []int{0, 3}, []float64{0, .5, .5, 0}, 0.05},
		{"least_conn/p2c", LeastConn{}, equalWeights(40), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
			[]float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				.05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05}, 0.02},
		{"random/one down", Random{}, []int{2, 1, 1}, []int{0}, []float64{0, .5, .5}, 0.03},
		{"random/heavy survives", Random{}, []int{6, 1, 1, 2}, []int{1, 2}, []float64{.75, 0, 0, .25}, 0.03},
		{"least_time/half down", LeastTime{}, equalWeights(8), []int{0, 2, 4, 6}, []float64{0, .25, 0, .25, 0, .25, 0, .25}, 0.03},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, hs := makeMembers(tt.weights...)
			drainAfter(t, ms)
			for _, i := range tt.down {
				hs[i].down.Store(true)
			}
			const n = 6000
			counts := pickCounts(t, tt.builder.Build(ms), ms, upstream.Excluded{}, n)
			for i, c := range counts {
				got := float64(c) / n
				if d := got - tt.share[i]; d > tt.tol+1e-9 || d < -tt.tol-1e-9 {
					t.Errorf("member %d: share %.4f, want %.4f ± %.2f (counts %v)", i, got, tt.share[i], tt.tol, counts)
				}
			}
			for _, i := range tt.down {
				if a := hs[i].admits.Load(); a != 0 {
					t.Errorf("unavailable member %d was admitted %d times", i, a)
				}
			}
		})
	}
}

// TestNoneAvailable: with every member unavailable, excluded or refusing admission, each
// policy returns the typed ErrNoEndpoint, leaves no request in flight, and (for refusals)
// has tried every member.
func TestNoneAvailable(t *testing.T) {
	for _, p := range variants {
		for _, size := range []int{1, 3, 40} {
			t.Run(p.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				cases := map[string]func(ms []upstream.Member, hs []*fakeHealth) upstream.Excluded{
					"all down": func(_ []upstream.Member, hs []*fakeHealth) upstream.Excluded {
						for _, h := range hs {
							h.down.Store(true)
						}
						return upstream.Excluded{}
					},
					"all refuse": func(_ []upstream.Member, hs []*fakeHealth) upstream.Excluded {
						for _, h := range hs {
							h.refuse.Store(true)
						}
						return upstream.Excluded{}
					},
					"excluded or down": func(ms []upstream.Member, hs []*fakeHealth) upstream.Excluded {
						var ex upstream.Excluded
						for i, h := range hs {
							if i < upstream.MaxExcluded {
								ex.Add(ms[i].State)
							} else {
								h.down.Store(true)
							}
						}
						return ex
					},
				}
				for name, setup := range cases {
					ms, hs := makeMembers(benchWeights(size)...)
					ex := setup(ms, hs)
					m, err := p.builder.Build(ms).Pick(nil, ex)
					if !errors.Is(err, upstream.ErrNoEndpoint) || m != nil {
						t.Fatalf("%s, %d members: Pick = %v, %v; want nil, ErrNoEndpoint", name, size, m, err)
					}
					requireDrained(t, statesOf(ms))
				}
			})
		}
	}
}

// TestRefusedAdmissionTriesAnother: a member whose Admit says no (a half-open breaker with no
// probe slot) is passed over for another, and only the admitted one is counted in flight.
func TestRefusedAdmissionTriesAnother(t *testing.T) {
	for _, p := range variants {
		for _, size := range []int{2, 5, 40} {
			t.Run(p.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				ms, hs := makeMembers(benchWeights(size)...)
				drainAfter(t, ms)
				for _, h := range hs[:size-1] {
					h.refuse.Store(true)
				}
				picker := p.builder.Build(ms)
				for range 50 {
					m, err := picker.Pick(nil, upstream.Excluded{})
					if err != nil {
						t.Fatalf("%d members, only the last admits: Pick error %v", size, err)
					}
					if i := indexOf(t, ms, m); i != size-1 {
						t.Fatalf("picked member %d, which refused admission", i)
					}
					for i := range ms[:size-1] {
						if n := ms[i].State.InFlight(); n != 0 {
							t.Fatalf("refusing member %d has %d in flight", i, n)
						}
					}
					m.State.Done(upstream.Outcome{Status: 200})
				}
			})
		}
	}
}

// TestExcludedHonoured: a retry never lands on the endpoints its earlier attempts used.
func TestExcludedHonoured(t *testing.T) {
	for _, p := range variants {
		for _, size := range []int{3, 10, 40} {
			t.Run(p.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				ms, _ := makeMembers(benchWeights(size)...)
				drainAfter(t, ms)
				var ex upstream.Excluded
				ex.Add(ms[0].State)
				ex.Add(ms[size/2].State)
				counts := pickCounts(t, p.builder.Build(ms), ms, ex, 20*size)
				if counts[0] != 0 || counts[size/2] != 0 {
					t.Fatalf("excluded members picked: counts %v", counts)
				}
			})
		}
	}
}

// TestLeastConnPrefersLeastLoaded: with loads 2, 1, 0 the idle member wins; when it goes down
// the next least loaded does.
func TestLeastConnPrefersLeastLoaded(t *testing.T) {
	ms, hs := makeMembers(1, 1, 1)
	drainAfter(t, ms)
	picker := LeastConn{}.Build(ms)
	hold := func(i int) {
		if !ms[i].State.TryAcquire() {
			t.Fatal("TryAcquire refused")
		}
		t.Cleanup(func() { ms[i].State.Done(upstream.Outcome{Status: 200}) })
	}
	hold(0)
	hold(0)
	hold(1)
	for _, step := range []struct {
		down []int
		want int
	}{{nil, 2}, {[]int{2}, 1}, {[]int{1, 2}, 0}} {
		for i, h := range hs {
			h.down.Store(false)
			for _, d := range step.down {
				if d == i {
					h.down.Store(true)
				}
			}
		}
		for range 20 {
			m, err := picker.Pick(nil, upstream.Excluded{})
			if err != nil {
				t.Fatal(err)
			}
			if got := indexOf(t, ms, m); got != step.want {
				t.Fatalf("down %v: picked member %d, want least loaded %d", step.down, got, step.want)
			}
			m.State.Done(upstream.Outcome{Status: 200})
		}
	}
}

// TestLeastConnTieBreakIsRandom: among equally loaded members every one gets picked, in
// roughly equal numbers, not the first in key order.
func TestLeastConnTieBreakIsRandom(t *testing.T) {
	for _, size := range []int{2, 5, LeastConnFullScanMax, 100} {
		ms, _ := makeMembers(equalWeights(size)...)
		const per = 400
		counts := pickCounts(t, LeastConn{}.Build(ms), ms, upstream.Excluded{}, per*size)
		for i, c := range counts {
			// A binomial count with mean 400 is outside [250, 550] far less than once in
			// 10^9 draws; a biased tie-break lands way outside.
			if c < per*5/8 || c > per*11/8 {
				t.Fatalf("%d members: member %d picked %d times, want about %d (counts %v)", size, i, c, per, counts)
			}
		}
		requireDrained(t, statesOf(ms))
	}
}

// TestLeastTimeSingleMember: a pool of one has nothing to compare; it is picked while
// usable, and not when excluded or down.
func TestLeastTimeSingleMember(t *testing.T) {
	ms, hs := makeMembers(1)
	drainAfter(t, ms)
	p := LeastTime{}.Build(ms)
	m, err := p.Pick(nil, upstream.Excluded{})
	if err != nil || m != &ms[0] {
		t.Fatalf("Pick = %v, %v", m, err)
	}
	m.State.Done(upstream.Outcome{Status: 200})
	var ex upstream.Excluded
	ex.Add(ms[0].State)
	if _, err := p.Pick(nil, ex); !errors.Is(err, upstream.ErrNoEndpoint) {
		t.Fatalf("excluded: err %v", err)
	}
	hs[0].down.Store(true)
	if _, err := p.Pick(nil, upstream.Excluded{}); !errors.Is(err, upstream.ErrNoEndpoint) {
		t.Fatalf("down: err %v", err)
	}
}

// TestLeastTimePrefersFaster: with in-flight counts equal, the member with the lower
// latency wins every pair it is in; an unmeasured idle member is tried first, and an
// unmeasured busy one is avoided until it answers.
func TestLeastTimePrefersFaster(t *testing.T) {
	ms, _ := makeMeasuredMembers(1, 1)
	drainAfter(t, ms)
	p := LeastTime{}.Build(ms)
	observe := func(i int, latency time.Duration) {
		if !ms[i].State.TryAcquire() {
			t.Fatal("not admitted")
		}
		ms[i].State.Done(upstream.Outcome{Status: 200, Latency: latency})
	}
	// Member 0 measured, member 1 not: the idle unmeasured one is tried.
	observe(0, time.Millisecond)
	m, err := p.Pick(nil, upstream.Excluded{})
	if err != nil || m != &ms[1] {
		t.Fatalf("picked %v, want the unmeasured member", m)
	}
	// Now it is busy and still unmeasured: the measured one wins.
	for range 20 {
		m2, err := p.Pick(nil, upstream.Excluded{})
		if err != nil || m2 != &ms[0] {
			t.Fatalf("picked %v while the unmeasured member is busy", m2)
		}
		m2.State.Done(upstream.Outcome{Status: 200, Latency: time.Millisecond})
	}
	m.State.Done(upstream.Outcome{Status: 200, Latency: 50 * time.Millisecond})
	// Member 1 answered slowly: member 0 takes every pick.
	for range 100 {
		m2, err := p.Pick(nil, upstream.Excluded{})
		if err != nil || m2 != &ms[0] {
			t.Fatalf("picked %v, want the faster member", m2)
		}
		m2.State.Done(upstream.Outcome{Status: 200, Latency: time.Millisecond})
	}
}

// TestRandomAliasTable: the alias table gives each member its exact share of the 2^32 x n
// outcomes (up to one part in 2^32 of rounding per column); weights above maxWeight count
// as maxWeight, so huge ones neither overflow nor skew the shares.
func TestRandomAliasTable(t *testing.T) {
	for _, weights := range [][]int{{1}, {1, 1}, {5, 1, 1}, {1, 9, 3, 4, 7, 2, 2, 30}, {1000000, 1}, equalWeights(1000),
		{1 << 62, 1 << 62, 1 << 62, 1}, {maxWeight + 7, maxWeight, 1}} {
		ms, _ := makeMembers(weights...)
		p := newAliasPicker(ms)
		n := len(weights)
		share := make([]float64, n)
		for i := range n {
			keep := float64(p.threshold[i]) / aliasFull
			share[i] += keep / float64(n)
			share[p.alias[i]] += (1 - keep) / float64(n)
		}
		total := 0
		for _, w := range weights {
			total += min(w, maxWeight)
		}
		for i, w := range weights {
			want := float64(min(w, maxWeight)) / float64(total)
			if d := share[i] - want; d > 1e-9 || d < -1e-9 {
				t.Fatalf("weights %v: member %d has share %v, want %v", weights, i, share[i], want)
			}
		}
	}
}

// TestLeastTimeEvenWhenEqual: members that answer equally fast share the traffic evenly.
// (TestDistribution leaves least_time out: without latencies its picks follow which
// goroutine the scheduler preempted while holding a request.)
func TestLeastTimeEvenWhenEqual(t *testing.T) {
	ms, _ := makeMeasuredMembers(equalWeights(10)...)
	drainAfter(t, ms)
	p := LeastTime{}.Build(ms)
	counts := make([]int, len(ms))
	const n = 20_000
	for range n {
		m, err := p.Pick(nil, upstream.Excluded{})
		if err != nil {
			t.Fatal(err)
		}
		counts[indexOf(t, ms, m)]++
		m.State.Done(upstream.Outcome{Status: 200, Latency: time.Millisecond})
	}
	for i, c := range counts {
		if share := float64(c) / n; share < 0.08 || share > 0.12 {
			t.Fatalf("member %d: share %.3f, want about 0.1 (counts %v)", i, share, counts)
		}
	}
}
