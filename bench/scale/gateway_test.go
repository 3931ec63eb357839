package scale_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/bench/scale"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRegistry answers every Watch at once with perService endpoints for the service and
// keeps the update function, so a benchmark can push one pool's next snapshot exactly as a
// registry's watch would. Services named in live get those addresses instead (real
// backends for the load part).
type fakeRegistry struct {
	perService int
	live       map[string][]string

	mu      sync.Mutex
	updates map[string]func(upstream.Snapshot)
}

// Watch implements upstream.Discoverer.
func (f *fakeRegistry) Watch(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
	f.mu.Lock()
	f.updates[t.Service] = update
	f.mu.Unlock()
	update(f.snapshot(t.Service, 0))
	<-ctx.Done()
	return ctx.Err()
}

// snapshot is service's endpoint set number generation: generations differ in one endpoint.
func (f *fakeRegistry) snapshot(service string, generation int) upstream.Snapshot {
	if addrs, ok := f.live[service]; ok {
		eps := make([]upstream.Endpoint, len(addrs))
		for i, a := range addrs {
			eps[i] = upstream.Endpoint{Key: a}
		}
		return upstream.NewSnapshot(eps)
	}
	eps := make([]upstream.Endpoint, f.perService)
	for i := range eps {
		port := 20000 + i
		if i == 0 {
			port += generation % 2 // the one endpoint that changes
		}
		eps[i] = upstream.Endpoint{Key: "127.0.0.1:" + strconv.Itoa(port)}
	}
	return upstream.NewSnapshot(eps)
}

func (f *fakeRegistry) update(service string) func(upstream.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updates[service]
}

// routesYAML is a config with one route per service, /svc-NNNNN -> svc-NNNNN over etcd.
func routesYAML(routes int) []byte {
	var b strings.Builder
	b.WriteString("listen: \"127.0.0.1:0\"\nadmin: \"127.0.0.1:0\"\ndiscovery:\n  etcd:\n    endpoints: [\"127.0.0.1:2379\"]\nroutes:\n")
	for i := range routes {
		fmt.Fprintf(&b, "  - prefix: /%s\n    service: %s\n", serviceName(i), serviceName(i))
	}
	return []byte(b.String())
}

func serviceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// scaleGateway is a gateway applied with routes routes over as many services.
type scaleGateway struct {
	gw       *gateway.Gateway
	handler  *proxy.Handler
	registry *fakeRegistry
	reg      *prometheus.Registry
	ready    time.Duration // Apply called -> Ready
	growth   scale.Memory  // memory the gateway added (config, routes, pools, metrics, goroutines)
}

// startGateway applies routes routes of perService endpoints each, from a fakeRegistry, and
// stops the gateway when tb ends.
func startGateway(tb testing.TB, routes, perService int, live map[string][]string) *scaleGateway {
	tb.Helper()
	registry := &fakeRegistry{perService: perService, live: live, updates: map[string]func(upstream.Snapshot){}}
	s := applyRoutes(tb, routes, registry)
	s.registry = registry
	return s
}

