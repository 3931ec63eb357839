// Package static is the discoverer for routes with fixed `upstreams:` lists.
package static

import (
	"context"

	"github.com/switchyard/switchyard/upstream"
)

// Discoverer serves one fixed snapshot per service name.
type Discoverer struct {
	snapshots map[string]upstream.Snapshot
}

// New returns a discoverer that knows the given services.
func New(snapshots map[string]upstream.Snapshot) *Discoverer {
	return &Discoverer{snapshots: snapshots}
}

// Watch emits the service's fixed snapshot once (an empty one for an unknown service) and
// waits for ctx to end.
func (d *Discoverer) Watch(ctx context.Context, service string, update func(upstream.Snapshot)) error {
	update(d.snapshots[service])
	<-ctx.Done()
	return ctx.Err()
}
