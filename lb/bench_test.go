package lb

import (
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// benchSizes are issue 4's pool sizes.
var benchSizes = []int{2, 100, 10_000}

// benchWeights gives endpoint i weight 1 + i mod 4: the weighted pools at 2 and 100 members
// use the precomputed smooth-WRR schedule, the one at 10,000 the interleaved picker.
func benchWeights(n int) []int {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = 1 + i%4
	}
	return ws
}

// benchSnapshot is a snapshot of n endpoints with benchWeights.
func benchSnapshot(n int) upstream.Snapshot {
	ws := benchWeights(n)
	eps := make([]upstream.Endpoint, n)
	for i := range eps {
		eps[i] = upstream.Endpoint{Key: "10.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250) + ":8080", Weight: ws[i]}
	}
	return upstream.NewSnapshot(eps)
}

// BenchmarkPick measures one Pick plus its Done, the request path's whole share of load
// balancing, from b.RunParallel goroutines (run with -cpu 1,8) on a pool built by
// upstream.Pool.Update, with the default no-health state. Done reports a latency, which
// least_time's pool measures (a clock read and an exponential) and the others ignore.
func BenchmarkPick(b *testing.B) {
	for _, p := range policies {
		for _, n := range benchSizes {
			b.Run(p.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				pool := upstream.NewPool("bench", p.builder, upstream.PoolOptions{})
				pool.Update(benchSnapshot(n))
				picker := pool.View().Picker
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						m, err := picker.Pick(nil, upstream.Excluded{})
						if err != nil {
							b.Error(err)
							return
						}
						m.State.Done(upstream.Outcome{Status: 200, Latency: time.Millisecond})
					}
				})
			})
		}
	}
}

// BenchmarkBuild measures building a picker alone from an existing member set.
func BenchmarkBuild(b *testing.B) {
	for _, p := range policies {
		for _, n := range benchSizes {
			b.Run(p.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				pool := upstream.NewPool("bench", p.builder, upstream.PoolOptions{})
				pool.Update(benchSnapshot(n))
				members := pool.View().Members
				b.ReportAllocs()
				for b.Loop() {
					p.builder.Build(members)
				}
			})
		}
	}
}

// BenchmarkPoolUpdate measures a whole snapshot update at 10,000 endpoints, picker build
// included (issue 4's budget: 10 ms). Alternate snapshots differ in one endpoint so every
// update really changes the pool.
func BenchmarkPoolUpdate(b *testing.B) {
	const n = 10_000
	for _, p := range policies {
		b.Run(p.name+"/"+strconv.Itoa(n), func(b *testing.B) {
			snaps := [2]upstream.Snapshot{benchSnapshot(n), benchSnapshot(n + 1)}
			pool := upstream.NewPool("bench", p.builder, upstream.PoolOptions{RetainRemoved: -1})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				pool.Update(snaps[i%2])
				i++
			}
		})
	}
}
