package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

const (
	metricRejected = "switchyard_registry_entries_rejected_total"
	metricErrors   = "switchyard_registry_errors_total"
)

func TestNewClient(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *config.Consul
		env     map[string]string
		wantErr string
	}{
		{name: "nil means local agent", cfg: nil},
		{name: "address and datacenter", cfg: &config.Consul{Address: "127.0.0.1:18500", Datacenter: "dc2", Token: "t"}},
		{name: "tls implies https", cfg: &config.Consul{TLS: &config.TLS{InsecureSkipVerify: true}}},
		{name: "bad scheme", cfg: &config.Consul{Scheme: "ftp"}, wantErr: "not http or https"},
		{name: "missing CA file", cfg: &config.Consul{TLS: &config.TLS{CAFile: "/nonexistent/ca.pem"}}, wantErr: "ca.pem"},
		// Fields the section leaves empty come from CONSUL_CACERT and the like, as with
		// api.NewClient; the env CA file missing proves it was used.
		{name: "tls section keeps CONSUL_CACERT", cfg: &config.Consul{TLS: &config.TLS{ServerName: "consul"}},
			env: map[string]string{"CONSUL_CACERT": "/nonexistent/env-ca.pem"}, wantErr: "env-ca.pem"},
		{name: "tls section overrides CONSUL_CACERT", cfg: &config.Consul{TLS: &config.TLS{CAFile: "/nonexistent/cfg-ca.pem"}},
			env: map[string]string{"CONSUL_CACERT": "/nonexistent/env-ca.pem"}, wantErr: "cfg-ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cli, err := NewClient(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || cli == nil {
				t.Fatalf("NewClient: %v", err)
			}
		})
	}
}

