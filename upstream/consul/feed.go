package consul

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/upstream"
)

// feed follows one datacenter for every Watch of it: three blocking queries learn which
// services changed (checks, service names, nodes), and Options.Readers readers re-read those services, one request each at
// a time. Its goroutines end in stop, which the last Watch's release calls.
type feed struct {
	cli        *api.Client
	opts       Options
	datacenter string
	log        *slog.Logger
	refs       int // guarded by the Discoverer's mu

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	work   chan struct{} // capacity 1: the queue may hold a service to read

	mu           sync.Mutex
	services     map[string]*service // watched services by name
	queue        readQueue           // services waiting for a reader
	checks       map[checkKey]checkState
	checksIndex  uint64
	checksTook   time.Duration // how long a non-blocking checks read took, last time
	checksSeen   bool
	catalog      map[string][]string
	catalogIndex uint64
	catalogSeen  bool
	explained    explainedRing
	checksMoved  chan struct{} // closed and replaced at every checks answer
	nodes        map[string]nodeAddress
	nodesSeen    bool
	sweepSoon    chan struct{} // capacity 1: a verification sweep is wanted within sweepSpacing
}

// service is one watched service name's shared state: the latest read, and where it is in
// the read cycle. All fields but name, limiter and backoff are guarded by feed.mu.
type service struct {
	name    string
	subs    []*subscriber
	entries []*api.ServiceEntry
	index   uint64 // X-Consul-Index of entries; 0 forces the next read to be delivered
	read    bool   // entries hold a successful read

	inUrgent bool // in feed.queue's urgent lane
	inSweep  bool // in feed.queue's sweep lane
	inFlight bool // a reader is reading it
	again    bool // dirtied while in flight: read once more after
	waiting  bool // a timer re-queues it (rate limit or backoff)
	removed  bool // no Watch left
	timer    *time.Timer
	failures int

	limiter *rate.Limiter               // spaces reads that follow each other at once
	backoff *backoff.ExponentialBackOff // spaces reads after errors
}

// subscriber is one Watch's hold on a service: notify says entries may have changed.
type subscriber struct {
	svc    *service
	notify chan struct{}
}

// startFeed starts following datacenter: the three change feeds, the verification sweeps
// and opts.Readers readers. The caller owns the feed and ends it with stop.
func startFeed(cli *api.Client, opts Options, datacenter string) *feed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{
		cli:         cli,
		opts:        opts,
		datacenter:  datacenter,
		log:         opts.Logger.With("registry", registryName, "datacenter", datacenter),
		ctx:         ctx,
		cancel:      cancel,
		work:        make(chan struct{}, 1),
		services:    make(map[string]*service),
		checksMoved: make(chan struct{}),
		sweepSoon:   make(chan struct{}, 1),
	}
	f.wg.Add(4 + opts.Readers)
	go f.follow("health/state/any", f.fetchChecks)
	go f.follow("catalog/services", f.fetchCatalog)
	go f.follow("catalog/nodes", f.fetchNodes)
	go f.verify()
	for range opts.Readers {
		go f.reader()
	}
	return f
}

// stop ends the feed's goroutines and waits for them.
func (f *feed) stop() {
	f.cancel()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, svc := range f.services {
		if svc.timer != nil {
			svc.timer.Stop()
		}
	}
}

// subscribe adds a Watch of name. A new name is read at once (not at the next change), and a
// name already read is delivered at once.
func (f *feed) subscribe(name string) *subscriber {
	f.mu.Lock()
	defer f.mu.Unlock()
	svc := f.services[name]
	if svc == nil {
		svc = &service{
			name:    name,
			limiter: rate.NewLimiter(rate.Every(f.opts.MinInterval), minIntervalBurst),
			backoff: newBackoff(),
		}
		f.services[name] = svc
		f.markDirtyLocked(svc, true)
	}
	sub := &subscriber{svc: svc, notify: make(chan struct{}, 1)}
	svc.subs = append(svc.subs, sub)
	if svc.read {
		sub.notify <- struct{}{}
	}
	return sub
}

// unsubscribe removes a Watch; the service is forgotten with its last Watch.
func (f *feed) unsubscribe(sub *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	svc := sub.svc
	for i, s := range svc.subs {
		if s == sub {
			svc.subs = append(svc.subs[:i], svc.subs[i+1:]...)
			break
		}
	}
	if len(svc.subs) > 0 {
		return
	}
	svc.removed = true
	if svc.timer != nil {
		svc.timer.Stop()
	}
	delete(f.services, svc.name)
}

// entries returns the latest read of sub's service; the slice is never modified.
func (f *feed) entries(sub *subscriber) []*api.ServiceEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return sub.svc.entries
}

// markDirtyLocked schedules a read of svc, coalescing: a service already waiting for a
// read is not queued twice (though a change moves it ahead of a sweep), and one being read
// is read once more afterwards. urgent is for a change a feed saw, not for a sweep.
func (f *feed) markDirtyLocked(svc *service, urgent bool) {
	switch {
	case svc.removed, svc.waiting:
	case svc.inFlight:
		svc.again = true
	case f.queue.push(svc, urgent):
		f.signal()
	}
}

// signal wakes one reader; readers pass it on while the queue holds more.
func (f *feed) signal() {
	select {
	case f.work <- struct{}{}:
	default:
	}
}

// ready says whether every change feed has its first answer. Reads wait for it, so every
// change after a service's first read is seen by a diff against an answer from before it.
func (f *feed) readyLocked() bool { return f.checksSeen && f.catalogSeen && f.nodesSeen }

