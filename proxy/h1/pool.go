package h1

import (
	"sync"
	"time"
)

// hostKey identifies one upstream: the dial address plus whether the
// connection speaks TLS. It is a struct rather than a concatenated string so
// that the hot-path lookup allocates nothing.
type hostKey struct {
	tls  bool
	addr string
}

// hostPool holds the idle connections of one upstream. Its mutex guards a
// few pointer moves only; no I/O happens under it.
type hostPool struct {
	mu      sync.Mutex
	idle    []*persistConn // LIFO: the top is the most recently used, the bottom the oldest
	out     int            // connections checked out (being dialed, in an exchange or a live response body)
	waiters waitList       // requests queued under MaxConnsPerHost; empty whenever idle is not
	dead    bool           // removed from the map by the sweeper; puts must close instead
}

const numShards = 32

// shard is one slice of the host map. Lookups take the read lock, so
// requests to different hosts never contend and requests to the same host
// only share a cache line, not a writer lock.
type shard struct {
	mu sync.RWMutex
	m  map[hostKey]*hostPool
}

func shardIndex(addr string) int {
	// FNV-1a: a few ns for a host:port, and spreads similar addresses well.
	h := uint32(2166136261)
	for i := 0; i < len(addr); i++ {
		h ^= uint32(addr[i])
		h *= 16777619
	}
	return int(h % numShards)
}

// acquire returns the pool for key, creating it, and claims a connection of
// it for the caller: the freshest idle one (pc), or with a nil pc the right
// to dial one. Either way the caller is counted in hp.out, so the sweeper
// will not discard the pool under it. When MaxConnsPerHost connections exist
// already, or others wait before it, it claims nothing and returns the
// caller's place in the queue instead (see awaitTurn). Idle connections
// older than the idle timeout are returned in expired for the caller to
// close outside the lock.
func (c *Client) acquire(key hostKey) (hp *hostPool, pc *persistConn, expired []*persistConn, w *connWaiter) {
	s := &c.shards[shardIndex(key.addr)]
	for {
		s.mu.RLock()
		hp = s.m[key]
		s.mu.RUnlock()
		if hp == nil {
			s.mu.Lock()
			if hp = s.m[key]; hp == nil {
				hp = &hostPool{}
				s.m[key] = hp
			}
			s.mu.Unlock()
		}
		hp.mu.Lock()
		if hp.dead {
			// Lost a race with the sweeper: look the key up again.
			hp.mu.Unlock()
			continue
		}
		pc, expired = c.popIdleLocked(hp)
		// With nothing idle left, hp.out is every connection of the host.
		if pc == nil && c.maxConns > 0 && (hp.out >= c.maxConns || hp.waiters.head != nil) {
			w = hp.enqueueLocked()
		} else {
			hp.out++
		}
		hp.mu.Unlock()
		return hp, pc, expired, w
	}
}

// popIdleLocked takes the freshest idle connection of hp, if any, leaving
// hp.out to the caller. Idle connections older than the idle timeout are
// taken off the list and returned in expired. hp.mu is held.
func (c *Client) popIdleLocked(hp *hostPool) (pc *persistConn, expired []*persistConn) {
	n := len(hp.idle)
	if n == 0 {
		return nil, nil
	}
	pc = hp.idle[n-1]
	hp.idle[n-1] = nil
	hp.idle = hp.idle[:n-1]
	if c.idleTimeout > 0 && time.Since(pc.idleAt) > c.idleTimeout {
		// LIFO order means everything below the top is older still.
		expired = append(expired, pc)
		expired = append(expired, hp.idle...)
		clear(hp.idle)
		hp.idle = hp.idle[:0]
		pc = nil
	}
	return pc, expired
}

// release returns a checked-out connection. When reuse is false, or the pool
// is full or gone, the connection is closed. A full pool evicts its oldest
// connection rather than the fresh one: the oldest is the likeliest to have
// been closed by the server already.
func (c *Client) release(pc *persistConn, reuse bool) {
	hp := pc.hp
	var victim *persistConn
	if reuse && !c.closed.Load() && c.maxIdle > 0 {
		pc.idleAt = time.Now()
		pc.reused = true
		hp.mu.Lock()
		if hp.waiters.head != nil {
			// Someone waits under MaxConnsPerHost (so nothing is idle): the
			// conn stays checked out, now for the longest waiter.
			hp.grantLocked(pc)
			hp.mu.Unlock()
			return
		}
		hp.out--
		if hp.dead {
			victim = pc
		} else {
			if len(hp.idle) >= c.maxIdle {
				victim = hp.idle[0]
				copy(hp.idle, hp.idle[1:])
				hp.idle[len(hp.idle)-1] = nil
				hp.idle = hp.idle[:len(hp.idle)-1]
			} else if len(hp.idle) > 0 && c.idleTimeout > 0 && pc.idleAt.Sub(hp.idle[0].idleAt) > c.idleTimeout {
				// Prune one expired connection per put so a busy host needs no sweeper.
				victim = hp.idle[0]
				copy(hp.idle, hp.idle[1:])
				hp.idle[len(hp.idle)-1] = nil
				hp.idle = hp.idle[:len(hp.idle)-1]
			}
			hp.idle = append(hp.idle, pc)
		}
		hp.mu.Unlock()
		if victim != nil {
			victim.close()
		}
		if victim != pc {
			c.armSweep()
		}
		return
	}
	// Closed before its slot is handed on, so a waiter's dial never overlaps it.
	pc.close()
	hp.forget()
}

// armSweep schedules one sweep if none is pending. The sweep closes idle
// connections of hosts that no longer receive traffic (their pools are never
// touched by acquire/release again) and drops empty host pools, so endpoint
// churn from service discovery does not leak file descriptors or map entries.
// It uses time.AfterFunc, so no goroutine exists between sweeps.
func (c *Client) armSweep() {
	if c.idleTimeout <= 0 || c.sweepArmed.Load() || !c.sweepArmed.CompareAndSwap(false, true) {
		return
	}
	c.sweepMu.Lock()
	if !c.closed.Load() {
		c.sweepTimer = time.AfterFunc(c.idleTimeout, c.sweep)
	}
	c.sweepMu.Unlock()
}

func (c *Client) sweep() {
	now := time.Now()
	remaining := c.dropIdle(func(pc *persistConn) bool { return now.Sub(pc.idleAt) > c.idleTimeout })
	c.sweepArmed.Store(false)
	if remaining {
		c.armSweep()
	}
}

// dropIdle closes the idle connections for which expired is true (all of
// them for a nil func), removes host pools left with nothing idle and nothing
// checked out, and reports whether any idle connection remains.
func (c *Client) dropIdle(expired func(*persistConn) bool) (remaining bool) {
	var victims []*persistConn
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for key, hp := range s.m {
			hp.mu.Lock()
			keep := hp.idle[:0]
			for _, pc := range hp.idle {
				if expired == nil || expired(pc) {
					victims = append(victims, pc)
				} else {
					keep = append(keep, pc)
				}
			}
			clear(hp.idle[len(keep):])
			hp.idle = keep
			if len(hp.idle) == 0 && hp.out == 0 && hp.waiters.head == nil {
				hp.dead = true
				delete(s.m, key)
			} else if len(hp.idle) > 0 {
				remaining = true
			}
			hp.mu.Unlock()
		}
		s.mu.Unlock()
	}
	for _, pc := range victims {
		pc.close()
	}
	return remaining
}
