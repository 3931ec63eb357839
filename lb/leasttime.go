package lb

import (
	"math/rand/v2"
	"net/http"

	"github.com/switchyard/switchyard/upstream"
)

// LeastTime is the least_time policy, the peak-EWMA balancer of Finagle and Linkerd
// (Traefik's leasttime): of two members drawn at random, the request goes to the one with
// the lower cost, its peak-EWMA latency times one more than its requests in flight. The
// latency is what upstream.EndpointState.Done folds in when a request ends, so a slow
// endpoint loses traffic at its first slow answer, and is tried again as the estimate
// decays (upstream.LatencyDecay). An attempt that fails without a response counts as a
// penalty latency (at least upstream.FailurePenalty), so an endpoint that resets or refuses
// every connection is avoided too, not taken for an idle, unmeasured one. Two random choices rather than the global minimum, so
// that many requests picking at once from a moment-stale view do not all pile onto the
// same member. It ignores weights.
type LeastTime struct{}

// ReadsLatency implements upstream.LatencyReader: a Pool with this policy measures its
// endpoints' latency.
func (LeastTime) ReadsLatency() bool { return true }

// Build returns a picker over members. It keeps the slice, which the Pool never modifies.
// Members whose states are not measured (upstream.NewMeasuredEndpointState; a Pool does it
// for this policy) all look unmeasured: the picker then spreads by in-flight count alone.
func (LeastTime) Build(members []upstream.Member) upstream.Picker {
	switch len(members) {
	case 0:
		return noEndpoint{}
	case 1:
		return singlePicker{members: members}
	}
	return &leastTimePicker{members: members}
}

// unmeasuredBusy is the cost of a member that has requests in flight but no latency
// measured yet (Finagle's penalty): high enough that a new member gets one request at a time
// until its first answer says how fast it is. An idle unmeasured member costs 0, so new
// members are tried at once.
const unmeasuredBusy = 1e15 // nanoseconds: about 11 days

// timeCosts are two members' costs under least_time: peak-EWMA latency times one more than
// the requests in flight; for a member not measured yet, 0 when it is idle and
// unmeasuredBusy otherwise. Both latencies are taken to the later of their observation
// times (see upstream.EndpointState.LatencyEstimate), so Pick reads no clock.
func timeCosts(a, b *upstream.EndpointState) (costA, costB float64) {
	latencyA, atA, measuredA := a.LatencyEstimate()
	latencyB, atB, measuredB := b.LatencyEstimate()
	if measuredA && measuredB {
		if atA < atB {
			latencyA *= upstream.LatencyDecayWeight(atB - atA)
		} else {
			latencyB *= upstream.LatencyDecayWeight(atA - atB)
		}
	}
	return timeCost(latencyA, measuredA, a.InFlight()), timeCost(latencyB, measuredB, b.InFlight())
}

// timeCost is one member's cost from its latency and requests in flight.
func timeCost(latency float64, measured bool, inflight int64) float64 {
	if !measured {
		if inflight == 0 {
			return 0
		}
		return unmeasuredBusy + float64(inflight)
	}
	return latency * float64(inflight+1)
}

// leastTimePicker is least_time for two members or more.
type leastTimePicker struct {
	members []upstream.Member
}

// Pick offers the request to the cheaper usable member of a random pair (a coin flip on
// equal costs), then to the other.
func (p *leastTimePicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	n := uint64(len(p.members))
	for range p2cRounds {
		r := rand.Uint64()
		i, j := randomPair(r, n)
		a, b := &p.members[i], &p.members[j]
		okA, okB := usable(a, &ex), usable(b, &ex)
		if okA && okB {
			ca, cb := timeCosts(a.State, b.State)
			if cb < ca || (cb == ca && r>>63 != 0) {
				a, b = b, a
			}
		} else if okB {
			a, okA, okB = b, true, false
		}
		if okA && a.State.TryAcquire() {
			return a, nil
		}
		if okB && b.State.TryAcquire() {
			return b, nil
		}
	}
	return member(p.members, scanFrom(p.members, int(rand.Uint64N(n)), &ex))
}

// singlePicker serves a pool of one member: there is nothing to choose.
type singlePicker struct {
	members []upstream.Member
}

// Pick admits the only member, if it is usable.
func (p singlePicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	return member(p.members, scanFrom(p.members, 0, &ex))
}
