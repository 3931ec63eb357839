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
	return scanFrom(p.members, int(i+1), &ex)
}