// applyRoutes applies routes routes over as many services of registry (as the etcd
// registry), waits until every pool has its first snapshot, and stops the gateway when tb
// ends.
func applyRoutes(tb testing.TB, routes int, registry upstream.Discoverer) *scaleGateway {
	tb.Helper()
	cfg, err := config.Parse("routes.yaml", routesYAML(routes))
	if err != nil {
		tb.Fatal(err)
	}
	tr, err := proxy.NewTransport(config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	s := &scaleGateway{reg: prometheus.NewRegistry()}
	before := scale.ReadMemory()
	s.handler = proxy.New(proxy.Options{Transport: tr, Metrics: proxy.NewMetrics(s.reg), Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	s.gw = gateway.New(ctx, gateway.Options{
		Handler: s.handler, Registerer: s.reg, Logger: slog.New(slog.DiscardHandler),
		Registries: gateway.Registries{config.RegistryEtcd: registry},
	})
	tb.Cleanup(func() {
		cancel()
		s.gw.Wait()
		tr.CloseIdleConnections()
	})
	start := time.Now()
	if err := s.gw.Apply(cfg); err != nil {
		tb.Fatal(err)
	}
	// Apply waits up to its warm-up timeout (1 s) for first snapshots; a real registry may
	// need longer for 10,000 services, which /readyz would report as not ready meanwhile.
	for deadline := start.Add(2 * time.Minute); ; time.Sleep(time.Millisecond) {
		ok, waiting := s.gw.Ready()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not ready %v after Apply: %d pools waiting", time.Since(start), len(waiting))
		}
	}
	s.ready = time.Since(start)
	s.growth = scale.Growth(before, scale.ReadMemory())
	return s
}

// series counts the Prometheus series the gateway exports, and those whose labels
// include "endpoint".
func (s *scaleGateway) series(tb testing.TB) (total, perEndpoint int) {
	mfs, err := s.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n := 1
			if h := m.GetHistogram(); h != nil {
				n = len(h.GetBucket()) + 3 // the buckets, +Inf, _sum and _count
			}
			total += n
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" {
					perEndpoint += n
				}
			}
		}
	}
	return total, perEndpoint
}

// TestGatewayGrowsLinearly applies 1,000 and then 4,000 routes (one service of 10
// endpoints each; 500 and 2,000 under -race, whose limit is 8,128 live goroutines) and checks that the memory per route does not grow with the number of
// routes (within 1.5x, which allows for the heap's granularity), every pool has its 10
// endpoints, and no series carries an endpoint label.
func TestGatewayGrowsLinearly(t *testing.T) {
	small, large := 1000, 4000
	if raceEnabled {
		small, large = 500, 2000
	}
	perRoute := make(map[int]float64)
	for _, routes := range []int{small, large} {
		s := startGateway(t, routes, 10, nil)
		perRoute[routes] = float64(s.growth.HeapBytes) / float64(routes)
		t.Logf("%d routes x 10 endpoints: ready in %v, heap +%.1f MiB (%.0f B/route), goroutines +%d",
			routes, s.ready.Round(time.Millisecond), scale.MiB(s.growth.HeapBytes), perRoute[routes], s.growth.Goroutines)
		if _, perEndpoint := s.series(t); perEndpoint != 0 {
			t.Errorf("%d series carry an endpoint label; per-endpoint series must not exist", perEndpoint)
		}
		// Match, not a request: the fake endpoints are not meant to be dialled.
		rt := s.handler.Table().Match(nil, "", "/"+serviceName(routes-1)+"/x")
		if rt == nil || rt.Pool.View() == nil || rt.Pool.View().Snapshot.Len() != 10 {
			t.Errorf("the last route is not matched to a pool of 10 endpoints: %+v", rt)
		}
	}
	if perRoute[large] > 1.5*perRoute[small] {
		t.Errorf("heap per route grew from %.0f B at %d routes to %.0f B at %d: faster than linear", perRoute[small], small, perRoute[large], large)
	}
}

// TestEndpointChangeCostIsFlat checks that one endpoint change allocates the same whether 10
// or 2,000 other pools exist (allocations are exact, unlike time).
func TestEndpointChangeCostIsFlat(t *testing.T) {
	allocs := make(map[int]float64)
	for _, routes := range []int{10, 2000} {
		s := startGateway(t, routes, 10, nil)
		update := s.registry.update(serviceName(0))
		a, b := s.registry.snapshot(serviceName(0), 1), s.registry.snapshot(serviceName(0), 0)
		allocs[routes] = testing.AllocsPerRun(200, func() { update(a); update(b) })
	}
	if allocs[2000] != allocs[10] {
		t.Errorf("allocations per change: %v with 10 pools, %v with 2,000: the cost depends on the total", allocs[10], allocs[2000])
	}
}

