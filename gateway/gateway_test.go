package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/upstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func named(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const routesTmpl = `
listen: "127.0.0.1:0"
admin: "127.0.0.1:0"
routes:
  - prefix: /svc
    upstreams: [%q]
  - prefix: /fixed
    upstreams: [%q]
`

type fixture struct {
	gw      *Gateway
	handler *proxy.Handler
	server  *httptest.Server
	path    string
	reg     *prometheus.Registry
}

func newFixture(t testing.TB, body string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{path: filepath.Join(dir, "routes.yaml"), reg: prometheus.NewRegistry()}
	f.write(t, body)
	tr, err := proxy.NewTransport(config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.handler = proxy.New(proxy.Options{Transport: tr})
	ctx, cancel := context.WithCancel(context.Background())
	f.gw = New(ctx, Options{Handler: f.handler, Registerer: f.reg, HealthClient: &http.Client{Transport: tr}})
	cfg, err := config.Load(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	f.server = httptest.NewServer(f.handler)
	t.Cleanup(func() {
		f.server.Close()
		cancel()
		f.gw.Wait()
		tr.CloseIdleConnections()
	})
	return f
}

func (f *fixture) write(t testing.TB, body string) {
	t.Helper()
	if err := os.WriteFile(f.path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) get(t testing.TB, path string) (int, string) {
	t.Helper()
	res, err := http.Get(f.server.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestReloadAppliesValidAndKeepsOldOnInvalid(t *testing.T) {
	a, b, c := named(t, "a"), named(t, "b"), named(t, "c")
	f := newFixture(t, fmt.Sprintf(routesTmpl, a, c))
	if _, body := f.get(t, "/svc"); body != "a" {
		t.Fatalf("before reload: %q", body)
	}
	fixedPool := f.gw.pools[poolKey(&f.gw.cfg.Routes[1])].pool

	f.write(t, fmt.Sprintf(routesTmpl, b, c))
	if err := f.gw.Reload(f.path); err != nil {
		t.Fatal(err)
	}
	if _, body := f.get(t, "/svc"); body != "b" {
		t.Fatalf("after valid reload: %q, want b", body)
	}
	if got := f.gw.pools[poolKey(&f.gw.cfg.Routes[1])].pool; got != fixedPool {
		t.Fatal("an unchanged route's pool was rebuilt: its endpoints' state would be lost")
	}

	f.write(t, "routes:\n  - prefix: /svc\n    lb: least_con\n    upstreams: [\"http://127.0.0.1:1\"]\n")
	err := f.gw.Reload(f.path)
	if err == nil {
		t.Fatal("invalid file accepted")
	}
	if _, body := f.get(t, "/svc"); body != "b" {
		t.Fatalf("after invalid reload: %q, want the old config (b) still serving", body)
	}
	if got := testutil.ToFloat64(f.gw.metrics.reloads.WithLabelValues("failed")); got != 1 {
		t.Fatalf("failed reloads counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.gw.metrics.reloads.WithLabelValues("ok")); got != 1 {
		t.Fatalf("ok reloads counted %v, want 1", got)
	}
}

func TestReloadUnderLoadLosesNoRequest(t *testing.T) {
	a, b, c := named(t, "a"), named(t, "b"), named(t, "c")
	f := newFixture(t, fmt.Sprintf(routesTmpl, a, c))
	l := startLoad(f.server.URL+"/svc/x", 8, 0, func(body string) bool { return body == "a" || body == "b" })
	for i := 0; i < 40; i++ {
		target := a
		if i%2 == 0 {
			target = b
		}
		f.write(t, fmt.Sprintf(routesTmpl, target, c))
		if err := f.gw.Reload(f.path); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	total, failed := l.finish()
	if failed != 0 {
		t.Fatalf("%d of %d requests failed during 40 reloads", failed, total)
	}
	t.Logf("%d requests, 0 failed, across 40 reloads", total)
}

func TestReadyWaitsForFirstSnapshot(t *testing.T) {
	f := newFixture(t, fmt.Sprintf(routesTmpl, named(t, "a"), named(t, "c")))
	if ok, waiting := f.gw.Ready(); !ok {
		t.Fatalf("static pools not ready: %v", waiting)
	}
	// A registry pool is not ready until its discoverer has answered once.
	f.gw.opts.WarmTimeout = 50 * time.Millisecond
	blocked := make(chan struct{})
	f.gw.opts.Registries[config.RegistryEtcd] = discovererFunc(func(ctx context.Context, _ upstream.Target, update func(upstream.Snapshot)) error {
		<-blocked
		update(upstream.NewSnapshot(nil))
		<-ctx.Done()
		return ctx.Err()
	})
	cfg, err := config.Parse("r.yaml", []byte("routes:\n  - prefix: /u\n    service: users\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if ok, waiting := f.gw.Ready(); ok || len(waiting) != 1 || waiting[0] != "users" {
		t.Fatalf("ready=%v waiting=%v, want users waiting", ok, waiting)
	}
	if status, _ := f.get(t, "/u"); status != 503 {
		t.Fatalf("route without snapshot: %d, want 503", status)
	}
	close(blocked)
	deadline := time.Now().Add(2 * time.Second)
	for ok, _ := f.gw.Ready(); !ok; ok, _ = f.gw.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestApplyWarmsNewPools: a reload that adds a pool swaps the table only once the pool's
// registry has answered (or WarmTimeout passed), so the new route never answers 503 for the
// moment discovery takes.
func TestApplyWarmsNewPools(t *testing.T) {
	backend := named(t, "users")
	f := newFixture(t, fmt.Sprintf(routesTmpl, named(t, "a"), named(t, "c")))
	ep, err := upstream.ParseEntry([]byte(backend))
	if err != nil {
		t.Fatal(err)
	}
	f.gw.opts.Registries[config.RegistryEtcd] = discovererFunc(func(ctx context.Context, _ upstream.Target, update func(upstream.Snapshot)) error {
		time.Sleep(100 * time.Millisecond) // a registry's first answer
		update(upstream.NewSnapshot([]upstream.Endpoint{ep}))
		<-ctx.Done()
		return ctx.Err()
	})
	cfg, err := config.Parse("r.yaml", []byte("routes:\n  - prefix: /u\n    service: users\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if status, body := f.get(t, "/u"); status != 200 || body != "users" {
		t.Fatalf("first request after Apply: %d %q, want 200 users", status, body)
	}
}

// TestReadersDoNotWaitForWarmUp: while a reload waits for a registry that does not answer,
// readiness and the admin views answer at once (from the config still in force).
func TestReadersDoNotWaitForWarmUp(t *testing.T) {
	f := newFixture(t, fmt.Sprintf(routesTmpl, named(t, "a"), named(t, "c")))
	f.gw.opts.WarmTimeout = 3 * time.Second
	f.gw.opts.Registries[config.RegistryEtcd] = discovererFunc(func(ctx context.Context, _ upstream.Target, _ func(upstream.Snapshot)) error {
		<-ctx.Done() // never answers
		return ctx.Err()
	})
	cfg, err := config.Parse("r.yaml", []byte("routes:\n  - prefix: /u\n    service: users\n"))
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan error, 1)
	go func() { applied <- f.gw.Apply(cfg) }()
	time.Sleep(100 * time.Millisecond) // well into the warm-up
	start := time.Now()
	ok, _ := f.gw.Ready()
	routes, pools := f.gw.Routes(), f.gw.Upstreams()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Ready, Routes and Upstreams took %v during a warm-up", took)
	}
	if !ok || len(routes) != 2 || len(pools) != 2 {
		t.Fatalf("during the warm-up: ready %v, %d routes, %d pools; want the old config's", ok, len(routes), len(pools))
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
}

// TestRegistriesByName: every route reaches its registry by name with its whole query, a
// registry the gateway was not given is an Apply error that changes nothing, and any
// Discoverer registered under a new name serves routes (a new registry is one map entry).
func TestRegistriesByName(t *testing.T) {
	f := newFixture(t, fmt.Sprintf(routesTmpl, named(t, "a"), named(t, "c")))
	f.gw.opts.WarmTimeout = 50 * time.Millisecond
	got := make(chan upstream.Target, 4)
	f.gw.opts.Registries[config.RegistryConsul] = discovererFunc(func(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
		got <- t
		update(upstream.NewSnapshot(nil))
		<-ctx.Done()
		return ctx.Err()
	})
	withZK := []byte(`discovery: { consul: {}, zookeeper: {} }
routes:
  - prefix: /a
    service: users
    discovery: consul
    tags: [v2, eu]
    datacenter: dc2
    passing_only: false
  - prefix: /z
    service: users
    discovery: zookeeper
`)
	cfg, err := config.Parse("r.yaml", withZK)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Apply(cfg); err == nil || !strings.Contains(err.Error(), `registry "zookeeper" is not running`) {
		t.Fatalf("Apply with an unknown registry: %v", err)
	}
	if status, body := f.get(t, "/svc"); status != 200 || body != "a" {
		t.Fatalf("old config after a failed Apply: %d %q", status, body)
	}
	select {
	case tg := <-got:
		t.Fatalf("a failed Apply started a watch: %+v", tg)
	default:
	}
	f.gw.opts.Registries[config.RegistryZooKeeper] = upstream.Static{} // any Discoverer will do
	if err := f.gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	want := upstream.Target{Service: "users", Tags: []string{"v2", "eu"}, Datacenter: "dc2", IncludeWarning: true}
	select {
	case tg := <-got:
		if tg.Service != want.Service || !slices.Equal(tg.Tags, want.Tags) || tg.Datacenter != want.Datacenter || !tg.IncludeWarning {
			t.Fatalf("consul watched %+v, want %+v", tg, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consul discoverer never asked")
	}
	if status, _ := f.get(t, "/z"); status != 503 {
		t.Fatalf("zookeeper route with an empty pool: %d, want 503", status)
	}
}

// discovererFunc adapts a function to upstream.Discoverer (test-only fake of pure plumbing).
type discovererFunc func(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error

func (f discovererFunc) Watch(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
	return f(ctx, t, update)
}

// load sends GETs to url from several clients until finish, counting requests and those
// that failed (transport error, non-200, or a body accept rejects). Each client pauses
// between requests and stops after 20,000 or 60 s at most, so the load is always bounded.
type load struct {
	total, failed atomic.Int64
	stop          chan struct{}
	wg            sync.WaitGroup
	client        *http.Client
}

func startLoad(url string, clients int, pause time.Duration, accept func(body string) bool) *load {
	l := &load{stop: make(chan struct{}), client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; n < 20000 && time.Now().Before(deadline); n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.total.Add(1)
				res, err := l.client.Get(url)
				if err != nil {
					l.failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || (accept != nil && !accept(string(body))) {
					l.failed.Add(1)
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	return l
}

// finish stops the clients and returns the counts.
func (l *load) finish() (total, failed int64) {
	close(l.stop)
	l.wg.Wait()
	l.client.CloseIdleConnections()
	return l.total.Load(), l.failed.Load()
}
