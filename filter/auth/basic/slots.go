package basic

import (
	"context"
	"runtime"
	"time"
)

// slotWait is how long a check waits for a bcrypt slot before answering 503: long enough
// to ride out a burst of real logins, short enough that a flood of wrong passwords turns
// into quick refusals instead of a queue that grows with the flood.
const slotWait = 100 * time.Millisecond

// compareSlots bounds how many bcrypt comparisons run at once: one token per comparison.
type compareSlots chan struct{}

// processSlots is shared by every basic mechanism of the process (every route, the old and
// new config during a reload), so all of them together never take more than GOMAXPROCS
// cores, as it was at start, for bcrypt; whatever the flood, the rest of the gateway
// (cached logins, other routes) keeps CPU.
var processSlots = make(compareSlots, runtime.GOMAXPROCS(0))

// acquire takes a slot, waiting at most wait or until ctx ends; false when it got none.
func (s compareSlots) acquire(ctx context.Context, wait time.Duration) bool {
	select {
	case s <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case s <- struct{}{}:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// release gives back a slot taken by acquire.
func (s compareSlots) release() { <-s }
