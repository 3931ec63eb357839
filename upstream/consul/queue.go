package consul

// readQueue holds the services waiting for a reader in two lanes: services a change feed
// marked first, then those a sweep marked, so a change is never read behind a sweep of every
// watched service (about a second at 1,000 services and 4 readers). A service is in each lane
// at most once at a time; its inUrgent and inSweep flags say where it is, and an entry left
// behind in the sweep lane by an urgent read is skipped.
type readQueue struct {
	urgent, sweep []*service
}

// push queues svc in its lane unless it is already queued there (or, for a sweep, anywhere).
// It reports whether svc was queued.
func (q *readQueue) push(svc *service, urgent bool) bool {
	switch {
	case svc.inUrgent, svc.inSweep && !urgent:
		return false
	case urgent:
		svc.inUrgent = true
		q.urgent = append(q.urgent, svc)
	default:
		svc.inSweep = true
		q.sweep = append(q.sweep, svc)
	}
	return true
}

// pop takes the next service, urgent lane first; nil when both are empty.
func (q *readQueue) pop() *service {
	for len(q.urgent) > 0 {
		svc := q.urgent[0]
		q.urgent[0] = nil
		q.urgent = q.urgent[1:]
		if svc.inUrgent {
			svc.inUrgent, svc.inSweep = false, false
			return svc
		}
	}
	q.urgent = nil // let a burst's backing array go
	for len(q.sweep) > 0 {
		svc := q.sweep[0]
		q.sweep[0] = nil
		q.sweep = q.sweep[1:]
		if svc.inSweep {
			svc.inSweep = false
			return svc
		}
	}
	q.sweep = nil
	return nil
}

// empty says whether no service is waiting.
func (q *readQueue) empty() bool { return len(q.urgent) == 0 && len(q.sweep) == 0 }
