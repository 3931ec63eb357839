package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/bench/scale"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/upstream"
)

// scaleRun is the shape of one scale measurement.
type scaleRun struct {
	services    int // watched services, each a key prefix
	perService  int // instance keys per service at start
	burst       int // services that each get one new instance, all at once
	writers     int // goroutines writing the burst
	maxTxnOps   int // keys per transaction while loading (etcd's default limit is 128)
	waitForEach time.Duration
}

// scaleFigures are what one run measured.
type scaleFigures struct {
	firstSnapshot  time.Duration // Watch calls started -> every service's first snapshot delivered
	allWatching    time.Duration // Watch calls started -> etcd holds a watcher for every service
	startCPU       time.Duration // processor time the process (client and server) used meanwhile
	growth         scale.Memory  // process memory added by the watches (client and server side)
	watchers       float64       // etcd server's watcher gauge, added by the run
	watchStreams   float64       // etcd server's gRPC watch stream gauge, added by the run
	p50, p99, pMax time.Duration // Put returned -> update callback saw the new instance
}

// runScale loads an embedded etcd with run.services x run.perService instance keys, watches
// every service through one Discoverer (as the gateway does: one client, one Watch call per
// pool), then writes one new instance into run.burst services at once and times each until
// its update callback sees it. Every snapshot is checked for the exact expected size.
func runScale(tb testing.TB, run scaleRun) scaleFigures {
	srv := etcdtest.Start(tb)
	writer := srv.Client(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	service := func(i int) string { return fmt.Sprintf("svc-%05d", i) }
	loadInstances(tb, ctx, writer, run, service)

	cli, err := NewClient(&config.Etcd{Endpoints: srv.Endpoints()})
	if err != nil {
		tb.Fatal(err)
	}
	defer cli.Close()
	reg := prometheus.NewRegistry()
	d := New(cli, Options{Logger: slog.New(slog.DiscardHandler), Metrics: upstream.NewDiscoveryMetrics(reg)})

	before := scale.ReadMemory()
	watchersBefore, streamsBefore := etcdWatchGauges(tb)
	startCPU := scale.CPUTime()
	start := time.Now()
	watches := scale.WatchAll(ctx, d, run.services, run.perService, service)
	defer watches.Stop()
	if !watches.WaitFirst(run.waitForEach) {
		tb.Fatalf("not every one of %d services had its first snapshot within %v", run.services, run.waitForEach)
	}
	f := scaleFigures{firstSnapshot: time.Since(start)}
	// A service's first snapshot comes from its Get; its watch is created after that, and
	// the client creates a stream's watches one at a time. Wait for all of them, so the
	// burst measures propagation and not watch creation.
	for deadline := time.Now().Add(run.waitForEach); ; time.Sleep(5 * time.Millisecond) {
		watchers, _ := etcdWatchGauges(tb)
		if watchers-watchersBefore >= float64(run.services) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("etcd holds %.0f watchers after %v, want %d", watchers-watchersBefore, run.waitForEach, run.services)
		}
	}
	f.allWatching, f.startCPU = time.Since(start), scale.CPUTime()-startCPU
	f.growth = scale.Growth(before, scale.ReadMemory())
	watchersAfter, streamsAfter := etcdWatchGauges(tb)
	f.watchers, f.watchStreams = watchersAfter-watchersBefore, streamsAfter-streamsBefore

	lat := burstChanges(tb, ctx, writer, run, service, watches.Seen)
	if n := watches.Wrong.Load(); n != 0 {
		tb.Errorf("%d snapshots had neither %d nor %d endpoints", n, run.perService, run.perService+1)
	}
	f.p50, f.p99, f.pMax = scale.Percentile(lat, 0.50), scale.Percentile(lat, 0.99), scale.Percentile(lat, 1)
	// A failed call here is a read or watch that timed out under the load of the start: what
	// the bounded lists exist to prevent.
	if n, err := testutil.GatherAndCount(reg, "switchyard_registry_errors_total"); err != nil || n != 0 {
		tb.Errorf("%d services had failed etcd calls (err %v), want none", n, err)
	}
	return f
}

