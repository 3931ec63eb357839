package main

import (
	"context"
	"log/slog"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/upstream"
	"github.com/switchyard/switchyard/upstream/consul"
	"github.com/switchyard/switchyard/upstream/etcd"
	"github.com/switchyard/switchyard/upstream/zookeeper"
)

// registries lists every registry routes can read from, by the name routes' `discovery:`
// gives it, in the order they start (and the reverse order they close). A new registry is
// its package's Opener and one line here.
var registries = []struct {
	name string
	open upstream.Opener
}{
	{config.RegistryStatic, upstream.OpenStatic},
	{config.RegistryEtcd, etcd.Open}, // also starts the embedded server
	{config.RegistryConsul, consul.Open},
	{config.RegistryZooKeeper, zookeeper.Open},
}

// startRegistries opens every registry the config's discovery section configures. The
// returned func closes them all, in reverse order.
func startRegistries(ctx context.Context, cfg *config.Config, dm *upstream.DiscoveryMetrics, log *slog.Logger) (gateway.Registries, func(), error) {
	regs := make(gateway.Registries, len(registries))
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	for _, r := range registries {
		d, closeOne, err := r.open(ctx, cfg.Discovery, upstream.OpenOptions{Metrics: dm, Logger: log})
		if err != nil {
			closeAll()
			return nil, func() {}, err
		}
		closers = append(closers, closeOne)
		if d != nil {
			regs[r.name] = d
		}
	}
	return regs, closeAll, nil
}
