package consul

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait for a state the agent must reach; it only detects a hang, the
// loaded test machines make anything tighter flaky.
const waitLimit = 20 * time.Second

// startWatch runs d.Watch in the background; at cleanup it cancels it and checks that Watch
// returned context.Canceled.
func startWatch(t testing.TB, d upstream.Discoverer, target upstream.Target, update func(upstream.Snapshot)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Watch(ctx, target, update) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch(%s) returned %v, want context.Canceled", target.Service, err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Watch(%s) did not return after cancel", target.Service)
		}
	})
}

// newClient builds a client with NewClient for addr.
func newClient(t testing.TB, addr string) *api.Client {
	t.Helper()
	cli, err := NewClient(&config.Consul{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// register adds an instance with a TTL check in the given status ("" means passing).
func register(t testing.TB, cli *api.Client, reg *api.AgentServiceRegistration, status string) {
	t.Helper()
	if status == "" {
		status = api.HealthPassing
	}
	reg.Check = &api.AgentServiceCheck{TTL: "1h", Status: status}
	if err := cli.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register %s: %v", reg.ID, err)
	}
}

// counter reads one discovery counter for a service from reg.
func counter(t testing.TB, reg *prometheus.Registry, name, service string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "service" && lp.GetValue() == service {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func testLogger(w *testkit.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countingProxy is a reverse proxy in front of a real agent that counts the discoverer's
// requests and connections and can inject faults Consul itself rarely produces on demand.
type countingProxy struct {
	*httptest.Server
	health    atomic.Int64 // requests to /v1/health/service/ (service reads)
	requests  atomic.Int64 // every request
	conns     atomic.Int64 // connections accepted from the discoverer
	open      atomic.Int64 // connections open now
	maxOpen   atomic.Int64 // most connections open at once
	zeroIndex atomic.Bool  // answer X-Consul-Index: 0 (a Consul bug that made clients spin)
	fail500   atomic.Bool  // answer service reads with 500 without asking the agent
	// record keeps each service read's answer in recorded; replay answers service reads
	// with recorded without asking the agent (a stale server behind the last one asked).
	record, replay atomic.Bool
	recorded       atomic.Pointer[recordedRead]
}

// recordedRead is one service read's answer as the agent sent it.
type recordedRead struct {
	index string
	body  []byte
}

func newCountingProxy(t testing.TB, agent *consultest.Agent) *countingProxy {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: agent.Addr}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	// Watches cancelled at cleanup abort their proxied queries; that is not worth a log line.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	// The proxy's own pool towards the agent must not be what limits the discoverer.
	// Nor add a gzip round the discoverer did not ask for.
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	rp.ModifyResponse = func(resp *http.Response) error {
		if p.zeroIndex.Load() && resp.Header.Get("X-Consul-Index") != "" {
			resp.Header.Set("X-Consul-Index", "0")
		}
		if p.record.Load() && strings.HasPrefix(resp.Request.URL.Path, "/v1/health/service/") {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			p.recorded.Store(&recordedRead{index: resp.Header.Get("X-Consul-Index"), body: body})
		}
		return nil
	}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if strings.HasPrefix(r.URL.Path, "/v1/health/service/") {
			p.health.Add(1)
			if p.fail500.Load() {
				http.Error(w, "injected failure", http.StatusInternalServerError)
				return
			}
			if old := p.recorded.Load(); p.replay.Load() && old != nil {
				w.Header().Set("X-Consul-Index", old.index)
				w.Header().Set("Content-Type", "application/json")
				w.Write(old.body)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	p.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			p.conns.Add(1)
			n := p.open.Add(1)
			for m := p.maxOpen.Load(); n > m && !p.maxOpen.CompareAndSwap(m, n); m = p.maxOpen.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			p.open.Add(-1)
		}
	}
	p.Start()
	t.Cleanup(func() {
		p.Close()
		rp.Transport.(*http.Transport).CloseIdleConnections()
	})
	return p
}

// firstPicker is a test-only PickerBuilder (the lb package is another team's): it picks the
// first available member, enough to observe what a pool holds.
type firstPicker struct{ members []upstream.Member }

func (firstPicker) Build(members []upstream.Member) upstream.Picker { return firstPicker{members} }

func (p firstPicker) Pick(*http.Request, upstream.Excluded) (*upstream.Member, error) {
	for i := range p.members {
		if p.members[i].State.TryAcquire() {
			return &p.members[i], nil
		}
	}
	return nil, upstream.ErrNoEndpoint
}
