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
