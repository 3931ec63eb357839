package grpcresolver

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/register"
	_ "github.com/switchyard/switchyard/register/consul" // registers consul://
	"github.com/switchyard/switchyard/upstream/consul"
)

// TestConsulChurnOutageIndexReset runs the scenario on a real Consul agent, with the builder
// opened from a discovery section as the gateway opens it. The outage stops the agent; the
// agent that comes back is a fresh one (dev mode keeps nothing), so its indexes start over
// and its catalog is empty until the registrars' keepers register again: the resolver sees
// an index reset and an empty answer, and calls must go on to the last known instances.
func TestConsulChurnOutageIndexReset(t *testing.T) {
	agent := consultest.Start(t)
	logs := &testkit.SyncBuffer{}
	b, err := Open(t.Context(), config.RegistryConsul, consul.Open,
		&config.Discovery{Consul: &config.Consul{Address: agent.Addr}}, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	opts := registerOptions()
	opts.Check = register.Check{TTL: 2 * opts.TTL}
	runChurnAndOutage(t, registryUnderTest{
		builder:           b,
		target:            "consul:///users?dc=dc1",
		registry:          "consul://" + agent.Addr,
		opts:              opts,
		outage:            func(*testing.T) { agent.Stop() },
		heal:              func(t *testing.T) { agent.Restart(t) },
		registerAfterHeal: true,
		afterHeal: func(t *testing.T) {
			// Whether the fresh agent answered before the keepers re-registered is a race;
			// either way no call may fail.
			t.Logf("the resolver saw an empty answer after the restart: %v", strings.Contains(logs.String(), "registry lists no instance"))
		},
	})
}
