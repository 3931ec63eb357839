package grpcresolver

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/internal/zktest"
	"github.com/switchyard/switchyard/register"
	_ "github.com/switchyard/switchyard/register/zookeeper" // registers zk://
	"github.com/switchyard/switchyard/upstream/zookeeper"
)

// TestZooKeeperChurnOutage runs the scenario on a real ZooKeeper server, with the builder
// opened from a discovery section. The resolver's session goes through a proxy the test
// cuts (for less than the session timeout, so the session survives and its watches are set
// again when it reconnects).
func TestZooKeeperChurnOutage(t *testing.T) {
	srv := zktest.Start(t)
	proxy := srv.Proxy(t)
	b, err := Open(t.Context(), config.RegistryZooKeeper, zookeeper.Open,
		&config.Discovery{ZooKeeper: &config.ZooKeeper{Servers: []string{proxy.Addr}}}, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	runChurnAndOutage(t, registryUnderTest{
		builder:  b,
		target:   "zookeeper:///users",
		registry: "zk://" + srv.Addr,
		opts:     registerOptions(),
		outage:   func(*testing.T) { proxy.Cut() },
		heal:     func(*testing.T) { proxy.Heal() },
	})
}

// TestZooKeeperServerRestart runs the scenario with the ZooKeeper server itself stopped and
// started again (sessions, and so the registrars' ephemeral nodes, survive a restart shorter
// than their timeout); the late instance registers after.
func TestZooKeeperServerRestart(t *testing.T) {
	srv := zktest.Start(t)
	b, err := Open(t.Context(), config.RegistryZooKeeper, zookeeper.Open,
		&config.Discovery{ZooKeeper: &config.ZooKeeper{Servers: []string{srv.Addr}}}, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	opts := registerOptions()
	opts.TTL = 10 * time.Second // the session timeout: longer than the restart
	runChurnAndOutage(t, registryUnderTest{
		builder:           b,
		target:            "zookeeper:///users",
		registry:          "zk://" + srv.Addr,
		opts:              opts,
		outage:            func(*testing.T) { srv.Stop() },
		heal:              func(t *testing.T) { srv.Restart(t) },
		registerAfterHeal: true,
	})
}

// TestZooKeeperRegistrationsExpire is the empty-answer rule with real parts: the instances'
// registrars lose ZooKeeper (their proxy is cut) long enough for their sessions to expire,
// so the server deletes every ephemeral node of the service and the resolver is told the
// service has no instance, while the instances themselves still serve. Calls must go on to
// the last ones it knew; when the registrars are back and register again, the resolver
// follows again.
func TestZooKeeperRegistrationsExpire(t *testing.T) {
	srv := zktest.Start(t)
	registrarPath := srv.Proxy(t)
	logs := &testkit.SyncBuffer{}
	b, err := Open(t.Context(), config.RegistryZooKeeper, zookeeper.Open,
		&config.Discovery{ZooKeeper: &config.ZooKeeper{Servers: []string{srv.Addr}}},
		Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	reg := registryUnderTest{
		registry: "zk://" + registrarPath.Addr,
		opts:     register.Options{TTL: zktest.MinSessionTimeout, Logger: quietLogger()},
	}
	a, c := startBackend(t), startBackend(t)
	registerBackend(t, reg, a)
	registerBackend(t, reg, c)
	conn := dial(t, "zookeeper:///users", b, "round_robin")
	waitServedBy(t, conn, a.addr, c.addr)
	calls := startCaller(conn)
	defer calls.stopCalls()

	registrarPath.Cut()
	waitUntil(t, "the empty answer", func() bool { return strings.Contains(logs.String(), "registry lists no instance") })
	// The sessions expire one by one or together: the resolver may have dropped the first
	// instance before the empty answer came, and then keeps the other. Calls go on to
	// whichever it kept.
	calls.waitSucceeded(t, 400)
	registrarPath.Heal()

	late := startBackend(t)
	registerBackend(t, reg, late)
	calls.waitCalls(t, late.addr, 20)
	calls.waitCalls(t, a.addr, 20)
	calls.waitCalls(t, c.addr, 20)
	ok, total, failed := calls.stopCalls()
	t.Logf("registrations expired and came back: %d calls, %d failed (%v)", total, failed, ok)
	if failed != 0 {
		t.Fatalf("%d of %d calls failed: %v", failed, total, calls.lastErr)
	}
}
