package zookeeper

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/zktest"
	"github.com/switchyard/switchyard/upstream"
)

// firstBuilder is a test-only PickerBuilder: the benchmark measures propagation into the
// pool, not balancing.
type firstBuilder struct{}

type firstPicker []upstream.Member

func (firstBuilder) Build(ms []upstream.Member) upstream.Picker { return firstPicker(ms) }

func (p firstPicker) Pick(*http.Request, upstream.Excluded) (*upstream.Member, error) {
	if len(p) == 0 {
		return nil, upstream.ErrNoEndpoint
	}
	return &p[0], nil
}

// BenchmarkPropagation measures how long a registration or a deregistration (an ephemeral
// node created or deleted in ZooKeeper) takes to reach an upstream.Pool through the
// discoverer: one change per iteration, alternating, next to 10 stable instances. Run with
// -benchtime=200x or more for meaningful percentiles.
func BenchmarkPropagation(b *testing.B) {
	srv := zktest.Start(b)
	writer := connect(b, srv, 30*time.Second)
	mkdirs(b, writer, "/services/bench")
	for i := range 10 {
		create(b, writer, fmt.Sprintf("/services/bench/stable-%d", i), fmt.Sprintf("127.0.0.1:%d", 20000+i), zk.FlagEphemeral)
	}

	d, err := New(&config.ZooKeeper{Servers: []string{srv.Addr}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	pool := upstream.NewPool("bench", firstBuilder{}, upstream.PoolOptions{})
	applied := make(chan int, 64) // pool size after each applied update
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Watch(ctx, upstream.Target{Service: "bench"}, func(s upstream.Snapshot) {
			pool.Update(s)
			applied <- pool.View().Snapshot.Len()
		})
	}()
	defer func() { cancel(); <-done }()
	waitLen(b, applied, 10)

	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		path := "/services/bench/moving"
		start := time.Now()
		want := 11
		if i%2 == 0 {
			_, err = writer.Create(path, []byte("127.0.0.1:30000"), zk.FlagEphemeral, acl)
		} else {
			err = writer.Delete(path, -1)
			want = 10
		}
		if err != nil {
			b.Fatal(err)
		}
		waitLen(b, applied, want)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func waitLen(b *testing.B, applied <-chan int, n int) {
	b.Helper()
	deadline := time.After(eventually)
	for {
		select {
		case got := <-applied:
			if got == n {
				return
			}
		case <-deadline:
			b.Fatalf("pool never reached %d endpoints", n)
		}
	}
}
