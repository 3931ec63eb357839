package proxy

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/bench/scale"
	"github.com/switchyard/switchyard/upstream"
)

// TestRouteMetricsLazy: a route exports no series until it uses one, and then exactly the
// ones it used, under the same names and labels as before.
func TestRouteMetricsLazy(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	rm := m.forRoute("/api")
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("a fresh route exports %d series (err %v), want 0", n, err)
	}
	rm.observe(204, 3*time.Millisecond)
	rm.observe(503, time.Millisecond)
	rm.upstreamErrors[upstream.ErrConnect].Inc()
	rm.retried.Inc()
	rm.noEndpoint.Inc()
	rm.noEndpoint.Inc()
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"2xx", m.requests.WithLabelValues("/api", "2xx"), 1},
		{"5xx", m.requests.WithLabelValues("/api", "5xx"), 1},
		{"connect", m.upstreamErrors.WithLabelValues("/api", "connect"), 1},
		{"attempted", m.retries.WithLabelValues("/api", "attempted"), 1},
		{"no endpoint", m.noEndpoint.WithLabelValues("/api"), 2},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	// 2 classes, 1 histogram, 1 error kind, 1 retry result, no_endpoint; none of the others.
	for metric, want := range map[string]int{
		"switchyard_requests_total":           2,
		"switchyard_request_duration_seconds": 1,
		"switchyard_upstream_errors_total":    1,
		"switchyard_retries_total":            1,
		"switchyard_no_endpoint_total":        1,
	} {
		if got, err := testutil.GatherAndCount(reg, metric); err != nil || got != want {
			t.Errorf("%s: %d series (err %v), want %d", metric, got, err, want)
		}
	}
}

// TestRouteMetricsConcurrentFirstUse: many requests using a series for the first time at
// once lose no count.
func TestRouteMetricsConcurrentFirstUse(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	rm := m.forRoute("/api")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				rm.noEndpoint.Inc()
				rm.observe(200, time.Millisecond)
			}
		})
	}
	wg.Wait()
	if got := testutil.ToFloat64(m.noEndpoint.WithLabelValues("/api")); got != 4000 {
		t.Errorf("no_endpoint = %v, want 4000", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("/api", "2xx")); got != 4000 {
		t.Errorf("2xx = %v, want 4000", got)
	}
}

// TestRouteMetricsNoAllocsAfterFirstUse: the request path allocates nothing for metrics once
// a series exists.
func TestRouteMetricsNoAllocsAfterFirstUse(t *testing.T) {
	rm := NewMetrics(prometheus.NewRegistry()).forRoute("/api")
	use := func() {
		rm.observe(200, time.Millisecond)
		rm.upstreamErrors[upstream.ErrTimeout].Inc()
		rm.retried.Inc()
		rm.budgetDenied.Inc()
		rm.noEndpoint.Inc()
	}
	use()
	if allocs := testing.AllocsPerRun(100, use); allocs != 0 {
		t.Errorf("%v allocations per use after the first, want 0", allocs)
	}
}

// BenchmarkRouteMetricsMemory reports the heap 10,000 routes' metrics take, idle (no request
// yet) and once every route has used every one of its 31 series (14 metrics: a histogram
// counts once, for its 18 series), and the metrics a scrape returns then.
//
//	go test -run '^$' -bench RouteMetricsMemory -benchtime=1x ./proxy/
func BenchmarkRouteMetricsMemory(b *testing.B) {
	const routes = 10000
	for range b.N {
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		before := scale.ReadMemory()
		rms := make([]routeMetrics, routes)
		for i := range rms {
			rms[i] = m.forRoute(fmt.Sprintf("/svc-%05d", i))
		}
		idle := scale.Growth(before, scale.ReadMemory())
		for i := range rms {
			for c := 1; c <= 5; c++ {
				rms[i].observe(c*100, time.Millisecond)
			}
			for k := upstream.ErrConnect; k <= upstream.ErrCanceled; k++ {
				rms[i].upstreamErrors[k].Inc()
			}
			rms[i].retried.Inc()
			rms[i].budgetDenied.Inc()
			rms[i].noEndpoint.Inc()
		}
		used := scale.Growth(before, scale.ReadMemory())
		series, err := testutil.GatherAndCount(reg)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(idle.HeapBytes)/routes, "idle-B/route")
		b.ReportMetric(float64(used.HeapBytes)/routes, "all-used-B/route")
		b.ReportMetric(float64(series)/routes, "metrics/route")
	}
}
