package grpcresolver

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"

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

// TestConsulTargetQuery: a consul target's tag and dc select instances as a route's tags
// and datacenter do, and the instance's weight and metadata (Consul meta and tags) reach
// the addresses as attributes.
func TestConsulTargetQuery(t *testing.T) {
	agent := consultest.Start(t)
	b, err := Open(t.Context(), config.RegistryConsul, consul.Open,
		&config.Discovery{Consul: &config.Consul{Address: agent.Addr}}, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	opts := registerOptions()
	opts.Check = register.Check{TTL: 2 * opts.TTL}
	for _, inst := range []register.Instance{
		{Service: "users", ID: "v2", Address: "127.0.0.1:9002", Weight: 3, Tags: []string{"v2", "eu"}, Meta: map[string]string{"zone": "b"}},
		{Service: "users", ID: "v1", Address: "127.0.0.1:9001", Tags: []string{"v1", "eu"}},
	} {
		r, err := register.Open("consul://"+agent.Addr, inst, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Deregister(context.Background()) })
	}

	for _, tc := range []struct {
		target string
		want   []string
	}{
		{"consul:///users?tag=v2&dc=dc1", []string{"127.0.0.1:9002"}},
		{"consul:///users?tag=EU", []string{"127.0.0.1:9001", "127.0.0.1:9002"}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			cc, _ := build(t, b, tc.target)
			cc.waitFor(t, "the tagged instances", func(s []resolver.State, _ []error) bool {
				return len(s) > 0 && slices.Equal(addrs(s[len(s)-1]), tc.want)
			})
		})
	}
	cc, _ := build(t, b, "consul:///users?tag=v2")
	cc.waitFor(t, "the v2 instance", func(s []resolver.State, _ []error) bool { return len(s) > 0 })
	a := cc.lastState().Addresses[0]
	if Weight(a) != 3 || Metadata(a)["zone"] != "b" || Metadata(a)["tags"] != "v2,eu" || a.ServerName != "users" {
		t.Fatalf("address %s: weight %d, metadata %v, server name %q", a.Addr, Weight(a), Metadata(a), a.ServerName)
	}
	// A datacenter the agent does not know is an error the discoverer retries, not a state.
	other, _ := build(t, b, "consul:///users?dc=nowhere")
	time.Sleep(300 * time.Millisecond)
	if states, _ := other.counts(); states != 0 {
		t.Fatalf("%d states for an unknown datacenter", states)
	}
}