func TestIsLocalAgent(t *testing.T) {
	tests := []struct {
		address string
		want    bool
	}{
		{"127.0.0.1:8500", true},
		{"127.8.9.1:8500", true},
		{"[::1]:8500", true},
		{"localhost:8500", true},
		{"LOCALHOST", true},
		{"unix:///var/run/consul.sock", true},
		{"10.0.0.5:8500", false},
		{"consul.service.internal:8500", false},
		{"[2001:db8::1]:8500", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isLocalAgent(tt.address); got != tt.want {
			t.Errorf("isLocalAgent(%q) = %v, want %v", tt.address, got, tt.want)
		}
	}
}

type inst struct {
	id, addr     string
	port         int
	tags         []string
	meta         map[string]string
	weight, warn int
	status       string
}

type wantEP struct {
	key    string
	weight int
	scheme string
}

// TestWatchSelects checks which registered instances a query turns into which endpoints.
func TestWatchSelects(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	tests := []struct {
		name         string
		q            upstream.Target
		insts        []inst
		want         []wantEP
		wantRejected float64
	}{
		{name: "passing only drops warning and critical", q: upstream.Target{},
			insts: []inst{{id: "a", addr: "10.0.0.1", port: 80}, {id: "b", addr: "10.0.0.2", port: 80, status: "warning"},
				{id: "c", addr: "10.0.0.3", port: 80, status: "critical"}},
			want: []wantEP{{"10.0.0.1:80", 1, "http"}}},
		{name: "passing_only false keeps warning at its warning weight", q: upstream.Target{IncludeWarning: true},
			insts: []inst{{id: "a", addr: "10.0.0.1", port: 80, weight: 5, warn: 2}, {id: "b", addr: "10.0.0.2", port: 80, weight: 5, warn: 2, status: "warning"},
				{id: "c", addr: "10.0.0.3", port: 80, status: "critical"}},
			want: []wantEP{{"10.0.0.1:80", 5, "http"}, {"10.0.0.2:80", 2, "http"}}},
		{name: "weights honoured", q: upstream.Target{},
			insts: []inst{{id: "a", addr: "10.0.0.1", port: 80, weight: 3}, {id: "b", addr: "10.0.0.2", port: 80, weight: 7}},
			want:  []wantEP{{"10.0.0.1:80", 3, "http"}, {"10.0.0.2:80", 7, "http"}}},
		{name: "every tag must match", q: upstream.Target{Tags: []string{"v2", "eu"}},
			insts: []inst{{id: "a", addr: "10.0.0.1", port: 80, tags: []string{"v2"}}, {id: "b", addr: "10.0.0.2", port: 80, tags: []string{"v2", "eu", "x"}},
				{id: "c", addr: "10.0.0.3", port: 80, tags: []string{"eu"}}},
			want: []wantEP{{"10.0.0.2:80", 1, "http"}}},
		{name: "node address fallback and https meta", q: upstream.Target{},
			insts: []inst{{id: "a", port: 8443, meta: map[string]string{"scheme": "https"}}},
			want:  []wantEP{{"127.0.0.1:8443", 1, "https"}}},
		{name: "malformed entries skipped and counted", q: upstream.Target{},
			insts: []inst{{id: "a", addr: "10.0.0.1", port: 80}, {id: "noport", addr: "10.0.0.2", port: 0},
				{id: "badscheme", addr: "10.0.0.3", port: 80, meta: map[string]string{"scheme": "gopher"}}},
			want: []wantEP{{"10.0.0.1:80", 1, "http"}}, wantRejected: 2},
		{name: "explicit datacenter", q: upstream.Target{Datacenter: "dc1"},
			insts: []inst{{id: "a", addr: "10.0.0.1", port: 80}},
			want:  []wantEP{{"10.0.0.1:80", 1, "http"}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			service := "sel" + strconv.Itoa(i)
			for _, in := range tt.insts {
				reg := &api.AgentServiceRegistration{ID: service + "-" + in.id, Name: service, Address: in.addr,
					Port: in.port, Tags: in.tags, Meta: in.meta}
				if in.weight > 0 {
					reg.Weights = &api.AgentWeights{Passing: in.weight, Warning: in.warn}
				}
				register(t, admin, reg, in.status)
			}
			reg := prometheus.NewRegistry()
			d := New(newClient(t, agent.Addr), Options{Metrics: upstream.NewDiscoveryMetrics(reg)})
			rec := &testkit.Recorder{}
			q := tt.q
			q.Service = service
			startWatch(t, d, q, rec.Update)
			wantKeys := make([]string, len(tt.want))
			for i, w := range tt.want {
				wantKeys[i] = w.key
			}
			n := rec.WaitFor(t, 0, fmt.Sprint(wantKeys), testkit.HasKeys(wantKeys...))
			got := rec.All()[n].Endpoints()
			for i, w := range tt.want {
				if got[i].Weight != w.weight || got[i].Scheme != w.scheme {
					t.Errorf("%s: weight %d scheme %s, want %d %s", w.key, got[i].Weight, got[i].Scheme, w.weight, w.scheme)
				}
			}
			if r := counter(t, reg, metricRejected, service); r != tt.wantRejected {
				t.Errorf("rejected = %v, want %v", r, tt.wantRejected)
			}
		})
	}
}

// TestWatchFollowsChanges walks one service through register, check failure, recovery, an
// HTTP check flipping, and deregistration, and checks that wake-ups that change nothing
// (critical instances joining) emit nothing.
func TestWatchFollowsChanges(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	var healthy atomic.Bool
	healthy.Store(true)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer backend.Close()

	proxy := newCountingProxy(t, agent)
	d := New(newClient(t, proxy.Listener.Addr().String()), Options{})
	rec := &testkit.Recorder{}
	startWatch(t, d, upstream.Target{Service: "web"}, rec.Update)
	n := rec.WaitFor(t, 0, "empty first snapshot", testkit.HasKeys())

	register(t, admin, &api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80}, "")
	n = rec.WaitFor(t, n+1, "web-1", testkit.HasKeys("10.0.0.1:80"))

	// Critical instances add checks, so the service is read again, but the passing set
	// stays the same. (Check output changes would not do: the agent defers syncing them.)
	// Each read is awaited so none is coalesced with the next.
	for i := range 3 {
		before := proxy.health.Load()
		register(t, admin, &api.AgentServiceRegistration{ID: fmt.Sprint("web-c", i), Name: "web", Address: "10.0.0.9", Port: 80 + i}, api.HealthCritical)
		deadline := time.Now().Add(waitLimit)
		for proxy.health.Load() == before {
			if time.Now().After(deadline) {
				t.Fatal("registering a critical instance did not cause a read of the service")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if c := rec.Count(); c != n+1 {
		t.Fatalf("%d snapshots emitted for wake-ups that changed nothing; last %v", c-n-1, rec.LatestKeys())
	}
	if err := admin.Agent().UpdateTTL("service:web-1", "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	n = rec.WaitFor(t, n+1, "web-1 removed", testkit.HasKeys())
	if err := admin.Agent().UpdateTTL("service:web-1", "up", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	n = rec.WaitFor(t, n+1, "web-1 back", testkit.HasKeys("10.0.0.1:80"))

	// An HTTP check against a real backend that starts failing.
	err := admin.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-2", Name: "web", Address: "10.0.0.2", Port: 80,
		Check: &api.AgentServiceCheck{HTTP: backend.URL, Interval: "1s", Timeout: "1s"}})
	if err != nil {
		t.Fatal(err)
	}
	n = rec.WaitFor(t, n+1, "web-2 passing", testkit.HasKeys("10.0.0.1:80", "10.0.0.2:80"))
	healthy.Store(false)
	n = rec.WaitFor(t, n+1, "web-2 critical", testkit.HasKeys("10.0.0.1:80"))

	for _, id := range []string{"web-1", "web-2"} {
		if err := admin.Agent().ServiceDeregister(id); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitFor(t, n+1, "all deregistered", testkit.HasKeys())
}

// TestWatchCancelInterruptsBlockingQuery makes sure a watch parked in a long blocking query
// returns when its context ends instead of waiting out the query.
func TestWatchCancelInterruptsBlockingQuery(t *testing.T) {
	agent := consultest.Start(t)
	d := New(newClient(t, agent.Addr), Options{WaitTime: MaxWaitTime})
	rec := &testkit.Recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Watch(ctx, upstream.Target{Service: "idle"}, rec.Update) }()
	rec.WaitFor(t, 0, "first snapshot", testkit.HasKeys())
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch returned %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Watch still blocked after cancel")
	}
}

// TestWatchSurvivesAgentRestart stops the agent under load (a pool being picked from
// continuously): the pool must keep its endpoints, errors must be logged and counted, and
// after the restart, where a fresh dev agent has lower indexes and different services, the
// watch must catch up with the new state.
func TestWatchSurvivesAgentRestart(t *testing.T) {
	agent := consultest.Start(t)
	register(t, agent.Client(t), &api.AgentServiceRegistration{ID: "api-1", Name: "api", Address: "10.0.0.1", Port: 80}, "")

	reg := prometheus.NewRegistry()
	logs := &testkit.SyncBuffer{}
	d := New(newClient(t, agent.Addr), Options{Metrics: upstream.NewDiscoveryMetrics(reg), Logger: testLogger(logs)})
	pool := upstream.NewPool("api", firstPicker{}, upstream.PoolOptions{})
	rec := &testkit.Recorder{}
	startWatch(t, d, upstream.Target{Service: "api"}, func(s upstream.Snapshot) { pool.Update(s); rec.Update(s) })
	n := rec.WaitFor(t, 0, "api-1", testkit.HasKeys("10.0.0.1:80"))

	// Load: pick continuously; every pick must succeed while the agent is away.
	var picks, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, err := pool.Pick(req, upstream.Excluded{})
			if err != nil {
				failed.Add(1)
			} else {
				m.State.Done(upstream.Outcome{Status: 200})
			}
			picks.Add(1)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	agent.Stop()
	deadline := time.Now().Add(waitLimit)
	for counter(t, reg, metricErrors, "api") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no errors counted while the agent was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := rec.Count(); c != n+1 {
		t.Fatalf("%d snapshots emitted while the agent was down; want none (last %v)", c-n-1, rec.LatestKeys())
	}
	if got := testkit.Keys(pool.View().Snapshot); len(got) != 1 {
		t.Fatalf("pool lost its endpoints during the outage: %v", got)
	}
	if !strings.Contains(logs.String(), "consul query failed") {
		t.Errorf("outage not logged; logs:\n%s", logs.String())
	}

	// A fresh dev agent knows no services: the empty set it reports is the truth, and picks
	// fail from then until api-2 is registered. Only the outage itself must not fail any.
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d picks failed during the outage", f, picks.Load())
	}
	agent.Restart(t)
	register(t, agent.Client(t), &api.AgentServiceRegistration{ID: "api-2", Name: "api", Address: "10.0.0.2", Port: 80}, "")
	rec.WaitFor(t, n+1, "api-2 after restart", testkit.HasKeys("10.0.0.2:80"))
	if !strings.Contains(logs.String(), "consul query recovered") {
		t.Errorf("recovery not logged")
	}
}

// TestWatchDatacenters checks that each datacenter gets its own feed, that a datacenter the
// agent cannot reach fails on its own (errors counted, no snapshot) while the agent's own
// keeps working, and that a feed stops with its last Watch.
func TestWatchDatacenters(t *testing.T) {
	agent := consultest.Start(t)
	register(t, agent.Client(t), &api.AgentServiceRegistration{ID: "dcs-1", Name: "dcs", Address: "10.0.0.1", Port: 80}, "")
	reg := prometheus.NewRegistry()
	d := New(newClient(t, agent.Addr), Options{Metrics: upstream.NewDiscoveryMetrics(reg), Logger: testLogger(&testkit.SyncBuffer{})})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	watch := func(target upstream.Target, rec *testkit.Recorder) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Watch(ctx, target, rec.Update) }()
	}
	own, explicit, missing := &testkit.Recorder{}, &testkit.Recorder{}, &testkit.Recorder{}
	watch(upstream.Target{Service: "dcs"}, own)
	watch(upstream.Target{Service: "dcs", Datacenter: "dc1"}, explicit)
	watch(upstream.Target{Service: "dcs", Datacenter: "nowhere"}, missing)
	own.WaitFor(t, 0, "own datacenter", testkit.HasKeys("10.0.0.1:80"))
	explicit.WaitFor(t, 0, "dc1", testkit.HasKeys("10.0.0.1:80"))
	deadline := time.Now().Add(waitLimit)
	for counter(t, reg, metricErrors, "dcs") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no errors counted for an unknown datacenter")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := missing.Count(); c != 0 {
		t.Errorf("%d snapshots from an unknown datacenter, want none", c)
	}
	d.mu.Lock()
	feeds := len(d.feeds)
	d.mu.Unlock()
	if feeds != 3 { // "", "dc1" and "nowhere": a name is not resolved to the agent's own
		t.Errorf("%d feeds, want 3", feeds)
	}
	cancel()
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.feeds) != 0 {
		t.Errorf("%d feeds left after every Watch ended", len(d.feeds))
	}
}

