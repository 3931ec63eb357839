package grpcresolver

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/register"
	_ "github.com/switchyard/switchyard/register/etcd" // registers etcd://
	"github.com/switchyard/switchyard/upstream/etcd"
)

// TestEtcdChurnOutageCompaction runs the scenario on an embedded etcd. The resolver reads
// through a proxy the test cuts; while it is cut an instance registers and etcd compacts
// past that write, so the resolver's watch must re-list to find it.
func TestEtcdChurnOutageCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	writer := srv.Client(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	cli, err := etcd.NewClient(&config.Etcd{Endpoints: []string{proxy.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	logs := &testkit.SyncBuffer{}
	d := etcd.New(cli, etcd.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	b := New(config.RegistryEtcd, d, Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	runChurnAndOutage(t, registryUnderTest{
		builder:  b,
		target:   "etcd:///users",
		registry: "etcd://" + srv.Endpoints()[0],
		opts:     registerOptions(),
		outage:   func(*testing.T) { proxy.Cut() },
		heal:     func(*testing.T) { proxy.Restore() },
		afterHeal: func(t *testing.T) {
			if !strings.Contains(logs.String(), "re-listing") {
				t.Fatalf("the watch resumed without noticing the compaction; logs:\n%s", logs)
			}
		},
		whileOut: func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			// A write after the registration, and compaction up to it: the registration's
			// revision, where the cut watch would resume, is then gone.
			resp, err := writer.Put(ctx, "/unrelated", "x")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := writer.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestEtcdServerRestart runs the scenario with etcd itself stopped (for the registrars too)
// and started again on the same data: the resolver keeps its last addresses while etcd is
// down and resumes its watch once it is back; the late instance registers after.
func TestEtcdServerRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	cli, err := etcd.NewClient(&config.Etcd{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	b := New(config.RegistryEtcd, etcd.New(cli, etcd.Options{Logger: quietLogger()}), Options{Logger: quietLogger()})
	runChurnAndOutage(t, registryUnderTest{
		builder:           b,
		target:            "etcd:///users",
		registry:          "etcd://" + srv.Endpoints()[0],
		opts:              registerOptions(),
		outage:            func(*testing.T) { srv.Stop() },
		heal:              func(t *testing.T) { srv.Restart(t) },
		registerAfterHeal: true,
	})
}

// TestEtcdWeights: a weight registered with register/etcd reaches WeightedBalancer through
// the resolver, and calls are shared by it; re-registering with another weight moves the
// shares without a new address.
func TestEtcdWeights(t *testing.T) {
	srv := etcdtest.Start(t)
	cli, err := etcd.NewClient(&config.Etcd{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	b := New(config.RegistryEtcd, etcd.New(cli, etcd.Options{Logger: quietLogger()}), Options{Logger: quietLogger()})
	light, heavy := startBackend(t), startBackend(t)
	registry := "etcd://" + srv.Endpoints()[0]
	registerWeighted := func(be *backend, weight int) {
		t.Helper()
		reg := registryUnderTest{registry: registry, opts: registerOptions()}
		r, err := register.Open(reg.registry, register.Instance{Service: "users", Address: be.addr, Weight: weight}, reg.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Deregister(context.Background()) })
	}
	registerWeighted(light, 1)
	registerWeighted(heavy, 3)
	conn := dial(t, "etcd:///users", b, WeightedBalancer)
	waitServedBy(t, conn, light.addr, heavy.addr)
	shares := func() map[string]int {
		seen := map[string]int{}
		for range 400 {
			addr, err := call(context.Background(), conn)
			if err != nil {
				t.Fatal(err)
			}
			seen[addr]++
		}
		return seen
	}
	if seen := shares(); seen[light.addr] != 100 || seen[heavy.addr] != 300 {
		t.Fatalf("weights 1:3 from etcd gave %v", seen)
	}
	registerWeighted(light, 7) // same key, new value: weight 7
	waitUntil(t, "the new weight", func() bool {
		seen := shares()
		return seen[light.addr] == 280 && seen[heavy.addr] == 120
	})
}
