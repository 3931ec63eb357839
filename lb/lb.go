// Package lb holds the load-balancing policies, split the way grpc-go splits balancer and
// picker: a builder turns each new member set (from upstream.Pool.Update, off the request
// path) into an immutable Picker, and the proxy calls Pick on the request path, which never
// locks, never blocks and never allocates.
//
// Per-endpoint state (in-flight count, health) lives in upstream.EndpointState, which the
// Pool keeps across snapshots; pickers only hold pointers to it, so rebuilding a picker never
// loses a count and a request started on a removed endpoint still decrements the right one.
//
// Every Pick follows the same contract (see upstream.Picker): it considers only members that
// are not in the request's Excluded set and whose State.Available() is true, admits the chosen
// one with State.TryAcquire() (trying another when that returns false), and returns
// upstream.ErrNoEndpoint when no member could be admitted.
package lb

import (
	"fmt"
	"net/http"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// New returns the builder for a route's `lb:` policy name: config.LBRoundRobin,
// config.LBWeighted, config.LBLeastConn, config.LBRandom or config.LBLeastTime. The empty
// name means config.DefaultLB, so a hand-built route without a policy still balances.
func New(policy string) (upstream.PickerBuilder, error) {
	if policy == "" {
		policy = config.DefaultLB
	}
	switch policy {
	case config.LBRoundRobin:
		return RoundRobin{}, nil
	case config.LBWeighted:
		return Weighted{}, nil
	case config.LBLeastConn:
		return LeastConn{}, nil
	case config.LBRandom:
		return Random{}, nil
	case config.LBLeastTime:
		return LeastTime{}, nil
	}
	return nil, fmt.Errorf("lb: unknown policy %q (want %q, %q, %q, %q or %q)", policy,
		config.LBRoundRobin, config.LBWeighted, config.LBLeastConn, config.LBRandom, config.LBLeastTime)
}

// ticketProbes bounds how many shared-counter tickets one Pick of the counter-driven
// policies (round robin, weighted) consumes before it falls back to a local scan. Taking a
// fresh ticket for each unavailable member, rather than stepping to the neighbour, keeps the
// survivors' shares exact: the ticket that landed on a dead member is simply not used, so no
// neighbour gets a double share. Eight covers scattered ejections (outlier detection caps
// them at a percentage); only a run of more than eight consecutive unusable members reaches
// the scan. Round robin then moves the counter past the member the scan found, so the run's
// first survivor keeps its share; the weighted pickers do not (a run of eight unusable
// schedule slots is a heavy member down), and there the survivor after it gets the surplus.
const ticketProbes = 8

// cacheLinePad keeps a hot atomic counter off the cache line that holds the picker's
// read-only fields, so counter writes from one core do not evict them from the others.
type cacheLinePad [64]byte

// noEndpoint is the shared empty picker: a pool whose snapshot is empty answers 503.
type noEndpoint struct{}

func (noEndpoint) Pick(*http.Request, upstream.Excluded) (*upstream.Member, error) {
	return nil, upstream.ErrNoEndpoint
}

// usable reports whether m may be offered this request: not excluded by an earlier attempt
// and not marked unavailable by the health layer.
func usable(m *upstream.Member, ex *upstream.Excluded) bool {
	return !ex.Has(m.State) && m.State.Available()
}

// admit tries to hand the request to m, counting it in flight on success.
func admit(m *upstream.Member, ex *upstream.Excluded) bool {
	return usable(m, ex) && m.State.TryAcquire()
}

// scanFrom admits the first admissible member at or after start, wrapping around, and
// returns its index, or -1 when there is none. It is the last resort of every policy, so a
// Pick that returns ErrNoEndpoint has looked at everyone.
func scanFrom(members []upstream.Member, start int, ex *upstream.Excluded) int {
	if start >= len(members) {
		start = 0
	}
	for i := start; i < len(members); i++ {
		if admit(&members[i], ex) {
			return i
		}
	}
	for i := 0; i < start; i++ {
		if admit(&members[i], ex) {
			return i
		}
	}
	return -1
}

// member turns scanFrom's answer into Pick's.
func member(members []upstream.Member, i int) (*upstream.Member, error) {
	if i < 0 {
		return nil, upstream.ErrNoEndpoint
	}
	return &members[i], nil
}