// TestWatchNodeChecksAndTags covers the changes the checks feed sees only at node level
// (node maintenance adds a critical node check: every instance on the node goes) and tags
// changed in place (only the catalog feed sees them; a route filtering on the new tag, in
// another case, picks the instance up).
func TestWatchNodeChecksAndTags(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	register(t, admin, &api.AgentServiceRegistration{ID: "nt-1", Name: "nt", Address: "10.0.0.1", Port: 80, Tags: []string{"v1"}}, "")
	d := New(newClient(t, agent.Addr), Options{})
	all, canary := &testkit.Recorder{}, &testkit.Recorder{}
	startWatch(t, d, upstream.Target{Service: "nt"}, all.Update)
	startWatch(t, d, upstream.Target{Service: "nt", Tags: []string{"CANARY"}}, canary.Update)
	n := all.WaitFor(t, 0, "nt-1", testkit.HasKeys("10.0.0.1:80"))
	m := canary.WaitFor(t, 0, "no canary yet", testkit.HasKeys())

	if err := admin.Agent().EnableNodeMaintenance("test"); err != nil {
		t.Fatal(err)
	}
	n = all.WaitFor(t, n+1, "node in maintenance", testkit.HasKeys())
	if err := admin.Agent().DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	n = all.WaitFor(t, n+1, "node back", testkit.HasKeys("10.0.0.1:80"))

	register(t, admin, &api.AgentServiceRegistration{ID: "nt-1", Name: "nt", Address: "10.0.0.1", Port: 80, Tags: []string{"v1", "canary"}}, "")
	canary.WaitFor(t, m+1, "retagged instance", testkit.HasKeys("10.0.0.1:80"))
	all.WaitFor(t, n+1, "new tags in meta", func(s upstream.Snapshot) bool {
		eps := s.Endpoints()
		return len(eps) == 1 && eps[0].Meta["tags"] == "v1,canary"
	})
}
