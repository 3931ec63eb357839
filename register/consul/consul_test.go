package consul

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/register"
)

// consulWait bounds waits for the agent's checks (which run at most once a second); it only
// detects a hang.
const consulWait = 20 * time.Second

// verifyNoLeaks checks for leaked goroutines when the test and all its cleanups are done.
// It is per test rather than a TestMain because the package's other backends own their test
// files, and it ignores goroutines that were already running when the test started.
func verifyNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestOpenConsulErrors(t *testing.T) {
	tests := []struct {
		name     string
		registry string
		inst     register.Instance
		want     string
	}{
		{"no host", "consul://", register.Instance{Service: "s", Address: "127.0.0.1:80"}, "needs host:port"},
		{"address without port", "consul://127.0.0.1:8500", register.Instance{Service: "s", Address: "127.0.0.1"}, "missing port"},
		{"bad port", "consul://127.0.0.1:8500", register.Instance{Service: "s", Address: "127.0.0.1:http"}, "bad port"},
		{"bad scheme", "consul://127.0.0.1:8500", register.Instance{Service: "s", Address: "127.0.0.1:80", Scheme: "ftp"}, "not http or https"},
		{"another registry", "etcd://127.0.0.1:2379", register.Instance{Service: "s", Address: "127.0.0.1:80"}, "not a consul:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.registry, tt.inst, register.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// tcpTarget is a loopback listener that accepts and closes connections, for TCP checks.
func tcpTarget(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l
}

// status is the aggregated check status of a service instance, "" when it is not registered.
func status(t *testing.T, cli *api.Client, service, id string) string {
	t.Helper()
	entries, _, err := cli.Health().Service(service, "", false, nil)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Service.ID == id {
			return e.Checks.AggregatedStatus()
		}
	}
	return ""
}

func waitStatus(t *testing.T, cli *api.Client, service, id, want string) {
	t.Helper()
	deadline := time.Now().Add(consulWait)
	for {
		got := status(t, cli, service, id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s status %q after %v, want %q", id, got, consulWait, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsulRegistrar registers one instance per check kind with a real agent, checks what
// the agent holds, restarts the agent (which forgets every registration) and expects each
// registrar to put its instance back, makes the checked targets fail, and deregisters.
func TestConsulRegistrar(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.Start(t)
	admin := agent.Client(t)

	var healthy atomic.Bool
	healthy.Store(true)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer web.Close()
	tcp, dflt := tcpTarget(t), tcpTarget(t)

	type kind struct {
		id      string
		addr    string
		check   register.Check
		fail    func()
		wantTTL bool
	}
	kinds := []kind{
		{id: "http", addr: web.Listener.Addr().String(), check: register.Check{HTTP: web.URL + "/healthz", Interval: time.Second},
			fail: func() { healthy.Store(false) }},
		{id: "tcp", addr: "127.0.0.1:9", check: register.Check{TCP: tcp.Addr().String(), Interval: time.Second},
			fail: func() { tcp.Close() }},
		{id: "default", addr: dflt.Addr().String(), check: register.Check{Interval: time.Second},
			fail: func() { dflt.Close() }},
		{id: "ttl", addr: "127.0.0.1:10", check: register.Check{TTL: time.Second}, wantTTL: true},
	}
	regs := make([]register.Registrar, len(kinds))
	ctx := context.Background()
	for i, k := range kinds {
		r, err := register.Open("consul://"+agent.Addr, register.Instance{
			Service: "users", ID: "users-" + k.id, Address: k.addr, Scheme: "https", Weight: 3,
			Tags: []string{"v2"}, Meta: map[string]string{"zone": "a"},
		}, register.Options{Check: k.check, TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = r.Register(rctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: Register: %v", k.id, err)
		}
		regs[i] = r
		defer r.Deregister(ctx) // harmless if the test already did
	}

	for _, k := range kinds {
		waitStatus(t, admin, "users", "users-"+k.id, api.HealthPassing)
		svc, _, err := admin.Agent().Service("users-"+k.id, nil)
		if err != nil {
			t.Fatal(err)
		}
		host, _, _ := net.SplitHostPort(k.addr)
		if svc.Address != host || svc.Weights != (api.AgentWeights{Passing: 3, Warning: 1}) ||
			!slices.Equal(svc.Tags, []string{"v2"}) || svc.Meta["zone"] != "a" || svc.Meta["scheme"] != "https" {
			t.Errorf("%s: agent holds %+v", k.id, svc)
		}
	}

	// A TTL check that nobody passes goes critical after 1 s; the registrar keeps it alive.
	time.Sleep(3 * kinds[3].check.TTL)
	if s := status(t, admin, "users", "users-ttl"); s != api.HealthPassing {
		t.Errorf("TTL instance is %q after 3 TTLs, want passing", s)
	}

	agent.Restart(t)
	for _, k := range kinds {
		waitStatus(t, admin, "users", "users-"+k.id, api.HealthPassing)
	}

	for _, k := range kinds {
		if k.fail != nil {
			k.fail()
		}
	}
	for _, k := range kinds {
		if k.fail != nil {
			waitStatus(t, admin, "users", "users-"+k.id, api.HealthCritical)
		}
	}

	for i, r := range regs {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := r.Deregister(dctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: Deregister: %v", kinds[i].id, err)
		}
	}
	// Deregistering again is not an error: the instance is gone either way.
	if err := regs[0].Deregister(ctx); err != nil {
		t.Errorf("second Deregister: %v", err)
	}
	// The keeper is stopped: nothing comes back after a few of its intervals.
	time.Sleep(3 * time.Second / 2)
	if services, err := admin.Agent().Services(); err != nil || len(services) != 0 {
		t.Fatalf("after deregister the agent holds %v (err %v)", services, err)
	}
}