// BenchmarkGatewayScale is the large in-process run: 10,000 routes over 10,000 services of
// 10 endpoints (100,000 endpoints). It reports the time from Apply to ready, the memory the
// gateway added, the series it exports, then serves loopback traffic on 4 routes whose
// pools are real backends and reports the resident set under that load. One iteration is
// one whole run; use -benchtime=1x:
//
//	go test -run '^$' -bench GatewayScale -benchtime=1x ./bench/scale/
func BenchmarkGatewayScale(b *testing.B) {
	const routes, perService, liveRoutes, clients = 10000, 10, 4, 8
	for range b.N {
		live := make(map[string][]string)
		for i := range liveRoutes {
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
			b.Cleanup(backend.Close)
			live[serviceName(i*routes/liveRoutes)] = []string{strings.TrimPrefix(backend.URL, "http://")}
		}
		s := startGateway(b, routes, perService, live)
		total, perEndpoint := s.series(b)
		idle := scale.ReadMemory()
		b.Logf("%d routes x %d endpoints: ready in %v; heap +%.1f MiB (%.0f B/route, %.0f B/endpoint), stacks +%.1f MiB, RSS %.0f MiB, goroutines +%d; %d series (%d per-endpoint)",
			routes, perService, s.ready.Round(time.Millisecond), scale.MiB(s.growth.HeapBytes),
			float64(s.growth.HeapBytes)/routes, float64(s.growth.HeapBytes)/(routes*perService),
			scale.MiB(s.growth.StackBytes), scale.MiB(idle.RSSBytes), s.growth.Goroutines, total, perEndpoint)

		requests, loadRSS := loadLiveRoutes(b, s, live, clients, 2*time.Second)
		b.Logf("under load (%d loopback clients on %d routes, %d requests in 2 s): RSS %.0f MiB", clients, liveRoutes, requests, scale.MiB(loadRSS))
		b.ReportMetric(scale.Millis(s.ready), "ready-ms")
		b.ReportMetric(scale.MiB(s.growth.HeapBytes), "heap-MiB")
		b.ReportMetric(scale.MiB(idle.RSSBytes), "idle-rss-MiB")
		b.ReportMetric(scale.MiB(loadRSS), "load-rss-MiB")
		b.ReportMetric(float64(total), "series")
	}
}

// loadLiveRoutes sends requests from clients goroutines, round robin over the live routes,
// for d, and returns how many succeeded and the resident set at the end.
func loadLiveRoutes(tb testing.TB, s *scaleGateway, live map[string][]string, clients int, d time.Duration) (int, uint64) {
	srv := httptest.NewServer(s.handler)
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var paths []string
	for service := range live {
		paths = append(paths, srv.URL+"/"+service+"/x")
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		served int
		failed error
	)
	stop := time.Now().Add(d)
	for c := range clients {
		wg.Go(func() {
			n := 0
			for i := c; time.Now().Before(stop); i++ {
				res, err := client.Get(paths[i%len(paths)])
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				n++
			}
			mu.Lock()
			served += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if failed != nil {
		tb.Fatalf("load: %v", failed)
	}
	return served, scale.ReadMemory().RSSBytes
}

// BenchmarkEndpointChange is one endpoint change of a 10-endpoint pool, as the registry's
// watch delivers it (the gateway's update callback: Pool.Update and the picker rebuild),
// with 10 and with 10,000 pools in the gateway: the cost must not depend on the total.
//
//	go test -run '^$' -bench EndpointChange -benchtime=200ms ./bench/scale/
func BenchmarkEndpointChange(b *testing.B) {
	for _, routes := range []int{10, 10000} {
		b.Run(fmt.Sprintf("pools=%d", routes), func(b *testing.B) {
			s := startGateway(b, routes, 10, nil)
			update := s.registry.update(serviceName(routes / 2))
			snapshots := [2]upstream.Snapshot{s.registry.snapshot(serviceName(routes/2), 1), s.registry.snapshot(serviceName(routes/2), 0)}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				update(snapshots[i%2])
				i++
			}
		})
	}
}
