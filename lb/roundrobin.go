package lb

import (
	"net/http"
	"sync/atomic"

	"github.com/switchyard/switchyard/upstream"
)

// RoundRobin is the round_robin policy: members in snapshot (key) order, one shared atomic
// counter. It ignores weights.
type RoundRobin struct{}

// Build returns a picker over members. It keeps the slice, which the Pool never modifies.
func (RoundRobin) Build(members []upstream.Member) upstream.Picker {
	if len(members) == 0 {
		return noEndpoint{}
	}
	return &rrPicker{members: members}
}

type rrPicker struct {
	members []upstream.Member
	_       cacheLinePad
	next    atomic.Uint64
	_       cacheLinePad
}

// Pick takes tickets from the counter until one lands on an admissible member; see
// ticketProbes for why a skipped member costs a fresh ticket, not a step to its neighbour.
func (p *rrPicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	n := uint64(len(p.members))
	probes := min(n, ticketProbes)
	var i uint64
	for range probes {
		i = (p.next.Add(1) - 1) % n
		if m := &p.members[i]; admit(m, &ex) {
			return m, nil
		}
	}
	j := scanFrom(p.members, int(i+1), &ex)
	if j < 0 {
		return nil, upstream.ErrNoEndpoint
	}
	p.resume(uint64(j))
	return &p.members[j], nil
}

// resume points the counter just past member j, which a fallback scan found after a run of
// unusable members. Without it the next picks land in the same run again and the scan hands
// them all to j, the run's first survivor; with it the run costs one scan per cycle and j
// keeps an equal share. A lost race leaves the counter to whoever moved it.
func (p *rrPicker) resume(j uint64) {
	n := uint64(len(p.members))
	cur := p.next.Load()
	next := cur - cur%n + j + 1
	if next < cur {
		next += n
	}
	p.next.CompareAndSwap(cur, next)
}
