package main

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestStartRegistriesOpensWhatIsConfigured: the registry map holds the static registry always
// and each other registry exactly when the discovery section configures it. Consul and
// ZooKeeper clients connect lazily, so unused loopback ports are enough here.
func TestStartRegistriesOpensWhatIsConfigured(t *testing.T) {
	for _, tc := range []struct {
		name      string
		discovery string
		want      []string
	}{
		{"consul only", `{ consul: { address: "127.0.0.1:1" } }`, []string{"consul", "static"}},
		{"zookeeper only", `{ zookeeper: { servers: ["127.0.0.1:1"] } }`, []string{"static", "zookeeper"}},
		{"consul and zookeeper", `{ consul: { address: "127.0.0.1:1" }, zookeeper: { servers: ["127.0.0.1:1"] } }`, []string{"consul", "static", "zookeeper"}},
		{"etcd client", `{ etcd: { endpoints: ["127.0.0.1:1"] } }`, []string{"etcd", "static"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("r.yaml", []byte("discovery: "+tc.discovery+"\nroutes:\n  - prefix: /\n    upstreams: [\"http://127.0.0.1:1\"]\n"))
			if err != nil {
				t.Fatal(err)
			}
			regs, closeAll, err := startRegistries(context.Background(), cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll()
			if got := slices.Sorted(maps.Keys(regs)); !slices.Equal(got, tc.want) {
				t.Fatalf("registries %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEveryConfigRegistryIsRegistered: every registry name config accepts has an opener, so a
// route can never name a registry the binary cannot start, and no opener is unreachable.
func TestEveryConfigRegistryIsRegistered(t *testing.T) {
	var names []string
	for _, r := range registries {
		names = append(names, r.name)
	}
	slices.Sort(names)
	if want := slices.Sorted(slices.Values(config.KnownRegistries())); !slices.Equal(names, want) {
		t.Errorf("openers for %v, config knows %v", names, want)
	}
}
