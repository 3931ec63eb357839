package basic

import (
	"context"
	"sync"
)

// verdict is the outcome of one bcrypt check. The zero value refuses, so a check that
// never set its outcome (a panic in bcrypt) cannot admit its waiters.
type verdict int

const (
	mismatched verdict = iota
	matched
	busy // no compare slot in time
)

// check is a bcrypt comparison in flight; done is closed once outcome is set.
type check struct {
	done    chan struct{}
	outcome verdict
}

// checksInFlight coalesces concurrent checks of the same credentials into one bcrypt
// comparison. Without it a client that opens many connections at once (a dashboard's
// parallel requests when its cache entry has just expired) would start one comparison per
// request, queue for the few slots and get 503s it did nothing to deserve; a flood that
// repeats one wrong password costs one comparison at a time too.
type checksInFlight struct {
	mu     sync.Mutex
	checks map[cacheKey]*check
}

// do runs compare for key, or waits for the run already in flight for key. A waiter whose
// request ends first gets busy.
func (f *checksInFlight) do(ctx context.Context, key cacheKey, compare func() verdict) verdict {
	f.mu.Lock()
	if c, ok := f.checks[key]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.outcome
		case <-ctx.Done():
			return busy
		}
	}
	if f.checks == nil {
		f.checks = make(map[cacheKey]*check)
	}
	c := &check{done: make(chan struct{})}
	f.checks[key] = c
	f.mu.Unlock()

	defer func() {
		f.mu.Lock()
		delete(f.checks, key)
		f.mu.Unlock()
		close(c.done)
	}()
	c.outcome = compare()
	return c.outcome
}
