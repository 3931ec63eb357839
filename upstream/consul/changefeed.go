package consul

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/upstream"
)

// The catalog feed waits for the checks feed's answer (see explainedBy) twice as long as a
// whole checks answer took when last asked without blocking, within these bounds: a
// registration's checks answer normally follows within that time, and a deletion, which the
// checks feed may never be woken for, is settled by reading the checks after it.
const (
	explainWaitMin = 20 * time.Millisecond
	explainWaitMax = time.Second
)

// cheapSweepPerReader is how many watched services per reader a sweep may read instead of
// explaining a services-index move first.
const cheapSweepPerReader = 4

// follow runs one blocking query for the feed's life, following Consul's blocking-query
// rules (https://developer.hashicorp.com/consul/api-docs/features/blocking): reset the
// index when it goes backwards, never block on index 0, rate-limit calls that return at
// once, back off on errors. fetch makes one call and applies its answer; it returns the
// answer's index. Errors never touch the services' last reads (fabio#861 dropped routes on
// a failed read; traefik#3944 stopped updating after one 500).
func (f *feed) follow(query string, fetch func(ctx context.Context, index uint64) (uint64, error)) {
	defer f.wg.Done()
	log := f.log.With("query", query)
	// A small burst lets a change that follows another at once be seen without waiting;
	// the sustained rate of calls that return at once stays at one per MinInterval, so an
	// index stuck at 0 cannot turn the feed into a hot loop against the agent.
	limiter := rate.NewLimiter(rate.Every(f.opts.MinInterval), minIntervalBurst)
	bo := newBackoff()
	var (
		index    uint64
		failures int
	)
	for {
		if limiter.Wait(f.ctx) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(f.ctx, f.opts.WaitTime+f.opts.WaitTime/16+callSlack)
		got, err := fetch(ctx, index)
		cancel()
		if f.ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			f.countErrors()
			delay := bo.NextBackOff()
			// One warning per outage; the rest at debug, whatever the number of services.
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			log.Log(f.ctx, level, "consul query failed; keeping last endpoints",
				"error", err, "failures", failures, "retry_in", delay)
			// The agent may come back with lower indexes (a restart, a new leader without
			// the old state): blocking on the old index would then wait a full WaitTime
			// before noticing. Re-read from scratch instead.
			index = 0
			if !upstream.Sleep(f.ctx, delay) {
				return
			}
			continue
		}
		bo.Reset()
		if failures > 0 {
			log.Info("consul query recovered", "failures", failures)
			failures = 0
			f.resync()
		} else if got > 0 && got < index {
			f.resync()
		}
		index = nextIndex(index, got)
	}
}

// queryOptions is a blocking query's options (non-blocking for index 0).
func (f *feed) queryOptions(ctx context.Context, index uint64) *api.QueryOptions {
	return (&api.QueryOptions{
		WaitIndex:  index,
		WaitTime:   f.opts.WaitTime,
		AllowStale: f.opts.AllowStale,
		Datacenter: f.datacenter,
	}).WithContext(ctx)
}

// fetchChecks reads every check in the datacenter and marks dirty the watched services
// whose checks changed.
func (f *feed) fetchChecks(ctx context.Context, index uint64) (uint64, error) {
	return f.readChecks(ctx, index, false)
}

// readChecks reads every check (blocking when index > 0) and applies the answer. A
// non-blocking read's duration is remembered: it is what one change costs to learn.
func (f *feed) readChecks(ctx context.Context, index uint64, onlyNewer bool) (uint64, error) {
	start := time.Now()
	var (
		entries []checkEntry
		sink    checksSink
	)
	meta, err := f.cli.Raw().Query("/v1/health/state/any", &entries, f.queryOptions(withChecksSink(ctx, &sink), index))
	if err != nil {
		return 0, err
	}
	if sink.decoded {
		entries = sink.entries
	}
	f.applyChecks(indexChecks(entries), meta.LastIndex, onlyNewer)
	if index == 0 {
		took := time.Since(start)
		f.mu.Lock()
		f.checksTook = took
		f.mu.Unlock()
	}
	return meta.LastIndex, nil
}

// applyChecks diffs a checks answer against the previous one. A node-level check (serfHealth,
// node maintenance) changes every instance on its node, so it dirties every watched service
// with an instance or a check there.
// onlyNewer drops an answer older than the last one applied: explainedBy's own read may race
// the feed's. The feed's answers are always applied (after an agent restart the index
// legitimately goes backwards).
func (f *feed) applyChecks(cur map[checkKey]checkState, index uint64, onlyNewer bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if onlyNewer && (!f.checksSeen || index <= f.checksIndex) {
		return
	}
	old, seen, oldIndex := f.checks, f.checksSeen, f.checksIndex
	f.checks, f.checksIndex, f.checksSeen = cur, index, true
	close(f.checksMoved)
	f.checksMoved = make(chan struct{})
	if !seen {
		f.signal() // reads may start now
		return
	}
	changed := false
	diffChecks(old, cur, func(name string) {
		changed = true
		if svc := f.services[name]; svc != nil {
			f.markDirtyLocked(svc, true)
		}
	}, func(node string) {
		changed = true
		f.markNodeDirtyLocked(node, old, cur)
	})
	if !changed {
		return
	}
	// A removal leaves no ModifyIndex behind; the answer's own index stands for it.
	f.explained.add(index)
	for _, c := range cur {
		if c.modifyIndex > oldIndex {
			f.explained.add(c.modifyIndex)
		}
	}
}

