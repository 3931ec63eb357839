package consultest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBinaryLookup(t *testing.T) {
	cache := t.TempDir()
	cached := filepath.Join(cache, "switchyard", "consul-"+Version, "consul")
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, env, path, xdg, want string
	}{
		{name: "env wins", env: "/opt/consul", path: "", xdg: cache, want: "/opt/consul"},
		{name: "cache when not on PATH", path: t.TempDir(), xdg: cache, want: cached},
		{name: "nothing found", path: t.TempDir(), xdg: t.TempDir(), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SWITCHYARD_CONSUL_BIN", tt.env)
			t.Setenv("PATH", tt.path)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			if got := Binary(); got != tt.want {
				t.Errorf("Binary() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStartRestartStop checks that an agent answers, that Restart keeps the address but
// forgets state (the index-reset case tests rely on), and that Stop is idempotent.
func TestStartRestartStop(t *testing.T) {
	a := Start(t)
	cli := a.Client(t)
	// Several writes, so the old index is clearly above what a fresh agent starts with.
	for _, id := range []string{"x1", "x2", "x3", "x4", "x5"} {
		if err := cli.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "x", Port: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Agent registrations reach the catalog asynchronously; wait until all five are there.
	var before *api.QueryMeta
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		entries, meta, err := cli.Health().Service("x", "", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 5 {
			before = meta
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 registrations in the catalog", len(entries))
		}
	}
	addr := a.Addr
	a.Restart(t)
	if a.Addr != addr {
		t.Fatalf("Restart moved the agent from %s to %s", addr, a.Addr)
	}
	entries, after, err := cli.Health().Service("x", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("restarted dev agent still knows %d instances of x", len(entries))
	}
	if after.LastIndex >= before.LastIndex {
		t.Errorf("index after restart %d, want below %d", after.LastIndex, before.LastIndex)
	}
	a.Stop()
	a.Stop()
	if _, err := cli.Status().Leader(); err == nil {
		t.Error("agent still answers after Stop")
	}
}
