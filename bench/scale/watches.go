package scale

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// Watches is one Discoverer watching many services at once, as a gateway does, for the
// registries' scale tests: it notes each service's first snapshot, and when each service
// first had one endpoint more than it started with (the instance a burst adds).
type Watches struct {
	// Seen holds, per service, the unix nanoseconds when it first had perService+1
	// endpoints; 0 until then.
	Seen []atomic.Int64
	// Wrong counts snapshots with neither perService nor perService+1 endpoints.
	Wrong atomic.Int64

	first    sync.WaitGroup
	watching sync.WaitGroup
	stop     context.CancelFunc
}

// WatchAll starts one Watch on d for each of services services, named by name, each expected
// to hold perService endpoints until a burst adds one. Stop ends them.
func WatchAll(ctx context.Context, d upstream.Discoverer, services, perService int, name func(int) string) *Watches {
	w := &Watches{Seen: make([]atomic.Int64, services)}
	ctx, w.stop = context.WithCancel(ctx)
	w.first.Add(services)
	for i := range services {
		w.watching.Go(func() {
			firstDone := false
			_ = d.Watch(ctx, upstream.Target{Service: name(i)}, func(s upstream.Snapshot) {
				switch s.Len() {
				case perService:
				case perService + 1:
					w.Seen[i].CompareAndSwap(0, time.Now().UnixNano())
				default:
					w.Wrong.Add(1)
				}
				if !firstDone { // update is never called concurrently for one Watch
					firstDone = true
					w.first.Done()
				}
			})
		})
	}
	return w
}

// WaitFirst reports whether every service had its first snapshot within d.
func (w *Watches) WaitFirst(d time.Duration) bool { return WaitWithin(&w.first, d) }

// Stop ends every Watch and waits for them to return.
func (w *Watches) Stop() {
	w.stop()
	w.watching.Wait()
}
