package zookeeper

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/bench/scale"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/zktest"
)

// scaleRun is the shape of one scale measurement.
type scaleRun struct {
	services    int // watched service nodes
	perService  int // instance nodes per service at start
	burst       int // services that each get one new instance, all at once
	writers     int // goroutines writing the burst
	multiOps    int // creates per multi request while loading
	waitForEach time.Duration
}

// scaleFigures are what one run measured.
type scaleFigures struct {
	firstSnapshot  time.Duration // Watch calls started -> every service's first snapshot delivered
	startCPU       time.Duration // processor time this process (the client) used meanwhile
	growth         scale.Memory  // this process's memory added by the watches
	serverRSS      uint64        // the ZooKeeper server's resident set once every watch is set
	watches        int           // zk_watch_count added by the run (server side)
	p50, p99, pMax time.Duration // create returned -> update callback saw the new instance
}

// runScale creates run.services service nodes with run.perService instance nodes each,
// watches every service through one Discoverer (one session, one Watch call per pool, as
// the gateway does), then creates one new instance in run.burst services at once and times
// each until its update callback sees it.
func runScale(tb testing.TB, run scaleRun) scaleFigures {
	srv := zktest.Start(tb)
	writer := connect(tb, srv, 30*time.Second)
	service := func(i int) string { return fmt.Sprintf("svc-%05d", i) }
	mkdirs(tb, writer, DefaultRoot)
	loadNodes(tb, writer, run, service)
	watchesBefore := watchCount(tb, srv)

	d, err := New(&config.ZooKeeper{Servers: []string{srv.Addr}, SessionTimeout: 30 * time.Second},
		Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	before := scale.ReadMemory()
	startCPU := scale.CPUTime()
	start := time.Now()
	watches := scale.WatchAll(context.Background(), d, run.services, run.perService, service)
	defer watches.Stop()
	if !watches.WaitFirst(run.waitForEach) {
		tb.Fatalf("not every one of %d services had its first snapshot within %v", run.services, run.waitForEach)
	}
	// A snapshot is emitted after the reads that set its watches have answered, so every
	// watch is in place on the server now.
	f := scaleFigures{firstSnapshot: time.Since(start), startCPU: scale.CPUTime() - startCPU, growth: scale.Growth(before, scale.ReadMemory()),
		serverRSS: scale.ProcessRSS(srv.PID()), watches: watchCount(tb, srv) - watchesBefore}

	lat := burstCreates(tb, writer, run, service, watches.Seen)
	if n := watches.Wrong.Load(); n != 0 {
		tb.Errorf("%d snapshots had neither %d nor %d endpoints", n, run.perService, run.perService+1)
	}
	f.p50, f.p99, f.pMax = scale.Percentile(lat, 0.50), scale.Percentile(lat, 0.99), scale.Percentile(lat, 1)
	return f
}

// loadNodes creates every service node and its instances in multi requests of run.multiOps
// creates, four requests at a time.
func loadNodes(tb testing.TB, writer *zk.Conn, run scaleRun, service func(int) string) {
	ops := make([]any, 0, run.services*(1+run.perService))
	for i := range run.services {
		path := DefaultRoot + "/" + service(i)
		ops = append(ops, &zk.CreateRequest{Path: path, Acl: acl})
		for j := range run.perService {
			addr := "127.0.0.1:" + strconv.Itoa(20000+j)
			ops = append(ops, &zk.CreateRequest{Path: path + "/" + addr, Data: []byte(addr), Acl: acl})
		}
	}
	batches := make(chan []any)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range 4 {
		wg.Go(func() {
			for b := range batches {
				if _, err := writer.Multi(b...); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	// A batch holds whole services, in order, so a service node is created before (or in
	// the same request as) its instances.
	per := 1 + run.perService
	size := max(run.multiOps/per, 1) * per
	for len(ops) > 0 {
		n := min(size, len(ops))
		batches <- ops[:n]
		ops = ops[n:]
	}
	close(batches)
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatalf("loading nodes: %v", *err)
	}
}

// burstCreates creates one new instance in run.burst services spread over all of them,
// from run.writers goroutines at once, and returns each change's time from its Create
// returning to its service's update callback seeing it (0 when the callback was first).
func burstCreates(tb testing.TB, writer *zk.Conn, run scaleRun, service func(int) string, seen []atomic.Int64) []time.Duration {
	step := run.services / run.burst
	returned := make([]int64, run.burst)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range run.writers {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < run.burst; k = int(next.Add(1) - 1) {
				const addr = "127.0.0.2:30000"
				if _, err := writer.Create(DefaultRoot+"/"+service(k*step)+"/burst", []byte(addr), 0, acl); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				returned[k] = time.Now().UnixNano()
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatalf("burst create: %v", *err)
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

// watchCount is the server's zk_watch_count (data and child watches over all sessions). A
// server busy with 100,000 new nodes can miss mntr's short probe timeout, so it retries for
// up to 30 s.
func watchCount(tb testing.TB, srv *zktest.Server) int {
	var out string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out, err = srv.FourLetterWord("mntr"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mntr: %v", err)
		}
	}
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(line, "zk_watch_count"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				tb.Fatalf("mntr zk_watch_count %q: %v", v, err)
			}
			return n
		}
	}
	tb.Fatalf("mntr has no zk_watch_count:\n%s", out)
	return 0
}

func (f scaleFigures) log(tb testing.TB, run scaleRun) {
	tb.Logf("zookeeper %d services x %d endpoints: first snapshot of all %v (client CPU %v); heap +%.1f MiB (%.0f B/service), stacks +%.1f MiB, RSS +%.1f MiB, goroutines +%d; "+
		"server RSS %.0f MiB, %d watches on 1 session; burst of %d: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		run.services, run.perService, f.firstSnapshot.Round(time.Millisecond), f.startCPU.Round(time.Millisecond),
		scale.MiB(f.growth.HeapBytes), float64(f.growth.HeapBytes)/float64(run.services), scale.MiB(f.growth.StackBytes),
		scale.MiB(f.growth.RSSBytes), f.growth.Goroutines, scale.MiB(f.serverRSS), f.watches,
		run.burst, scale.Millis(f.p50), scale.Millis(f.p99), scale.Millis(f.pMax))
}

// TestScale watches 10,000 services (1 instance each) over one session and applies a burst
// of 1,000 new instances: every service gets its first snapshot, every change arrives, and
// the server holds exactly one child watch per service and one data watch per instance. The
// race detector allows 8,128 live goroutines, so under -race it watches 2,000 services.
func TestScale(t *testing.T) {
	run := scaleRun{services: 10000, perService: 1, burst: 1000, writers: 8, multiOps: 1000, waitForEach: time.Minute}
	if raceEnabled {
		run.services, run.burst = 2000, 500
	}
	f := runScale(t, run)
	f.log(t, run)
	if want := run.services * (1 + run.perService); f.watches != want {
		t.Errorf("server watches added = %d, want %d (a child watch per service, a data watch per instance)", f.watches, want)
	}
}

// BenchmarkScale is the large run: 10,000 services x 10 instances (100,000 endpoints), a
// burst of 1,000 new instances. One iteration is one whole run; use -benchtime=1x:
//
//	go test -run '^$' -bench Scale -benchtime=1x ./upstream/zookeeper/
func BenchmarkScale(b *testing.B) {
	run := scaleRun{services: 10000, perService: 10, burst: 1000, writers: 8, multiOps: 1000, waitForEach: 2 * time.Minute}
	for range b.N {
		f := runScale(b, run)
		f.log(b, run)
		b.ReportMetric(scale.Millis(f.firstSnapshot), "first-snapshot-ms")
		b.ReportMetric(scale.Millis(f.startCPU), "start-cpu-ms")
		b.ReportMetric(scale.MiB(f.growth.HeapBytes), "heap-MiB")
		b.ReportMetric(scale.MiB(f.growth.StackBytes), "stack-MiB")
		b.ReportMetric(scale.MiB(f.growth.RSSBytes), "rss-MiB")
		b.ReportMetric(scale.MiB(f.serverRSS), "server-rss-MiB")
		b.ReportMetric(float64(f.watches), "watches")
		b.ReportMetric(scale.Millis(f.p50), "p50-ms")
		b.ReportMetric(scale.Millis(f.p99), "p99-ms")
	}
}