// loadInstances writes every service's instance keys in transactions of run.maxTxnOps puts,
// four transactions at a time.
func loadInstances(tb testing.TB, ctx context.Context, writer *clientv3.Client, run scaleRun, service func(int) string) {
	ops := make([]clientv3.Op, 0, run.services*run.perService)
	for i := range run.services {
		for j := range run.perService {
			addr := fmt.Sprintf("127.0.0.1:%d", 20000+j)
			ops = append(ops, clientv3.OpPut(DefaultPrefix+service(i)+"/"+addr, addr))
		}
	}
	batches := make(chan []clientv3.Op)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range 4 {
		wg.Go(func() {
			for b := range batches {
				if _, err := writer.Txn(ctx).Then(b...).Commit(); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	for len(ops) > 0 {
		n := min(run.maxTxnOps, len(ops))
		batches <- ops[:n]
		ops = ops[n:]
	}
	close(batches)
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatalf("loading instances: %v", *err)
	}
}

// burstChanges puts one new instance into run.burst services spread over all of them, from
// run.writers goroutines at once, and returns each change's time from its Put returning to
// its service's update callback seeing it (0 when the callback was first: etcd notifies
// watchers before the Put's answer reaches the writer).
func burstChanges(tb testing.TB, ctx context.Context, writer *clientv3.Client, run scaleRun, service func(int) string, seen []atomic.Int64) []time.Duration {
	step := run.services / run.burst
	returned := make([]int64, run.burst)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range run.writers {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < run.burst; k = int(next.Add(1) - 1) {
				const addr = "127.0.0.2:30000"
				if _, err := writer.Put(ctx, DefaultPrefix+service(k*step)+"/burst", addr); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				returned[k] = time.Now().UnixNano()
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatalf("burst put: %v", *err)
	}
	deadline := time.Now().Add(run.waitForEach)
	lat := make([]time.Duration, 0, run.burst)
	for k := range run.burst {
		for seen[k*step].Load() == 0 {
			if time.Now().After(deadline) {
				tb.Fatalf("service %s never saw its burst instance within %v", service(k*step), run.waitForEach)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, max(time.Duration(seen[k*step].Load()-returned[k]), 0))
	}
	return lat
}

// etcdWatchGauges reads the embedded server's watcher and watch-stream gauges (etcd registers
// them with the default Prometheus registry, process-wide).
func etcdWatchGauges(tb testing.TB) (watchers, streams float64) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "etcd_debugging_mvcc_watcher_total":
				watchers += m.GetGauge().GetValue()
			case "etcd_debugging_mvcc_watch_stream_total":
				streams += m.GetGauge().GetValue()
			}
		}
	}
	return watchers, streams
}

func (f scaleFigures) log(tb testing.TB, run scaleRun) {
	tb.Logf("etcd %d services x %d endpoints: first snapshot of all %v, all watches created %v (CPU %v); heap +%.1f MiB (%.0f B/service), stacks +%.1f MiB, RSS +%.1f MiB, goroutines +%d; "+
		"server watchers +%.0f on %.0f gRPC watch stream(s); burst of %d: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		run.services, run.perService, f.firstSnapshot.Round(time.Millisecond), f.allWatching.Round(time.Millisecond), f.startCPU.Round(time.Millisecond),
		scale.MiB(f.growth.HeapBytes), float64(f.growth.HeapBytes)/float64(run.services), scale.MiB(f.growth.StackBytes), scale.MiB(f.growth.RSSBytes), f.growth.Goroutines,
		f.watchers, f.watchStreams, run.burst, scale.Millis(f.p50), scale.Millis(f.p99), scale.Millis(f.pMax))
}

// TestScale watches 10,000 services (1 instance each) and applies a burst of 1,000 changes:
// every service gets its first snapshot, every change arrives, and all the watches share one
// gRPC watch stream (one per client; etcd keeps one watcher per Watch call on it). The race
// detector allows 8,128 live goroutines, so under -race it watches 2,000 services.
func TestScale(t *testing.T) {
	run := scaleRun{services: 10000, perService: 1, burst: 1000, writers: 8, maxTxnOps: 128, waitForEach: time.Minute}
	if raceEnabled {
		run.services, run.burst = 2000, 500
	}
	f := runScale(t, run)
	f.log(t, run)
	if f.watchStreams != 1 {
		t.Errorf("watch streams added = %v, want 1: every Watch must share the client's stream", f.watchStreams)
	}
	if f.watchers != float64(run.services) {
		t.Errorf("server watchers added = %v, want one per service (%d)", f.watchers, run.services)
	}
}

// BenchmarkScale is the large run: 10,000 services x 10 instances (100,000 endpoints), a
// burst of 1,000 changes. One iteration is one whole run; use -benchtime=1x:
//
//	go test -run '^$' -bench Scale -benchtime=1x ./upstream/etcd/
func BenchmarkScale(b *testing.B) {
	run := scaleRun{services: 10000, perService: 10, burst: 1000, writers: 8, maxTxnOps: 128, waitForEach: 2 * time.Minute}
	for range b.N {
		f := runScale(b, run)
		f.log(b, run)
		b.ReportMetric(scale.Millis(f.firstSnapshot), "first-snapshot-ms")
		b.ReportMetric(scale.Millis(f.allWatching), "all-watching-ms")
		b.ReportMetric(scale.Millis(f.startCPU), "start-cpu-ms")
		b.ReportMetric(scale.MiB(f.growth.StackBytes), "stack-MiB")
		b.ReportMetric(scale.MiB(f.growth.HeapBytes), "heap-MiB")
		b.ReportMetric(scale.MiB(f.growth.RSSBytes), "rss-MiB")
		b.ReportMetric(f.watchers, "watchers")
		b.ReportMetric(f.watchStreams, "watch-streams")
		b.ReportMetric(scale.Millis(f.p50), "p50-ms")
		b.ReportMetric(scale.Millis(f.p99), "p99-ms")
	}
}