// reader reads queued services until the feed stops.
func (f *feed) reader() {
	defer f.wg.Done()
	for {
		svc := f.next()
		if svc == nil {
			return
		}
		f.read(svc)
	}
}

// next takes a service off the queue, waiting for one; nil when the feed stops.
func (f *feed) next() *service {
	for {
		f.mu.Lock()
		for f.readyLocked() {
			svc := f.queue.pop()
			if svc == nil {
				break
			}
			if svc.removed {
				continue
			}
			svc.inFlight = true
			if !f.queue.empty() {
				f.signal()
			}
			f.mu.Unlock()
			return svc
		}
		f.mu.Unlock()
		select {
		case <-f.ctx.Done():
			return nil
		case <-f.work:
		}
	}
}

// read re-reads one service (all instances: one read serves every Target of the name) and
// delivers it to the service's Watches when its index moved. Errors keep the last read.
func (f *feed) read(svc *service) {
	if r := svc.limiter.Reserve(); r.Delay() > 0 {
		delay := r.Delay()
		r.Cancel()
		f.mu.Lock()
		svc.inFlight, svc.again = false, false
		f.retryLocked(svc, delay)
		f.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, readTimeout)
	qo := (&api.QueryOptions{AllowStale: f.opts.AllowStale, Datacenter: f.datacenter}).WithContext(ctx)
	entries, meta, err := f.cli.Health().Service(svc.name, "", false, qo)
	cancel()

	f.mu.Lock()
	defer f.mu.Unlock()
	svc.inFlight = false
	if f.ctx.Err() != nil || svc.removed {
		return
	}
	if err != nil {
		svc.failures++
		svc.again = false
		f.opts.Metrics.Error(registryName, svc.name)
		delay := svc.backoff.NextBackOff()
		level := slog.LevelDebug
		if svc.failures == 1 {
			level = slog.LevelWarn
		}
		f.log.Log(f.ctx, level, "consul query failed; keeping last endpoints", "service", svc.name,
			"error", err, "failures", svc.failures, "retry_in", delay)
		// The agent may come back with lower indexes: deliver whatever it says then.
		svc.index = 0
		f.retryLocked(svc, delay)
		return
	}
	if svc.failures > 0 {
		f.log.Info("consul query recovered", "service", svc.name, "failures", svc.failures)
		svc.failures = 0
	}
	if f.opts.AllowStale && svc.read && meta.LastIndex < svc.index {
		// A server behind the one that answered last: delivering would take the routes back
		// to an older set. Ask again (backing off) until a server has caught up; a real index
		// reset goes through resync, which zeroes svc.index.
		svc.again = false
		f.retryLocked(svc, svc.backoff.NextBackOff())
		return
	}
	svc.backoff.Reset()
	// Same index, same answer: a sweep or a change elsewhere on the node woke this read.
	if !svc.read || meta.LastIndex != svc.index || meta.LastIndex == 0 {
		svc.entries, svc.index, svc.read = entries, meta.LastIndex, true
		for _, sub := range svc.subs {
			select {
			case sub.notify <- struct{}{}:
			default: // the Watch has not taken the last one yet; it reads the latest
			}
		}
	}
	if svc.again {
		svc.again = false
		f.markDirtyLocked(svc, true)
	}
}

// retryLocked queues svc again after delay.
func (f *feed) retryLocked(svc *service, delay time.Duration) {
	svc.waiting = true
	svc.timer = time.AfterFunc(delay, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		svc.waiting = false
		if f.ctx.Err() == nil {
			f.markDirtyLocked(svc, true)
		}
	})
}

// sweepLocked schedules a read of every watched service.
func (f *feed) sweepLocked() {
	for _, svc := range f.services {
		f.markDirtyLocked(svc, false)
	}
}

// resync forgets every service's index and reads them all: after an outage or an index that
// went backwards (a restarted agent, a restored snapshot) nothing known can be trusted.
func (f *feed) resync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Indexes from before may come back meaning other writes.
	f.explained.reset()
	f.checksIndex = 0
	for _, svc := range f.services {
		svc.index = 0
		f.markDirtyLocked(svc, false)
	}
}

// sweepSpacing is the least time between two sweeps asked for by requestSweep: under
// continuous churn a sweep costs one read per watched service per sweepSpacing.
const sweepSpacing = time.Second

// requestSweep asks for a verification sweep within sweepSpacing. Requests coalesce: many
// changes within one spacing cost one sweep.
func (f *feed) requestSweep() {
	select {
	case f.sweepSoon <- struct{}{}:
	default:
	}
}

// verify sweeps every WaitTime, and within sweepSpacing of a requestSweep. The diffs cannot
// attribute every change (a change without checks coalesced below a check change, a new
// node with only a node-level check), so every move of the services index asks for a sweep;
// a sweep delivers only services whose own index moved.
func (f *feed) verify() {
	defer f.wg.Done()
	t := time.NewTicker(f.opts.WaitTime)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		case <-f.sweepSoon:
			if !upstream.Sleep(f.ctx, time.Until(last.Add(sweepSpacing))) {
				return
			}
		}
		last = time.Now()
		f.mu.Lock()
		f.sweepLocked()
		f.mu.Unlock()
	}
}

// countErrors counts a failed change query as an error of every watched service: none of
// them can see changes until it recovers.
func (f *feed) countErrors() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name := range f.services {
		f.opts.Metrics.Error(registryName, name)
	}
}

// newBackoff returns the backoff of failed queries: from backoffInitial doubling to
// backoffMax, each delay randomized by half so that many services do not retry in step.
func newBackoff() *backoff.ExponentialBackOff {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     backoffInitial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         backoffMax,
	}
	bo.Reset()
	return bo
}
