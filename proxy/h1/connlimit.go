package h1

import "context"

// Options.MaxConnsPerHost caps every connection of a host: being dialed, in
// an exchange or a response body, and idle. All of them are counted by the
// host pool as hp.out + len(hp.idle), under hp.mu, so the cap costs no state
// of its own. A request that finds the cap reached queues a connWaiter on
// the pool and sleeps until one of two things hands it a turn, in FIFO
// order:
//
//   - a connection is released for reuse: release gives it straight to the
//     longest waiter instead of the idle list (the conn stays counted in
//     hp.out, now for the waiter);
//   - a connection closes, fails to dial or is detached by an upgrade:
//     forget passes its slot to the longest waiter, who dials.
//
// So waiters only exist while the idle list is empty: a request waits only
// when there is nothing idle to take, and everything released while anyone
// waits goes to a waiter rather than to the list.
//
// http.Transport does the same with two queues (idle-conn waiters and
// connsPerHostWait) and a dial goroutine per waiter; here the waiter dials
// on its own goroutine, as every request does, and one queue suffices
// because a freed slot and a returned conn both go to the same head.
// Waiters whose context ends are unlinked at once (an intrusive list makes
// that O(1)), rather than left for the granting side to skip.

// testHookTurnGranted, when set by a test, runs after a waiter was granted
// its turn and before a handed-over conn is checked, so a test can make the
// server write to that conn in between.
var testHookTurnGranted func()

// connWaiter is one request waiting for a turn under MaxConnsPerHost. It is
// linked into its host pool's waitList while it waits; every field but
// ready is guarded by the pool's mutex.
type connWaiter struct {
	ready      chan struct{} // closed once granted
	granted    bool          // the waiter now owns one of hp.out: pc, or the right to dial
	pc         *persistConn  // a conn handed over by release; nil grants a slot to dial
	prev, next *connWaiter
}

// waitList is a FIFO of waiters, linked through the waiters themselves so
// that a waiter leaving early unlinks itself without a search.
type waitList struct{ head, tail *connWaiter }

func (l *waitList) pushBack(w *connWaiter) {
	w.prev = l.tail
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
}

func (l *waitList) remove(w *connWaiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

// enqueueLocked queues a new waiter on hp. hp.mu is held.
func (hp *hostPool) enqueueLocked() *connWaiter {
	w := &connWaiter{ready: make(chan struct{})}
	hp.waiters.pushBack(w)
	return w
}

// grantLocked gives the longest waiter its turn: pc, or with a nil pc the
// slot of a connection that is gone. The caller's count in hp.out passes to
// the waiter unchanged. hp.mu is held and hp.waiters is not empty.
func (hp *hostPool) grantLocked(pc *persistConn) {
	w := hp.waiters.head
	hp.waiters.remove(w)
	w.granted, w.pc = true, pc
	close(w.ready)
}

// forget drops a checked-out connection that was closed, failed to dial or
// left the pool through an upgrade from hp's count. Under MaxConnsPerHost
// its slot goes to the longest waiter instead, so no waiter is stranded by a
// connection that closed rather than returned.
func (hp *hostPool) forget() {
	hp.mu.Lock()
	if hp.waiters.head != nil {
		hp.grantLocked(nil)
	} else {
		hp.out--
	}
	hp.mu.Unlock()
}

// awaitTurn blocks until w is granted a turn or ctx ends. Granted, it
// returns the handed-over conn (still to be checked with idleClean) or nil
// for a slot to dial with; either way the caller now counts in hp.out. When
// ctx ends first the waiter leaves the queue without ever holding a slot,
// and the error wraps ctx.Err(), so the caller classifies it like any other
// end of the request's context: in the proxy, a route timeout that fired
// while waiting is a timeout and a client that left is a cancel.
func (c *Client) awaitTurn(ctx context.Context, hp *hostPool, w *connWaiter, addr string) (*persistConn, error) {
	select {
	case <-w.ready:
	case <-ctx.Done():
		hp.mu.Lock()
		granted := w.granted
		if !granted {
			hp.waiters.remove(w)
		}
		hp.mu.Unlock()
		if !granted {
			return nil, ctxError(ctx, "waiting for a free connection to "+addr, nil)
		}
	}
	if ctx.Err() != nil {
		// Granted as the context ended. The exchange would only abort the
		// conn, so pass the turn on to the next waiter instead.
		if w.pc != nil {
			c.release(w.pc, true)
		} else {
			hp.forget()
		}
		return nil, ctxError(ctx, "waiting for a free connection to "+addr, nil)
	}
	return w.pc, nil
}
