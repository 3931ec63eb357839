package upstream

import (
	"context"
	"log/slog"
	"slices"

	"github.com/switchyard/switchyard/config"
)

// Target is what a pool asks a registry to watch: a service and the query that selects its
// instances. Each registry reads the fields it understands and ignores the rest, so a new
// query option is a new field here, not a new method on every discoverer.
type Target struct {
	// Service is the service name in the registry; empty for a static list.
	Service string
	// Tags an instance must all carry; empty means any (Consul).
	Tags []string
	// Datacenter to read from; empty means the client's own (Consul).
	Datacenter string
	// IncludeWarning keeps instances whose checks are in warning state too; by default only
	// those whose checks all pass are kept. Critical and maintenance ones never are (Consul).
	// It is an opt-in so that the zero Target is the safe query.
	IncludeWarning bool
	// Endpoints is the fixed list of a route's `upstreams:` (the static registry).
	Endpoints []Endpoint
}

// Clone returns a copy of t that shares no slice with it, so a caller may keep it while
// the original's owner reuses its slices.
func (t Target) Clone() Target {
	t.Tags = slices.Clone(t.Tags)
	t.Endpoints = slices.Clone(t.Endpoints)
	return t
}

// Discoverer keeps one target's endpoint set fresh from a registry.
type Discoverer interface {
	// Watch calls update with a full snapshot whenever the target's endpoint set changes,
	// first as soon as the registry has answered once. Bursts may be coalesced, but the last
	// state is always delivered. On registry errors it backs off with jitter and keeps
	// quiet (the last snapshot stays in force); it returns only when ctx ends, with ctx.Err().
	// update is never called concurrently with itself.
	Watch(ctx context.Context, t Target, update func(Snapshot)) error
}

// OpenOptions are what every registry's Open gets besides the config.
type OpenOptions struct {
	// Metrics counts registry errors, rejected entries and snapshots; nil counts nothing.
	Metrics *DiscoveryMetrics
	// Logger receives the registry's warnings; never nil.
	Logger *slog.Logger
}

// Opener connects one registry from the discovery section of the config. It returns a nil
// Discoverer (and no error) when the section does not configure this registry, and a close
// func (never nil) that releases what it opened. ctx bounds the registry's background work.
type Opener func(ctx context.Context, d *config.Discovery, o OpenOptions) (Discoverer, func(), error)

// Static is the discoverer of fixed `upstreams:` lists: it emits the target's endpoints
// once and waits for ctx to end. It needs no connection, so it is always available.
type Static struct{}

// Watch implements Discoverer.
func (Static) Watch(ctx context.Context, t Target, update func(Snapshot)) error {
	update(NewSnapshot(t.Endpoints))
	<-ctx.Done()
	return ctx.Err()
}

// OpenStatic is the static registry's Opener: there is nothing to connect.
func OpenStatic(context.Context, *config.Discovery, OpenOptions) (Discoverer, func(), error) {
	return Static{}, func() {}, nil
}
