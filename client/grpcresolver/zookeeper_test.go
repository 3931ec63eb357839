package grpcresolver

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/zktest"
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
