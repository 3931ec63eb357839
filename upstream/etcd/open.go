package etcd

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// Open is the etcd registry's upstream.Opener: it starts the embedded server when the config
// asks for one, then connects the client to discovery.etcd (which the config loader points at
// the embedded server when only `embedded:` is set).
func Open(ctx context.Context, d *config.Discovery, o upstream.OpenOptions) (upstream.Discoverer, func(), error) {
	if d == nil || (d.Embedded == nil && d.Etcd == nil) {
		return nil, func() {}, nil
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if d.Embedded != nil {
		emb, err := StartEmbedded(ctx, d.Embedded, o.Logger)
		if err != nil {
			return nil, func() {}, fmt.Errorf("embedded etcd: %w", err)
		}
		closers = append(closers, emb.Close)
	}
	if d.Etcd == nil {
		return nil, closeAll, nil // a server for services only; no route reads it
	}
	cli, err := NewClient(d.Etcd)
	if err != nil {
		closeAll()
		return nil, func() {}, fmt.Errorf("etcd: %w", err)
	}
	closers = append(closers, func() { _ = cli.Close() })
	return New(cli, Options{Prefix: d.Etcd.Prefix, Debounce: d.Etcd.Debounce, Metrics: o.Metrics, Logger: o.Logger}), closeAll, nil
}
