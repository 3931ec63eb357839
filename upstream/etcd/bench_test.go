package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
)

// BenchmarkPropagation measures registry-to-traffic latency: from an etcd Put (or Delete)
// call starting to the pool's picker returning (or no longer returning) the endpoint. Each
// iteration is one registration and one deregistration. Run with -benchtime=200x or more
// for stable percentiles:
//
//	go test -run '^$' -bench Propagation -benchtime=300x ./upstream/etcd/
func BenchmarkPropagation(b *testing.B) {
	srv := etcdtest.Start(b)
	writer := srv.Client(b)
	// The gateway's own client, built as in production.
	cli, err := NewClient(&config.Etcd{Endpoints: srv.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	pool := upstream.NewPool("users", lb.RoundRobin{}, upstream.PoolOptions{})
	applied := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d := New(cli, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() {
		defer close(done)
		_ = d.Watch(ctx, upstream.Target{Service: "users"}, func(s upstream.Snapshot) {
			pool.Update(s)
			select {
			case applied <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()

	req := httptest.NewRequest("GET", "/", nil)
	// present reports whether a Pick returns key (the pool holds at most that one endpoint).
	present := func(key string) bool {
		m, err := pool.Pick(req, upstream.Excluded{})
		if errors.Is(err, upstream.ErrNoEndpoint) {
			return false
		}
		m.State.Done(upstream.Outcome{})
		return m.Key == key
	}
	wait := func(start time.Time, key string, want bool) time.Duration {
		timeout := time.NewTimer(10 * time.Second)
		defer timeout.Stop()
		for present(key) != want {
			select {
			case <-applied:
			case <-timeout.C:
				b.Fatalf("endpoint %s present=%v never observed", key, want)
			}
		}
		return time.Since(start)
	}
	opCtx, opCancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer opCancel()
	wait(time.Now(), "", false) // first (empty) snapshot

	lat := make([]time.Duration, 0, 2*b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		key := fmt.Sprintf("127.0.0.1:%d", 10000+i%50000)
		start := time.Now()
		if _, err := writer.Put(opCtx, "/services/users/"+key, key); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, wait(start, key, true))
		start = time.Now()
		if _, err := writer.Delete(opCtx, "/services/users/"+key); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, wait(start, key, false))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat)), "changes")
}
