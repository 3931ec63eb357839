package lb

import (
	"math/rand/v2"
	"net/http"

	"github.com/switchyard/switchyard/upstream"
)

// LeastConnFullScanMax is the largest pool the least_conn policy scans in full. Up to this
// size Pick reads every member's in-flight count and takes the lowest, with a uniformly random
// choice among equals: a handful of atomic loads, and exact. Above it Pick uses
// power-of-two-choices (Mitzenmacher): two random members, the less loaded wins. Two
// reasons: a full scan costs O(members) on every request, while two choices cost the same at
// 100 or 10,000 members; and when many requests pick at once from counts that are a moment
// stale, a full scan sends them all to the same least-loaded member (herding) where two random
// choices spread them, while still keeping the maximum load within log log n of the best.
// At 16 members the scan is still only a few tens of nanoseconds and small pools are where
// the exactness of the scan is most visible, so the switch happens there.
const LeastConnFullScanMax = 16

// The small-pool scan remembers refusals in a uint64 bit set.
var _ [64 - LeastConnFullScanMax]struct{}

// p2cRounds bounds how many random pairs one Pick draws before falling back to a scan: with
// half the pool unusable, four pairs all miss one time in 256.
const p2cRounds = 4

// LeastConn is the least_conn policy: fewest in-flight requests, random tie-break among
// equals, power-of-two-choices above LeastConnFullScanMax members. It ignores weights.
type LeastConn struct{}

// Build returns a picker over members. It keeps the slice, which the Pool never modifies.
func (LeastConn) Build(members []upstream.Member) upstream.Picker {
	switch {
	case len(members) == 0:
		return noEndpoint{}
	case len(members) <= LeastConnFullScanMax:
		return &leastScanPicker{members: members}
	}
	return &p2cPicker{members: members}
}

// leastScanPicker is least_conn for small pools.
type leastScanPicker struct {
	members []upstream.Member
}

// Pick scans for the least-loaded usable member. A member that refuses admission (a
// half-open breaker out of probe slots) is remembered in a bit set, which fits a uint64
// because the pool has at most LeastConnFullScanMax members, and the scan is repeated.
func (p *leastScanPicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	var refused uint64
	for range p.members {
		best := -1
		var bestLoad int64
		var ties uint32
		for i := range p.members {
			m := &p.members[i]
			if refused&(1<<i) != 0 || !usable(m, &ex) {
				continue
			}
			load := m.State.InFlight()
			switch {
			case best < 0 || load < bestLoad:
				best, bestLoad, ties = i, load, 1
			case load == bestLoad:
				// Reservoir sampling: the k-th equal replaces the choice with
				// probability 1/k, which leaves every equal equally likely.
				ties++
				if rand.Uint32N(ties) == 0 {
					best = i
				}
			}
		}
		if best < 0 {
			break
		}
		if m := &p.members[best]; m.State.TryAcquire() {
			return m, nil
		}
		refused |= 1 << best
	}
	return nil, upstream.ErrNoEndpoint
}

// p2cPicker is least_conn for large pools.
type p2cPicker struct {
	members []upstream.Member
}

// Pick draws two distinct members from one random word and offers the request to the less
// loaded usable one first (a coin flip on equal loads), then to the other.
func (p *p2cPicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	n := uint64(len(p.members))
	for range p2cRounds {
		r := rand.Uint64()
		i, j := randomPair(r, n)
		a, b := &p.members[i], &p.members[j]
		okA, okB := usable(a, &ex), usable(b, &ex)
		if okA && okB {
			la, lb := a.State.InFlight(), b.State.InFlight()
			if lb < la || (lb == la && r>>63 != 0) {
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
	// Most of the pool is unusable: find anyone at all, starting at a random place so the
	// survivors share the load rather than the first in key order taking it all.
	return member(p.members, scanFrom(p.members, int(rand.Uint64N(n)), &ex))
}

// randomPair maps one random word to two distinct indexes in [0, n), n >= 2, leaving its top
// bit free for a coin flip. Lemire's multiply-shift maps 31 random bits onto [0, n) without
// a division; the bias, n/2^31, is negligible for any real pool.
func randomPair(r, n uint64) (i, j uint64) {
	const mask31 = 1<<31 - 1
	i = (r & mask31) * n >> 31
	j = ((r >> 31) & mask31) * (n - 1) >> 31
	if j >= i {
		j++
	}
	return i, j
}
