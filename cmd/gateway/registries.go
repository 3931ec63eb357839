package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/upstream"
	"github.com/switchyard/switchyard/upstream/consul"
	"github.com/switchyard/switchyard/upstream/etcd"
	"github.com/switchyard/switchyard/upstream/zookeeper"
)

// startRegistries starts the embedded etcd server if configured and connects every
// configured registry. The returned func closes them all, in reverse order.
func startRegistries(ctx context.Context, cfg *config.Config, dm *upstream.DiscoveryMetrics, log *slog.Logger) (gateway.Registries, func(), error) {
	var regs gateway.Registries
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	d := cfg.Discovery
	if d == nil {
		return regs, closeAll, nil
	}
	if d.Embedded != nil {
		emb, err := etcd.StartEmbedded(ctx, d.Embedded, log)
		if err != nil {
			return regs, closeAll, fmt.Errorf("embedded etcd: %w", err)
		}
		closers = append(closers, emb.Close)
	}
	if d.Etcd != nil {
		cli, err := etcd.NewClient(d.Etcd)
		if err != nil {
			closeAll()
			return regs, func() {}, fmt.Errorf("etcd: %w", err)
		}
		closers = append(closers, func() { _ = cli.Close() })
		regs.Etcd = etcd.New(cli, etcd.Options{Prefix: d.Etcd.Prefix, Debounce: d.Etcd.Debounce, Metrics: dm, Logger: log})
	}
	if d.Consul != nil {
		cli, err := consul.NewClient(d.Consul)
		if err != nil {
			closeAll()
			return regs, func() {}, fmt.Errorf("consul: %w", err)
		}
		regs.Consul = consul.New(cli, consul.Options{
			WaitTime: d.Consul.WaitTime, AllowStale: d.Consul.AllowStale, Metrics: dm, Logger: log,
		})
	}
	if d.ZooKeeper != nil {
		zk, err := zookeeper.New(d.ZooKeeper, zookeeper.Options{Metrics: dm, Logger: log})
		if err != nil {
			closeAll()
			return regs, func() {}, fmt.Errorf("zookeeper: %w", err)
		}
		closers = append(closers, zk.Close)
		regs.ZooKeeper = zk
	}
	return regs, closeAll, nil
}
