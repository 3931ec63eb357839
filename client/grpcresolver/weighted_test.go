package grpcresolver

import (
	"strconv"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/resolver"

	"github.com/switchyard/switchyard/upstream"
)

// fakeSubConn stands for a ready connection; the picker only hands it back.
type fakeSubConn struct {
	balancer.SubConn
	addr string
}

// weightedPickerOver builds the WeightedBalancer's picker over ready connections to
// addresses with the given weights, as base's balancer would after a resolver update.
func weightedPickerOver(weights ...int) (balancer.Picker, map[balancer.SubConn]string) {
	wb := &weightedBalancer{weights: map[string]int{}}
	info := base.PickerBuildInfo{ReadySCs: map[balancer.SubConn]base.SubConnInfo{}}
	names := map[balancer.SubConn]string{}
	eps := make([]upstream.Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = upstream.Endpoint{Key: "127.0.0.1:" + strconv.Itoa(9000+i), Weight: w}
	}
	for _, a := range State(upstream.NewSnapshot(eps), "users").Addresses {
		wb.weights[a.Addr] = Weight(a)
		// base keeps the address it first saw: weight 1 here, so the picker must take the
		// weight the balancer recorded.
		sc := &fakeSubConn{addr: a.Addr}
		info.ReadySCs[sc] = base.SubConnInfo{Address: resolver.Address{Addr: a.Addr}}
		names[sc] = a.Addr
	}
	return (&weightedPickerBuilder{wb}).Build(info), names
}

func TestWeightedPickerShares(t *testing.T) {
	weights := []int{1, 3, 2, 10}
	p, names := weightedPickerOver(weights...)
	counts := map[string]int{}
	total := 0
	for _, w := range weights {
		total += w
	}
	for range 100 * total {
		r, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		counts[names[r.SubConn]]++
		r.Done(balancer.DoneInfo{})
	}
	for i, w := range weights {
		if got := counts["127.0.0.1:"+strconv.Itoa(9000+i)]; got != 100*w {
			t.Fatalf("weight %d: %d picks of %d, want %d (%v)", w, got, 100*total, 100*w, counts)
		}
	}
}

func TestWeightedPickerNoneReady(t *testing.T) {
	p := (&weightedPickerBuilder{&weightedBalancer{weights: map[string]int{}}}).Build(base.PickerBuildInfo{})
	if _, err := p.Pick(balancer.PickInfo{}); err != balancer.ErrNoSubConnAvailable {
		t.Fatalf("err %v, want ErrNoSubConnAvailable", err)
	}
}

func TestWeightedPickDoesNotAllocate(t *testing.T) {
	p, _ := weightedPickerOver(1, 3, 2, 10)
	allocs := testing.AllocsPerRun(1000, func() {
		r, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		r.Done(balancer.DoneInfo{})
	})
	if allocs != 0 {
		t.Fatalf("Pick allocates %v times, want 0", allocs)
	}
}

// BenchmarkWeightedPick is one pick and its Done on the gRPC weighted balancer's picker.
func BenchmarkWeightedPick(b *testing.B) {
	for _, n := range []int{2, 100, 10_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			weights := make([]int, n)
			for i := range weights {
				weights[i] = 1 + i%4
			}
			p, _ := weightedPickerOver(weights...)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := p.Pick(balancer.PickInfo{})
					if err != nil {
						b.Error(err)
						return
					}
					r.Done(balancer.DoneInfo{})
				}
			})
		})
	}
}
