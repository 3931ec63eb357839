package consul

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// TestWatchFaults runs a watch through a proxy that injects answers a real agent gives only
// rarely: an index of 0 (which made naive clients spin) and HTTP 500s (after one of which
// traefik#3944 stopped updating).
func TestWatchFaults(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	const minInterval = 100 * time.Millisecond
	tests := []struct {
		name  string
		fault func(p *countingProxy, on bool)
		// counted is the requests the fault reaches: every query for a bad index (the
		// three blocking queries take it), the service reads for a failing read.
		counted func(p *countingProxy) *atomic.Int64
		// loops is how many request loops the fault reaches, each making at most one
		// call per spacing after a burst of minIntervalBurst.
		loops int64
		// spacing is the least time between two queries of a loop under the fault:
		// MinInterval for immediate answers, the first backoff step less its jitter for
		// errors.
		spacing time.Duration
	}{
		{name: "index zero is rate-limited, not spun on", fault: func(p *countingProxy, on bool) { p.zeroIndex.Store(on) },
			counted: func(p *countingProxy) *atomic.Int64 { return &p.requests }, loops: 3, spacing: minInterval},
		{name: "500s keep the snapshot and recover", fault: func(p *countingProxy, on bool) { p.fail500.Store(on) },
			counted: func(p *countingProxy) *atomic.Int64 { return &p.health }, loops: 1, spacing: backoffInitial / 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			service := "fault" + strconv.Itoa(i)
			register(t, admin, &api.AgentServiceRegistration{ID: service + "-1", Name: service, Address: "10.0.0.1", Port: 80}, "")
			proxy := newCountingProxy(t, agent)
			reg := prometheus.NewRegistry()
			d := New(newClient(t, proxy.Listener.Addr().String()),
				Options{MinInterval: minInterval, Metrics: upstream.NewDiscoveryMetrics(reg), Logger: testLogger(&testkit.SyncBuffer{})})
			rec := &testkit.Recorder{}
			startWatch(t, d, upstream.Target{Service: service}, rec.Update)
			n := rec.WaitFor(t, 0, "first instance", testkit.HasKeys("10.0.0.1:80"))

			tt.fault(proxy, true)
			counted := tt.counted(proxy)
			before := counted.Load()
			start := time.Now()
			// Wake the parked blocking queries with a change that leaves the passing set
			// alone (a critical instance), so the next answers go through the fault.
			register(t, admin, &api.AgentServiceRegistration{ID: service + "-wake", Name: service, Address: "10.0.0.9", Port: 80}, api.HealthCritical)
			time.Sleep(time.Second)
			calls := counted.Load() - before
			elapsed := time.Since(start)
			// A bounded handful per second, where a spinning client would make thousands;
			// a few more for the reads the wake-up itself causes (one, and one again if
			// the service changed while it was read).
			limit := tt.loops*(int64(elapsed/tt.spacing)+minIntervalBurst) + 3
			if calls > limit || calls < 3 {
				t.Errorf("%d queries in %v under the fault; want 3 (the fault was hit) to %d", calls, elapsed, limit)
			}
			if c := rec.Count(); c != n+1 {
				t.Errorf("%d snapshots emitted under the fault, want none", c-n-1)
			}
			tt.fault(proxy, false)

			register(t, admin, &api.AgentServiceRegistration{ID: service + "-2", Name: service, Address: "10.0.0.2", Port: 80}, "")
			rec.WaitFor(t, n+1, "second instance after the fault", testkit.HasKeys("10.0.0.1:80", "10.0.0.2:80"))
			t.Logf("%d queries in %v under the fault; %v errors counted", calls, elapsed.Round(time.Millisecond),
				counter(t, reg, metricErrors, service))
		})
	}
}

// TestIdleLoad watches 50 services at once and counts the requests that reach the agent
// while nothing changes: about one read per service per WaitTime (the verification sweep)
// and one answer per WaitTime from each of the feed's three blocking queries, not a poll loop.
// (BenchmarkIdleLoad reports the rate.)
func TestIdleLoad(t *testing.T) {
	const (
		services = 50
		wait     = time.Second
		window   = 3 * time.Second
	)
	agent := consultest.Start(t)
	reads, others := idleRate(t, agent, services, wait, window)
	// Consul adds up to wait/16 of jitter, so each loop makes at most window/wait + 1
	// calls in the window; allow one more for a call in flight at the window's start.
	limit := float64(int(window/wait)+2) / window.Seconds()
	if reads > limit {
		t.Errorf("idle load %.2f reads/s per service with wait %v; want at most %.2f", reads, wait, limit)
	}
	// Three blocking queries; one more loop's worth for the agent's own writes (anti-entropy,
	// the dev agent settling) that wake them early. A spinning feed would make hundreds.
	if others > 4*limit {
		t.Errorf("idle load %.2f blocking queries/s with wait %v; want at most %.2f", others, wait, 4*limit)
	}
	t.Logf("idle load with %d services, wait %v: %.3f reads/s per service, %.3f blocking queries/s in all",
		services, wait, reads, others)
}

// idleRate watches n services (see startIdleWatches) and returns, over window, the service
// reads per second per service and the other requests (the feed's) per second.
func idleRate(t testing.TB, agent *consultest.Agent, n int, wait, window time.Duration) (reads, others float64) {
	proxy := startIdleWatches(t, agent, n, wait)
	readsBefore, allBefore := proxy.health.Load(), proxy.requests.Load()
	start := time.Now()
	time.Sleep(window)
	elapsed := time.Since(start).Seconds()
	readCount := proxy.health.Load() - readsBefore
	return float64(readCount) / elapsed / float64(n), float64(proxy.requests.Load()-allBefore-readCount) / elapsed
}

// startIdleWatches registers n services and watches them through a counting proxy, and
// returns once every watch has its first snapshot.
func startIdleWatches(t testing.TB, agent *consultest.Agent, n int, wait time.Duration) *countingProxy {
	admin := agent.Client(t)
	proxy := newCountingProxy(t, agent)
	d := New(newClient(t, proxy.Listener.Addr().String()), Options{WaitTime: wait})
	recs := make([]*testkit.Recorder, n)
	for i := range n {
		service := fmt.Sprintf("idle%02d", i)
		register(t, admin, &api.AgentServiceRegistration{ID: service, Name: service, Address: "10.0.1.1", Port: 1000 + i}, "")
		recs[i] = &testkit.Recorder{}
		startWatch(t, d, upstream.Target{Service: service}, recs[i].Update)
	}
	for i, r := range recs {
		r.WaitFor(t, 0, "first snapshot", testkit.HasKeys("10.0.1.1:"+strconv.Itoa(1000+i)))
	}
	return proxy
}