// markNodeDirtyLocked dirties every watched service with an instance on node (from its last
// read) or a check there (from either answer).
func (f *feed) markNodeDirtyLocked(node string, old, cur map[checkKey]checkState) {
	for _, checks := range []map[checkKey]checkState{old, cur} {
		for k, c := range checks {
			if k.node == node && c.service != "" {
				if svc := f.services[c.service]; svc != nil {
					f.markDirtyLocked(svc, true)
				}
			}
		}
	}
	for _, svc := range f.services {
		for _, e := range svc.entries {
			if e != nil && e.Node != nil && e.Node.Node == node {
				f.markDirtyLocked(svc, true)
				break
			}
		}
	}
}

// fetchCatalog reads every service name with its tags and marks dirty the watched services
// that appeared, disappeared or changed tags. When the services index moved and no check
// change explains it (an instance registered without checks, a new address, port or meta),
// every watched service is swept at once: the catalog does not say which one changed. An
// explained move still asks for a sweep within sweepSpacing: changes coalesced into one
// answer can hide a change without checks behind a check change at a later index, and a
// node-level check can explain a move that also added an instance.
func (f *feed) fetchCatalog(ctx context.Context, index uint64) (uint64, error) {
	names, meta, err := f.cli.Catalog().Services(f.queryOptions(ctx, index))
	if err != nil {
		return 0, err
	}
	if !f.applyCatalog(names, meta.LastIndex) {
		return meta.LastIndex, nil
	}
	if f.sweepIsCheap() || !f.explainedBy(meta.LastIndex) {
		f.log.Debug("consul services index moved without a check change; sweeping", "index", meta.LastIndex)
		f.mu.Lock()
		f.sweepLocked()
		f.mu.Unlock()
		return meta.LastIndex, nil
	}
	// Explained, and the check change's services are already being read; but the same
	// answer may hold a change the checks do not show (see verify).
	f.requestSweep()
	return meta.LastIndex, nil
}

// sweepIsCheap says whether reading every watched service costs less than finding out
// whether a sweep is needed: with a few services per reader, the sweep is a handful of reads
// in parallel, where explaining may wait for a whole checks answer.
func (f *feed) sweepIsCheap() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.services) <= cheapSweepPerReader*f.opts.Readers
}

// applyCatalog diffs a catalog answer against the previous one and says whether the
// services index moved forward (so the move needs explaining).
func (f *feed) applyCatalog(cur map[string][]string, index uint64) (moved bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, seen, oldIndex := f.catalog, f.catalogSeen, f.catalogIndex
	f.catalog, f.catalogIndex, f.catalogSeen = cur, index, true
	if !seen {
		f.signal() // reads may start now
		return false
	}
	diffCatalog(old, cur, func(name string) {
		if svc := f.services[name]; svc != nil {
			f.markDirtyLocked(svc, true)
		}
	})
	return oldIndex > 0 && index > oldIndex
}

// explainedBy says whether a check change explains the services index moving to index. A
// cheap probe (a filter no check matches: Consul still answers with the checks index) says
// whether the checks index reached index. If it did not, no check changed and the sweep
// starts at once. If it did, the checks feed's answer is awaited briefly; a deletion can
// move the checks index without waking the feed's blocking query (no check it watches
// changed), so after a wait the checks are read here instead, and that answer says
// whether a check changed at exactly index.
func (f *feed) explainedBy(index uint64) bool {
	if explained, caughtUp := f.explainedLocked(index); explained || caughtUp {
		return explained
	}
	ctx, cancel := context.WithTimeout(f.ctx, readTimeout)
	defer cancel()
	var none []checkEntry
	qo := (&api.QueryOptions{AllowStale: f.opts.AllowStale, Datacenter: f.datacenter, Filter: `CheckID == ""`}).WithContext(ctx)
	meta, err := f.cli.Raw().Query("/v1/health/state/any", &none, qo)
	if err != nil || meta.LastIndex < index {
		return false // unknown, or no check changed: sweep
	}
	f.mu.Lock()
	wait := time.NewTimer(min(max(2*f.checksTook, explainWaitMin), explainWaitMax))
	f.mu.Unlock()
	defer wait.Stop()
	for {
		f.mu.Lock()
		moved := f.checksMoved
		f.mu.Unlock()
		if explained, caughtUp := f.explainedLocked(index); caughtUp {
			return explained
		}
		select {
		case <-moved:
		case <-wait.C:
			if _, err := f.readChecks(ctx, 0, true); err != nil {
				return false
			}
			explained, _ := f.explainedLocked(index)
			return explained
		case <-ctx.Done():
			return f.ctx.Err() != nil // sweep, unless stopping
		}
	}
}

// explainedLocked says whether the checks feed saw a change at index, and whether it has
// seen that index at all.
func (f *feed) explainedLocked(index uint64) (explained, caughtUp bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.explained.has(index), f.checksIndex >= index
}
