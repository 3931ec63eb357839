package lb

import (
	"math/bits"
	"math/rand/v2"
	"net/http"

	"github.com/switchyard/switchyard/upstream"
)

// Random is the random policy: each request goes to a member drawn at random with
// probability proportional to its weight (uniform when weights are equal; weights above
// 2^32-1 count as 2^32-1, as for the weighted policy). It keeps no
// shared counter, so picks from many cores never contend, and successive picks are
// independent, unlike round robin's fixed order.
type Random struct{}

// Build returns a picker over members: Vose's alias table, so a pick costs one random word
// and one comparison at any pool size.
func (Random) Build(members []upstream.Member) upstream.Picker {
	if len(members) == 0 {
		return noEndpoint{}
	}
	return newAliasPicker(members)
}

// aliasFull is the threshold of a column that needs no alias: every 32-bit coin is below it.
const aliasFull = 1 << 32

// aliasPicker draws column i uniformly, then keeps it when a 32-bit coin falls below
// threshold[i] and takes alias[i] otherwise; the thresholds are set so that each member is
// returned with probability weight/total.
type aliasPicker struct {
	members   []upstream.Member
	threshold []uint64 // out of aliasFull
	alias     []uint32
}

// newAliasPicker builds the table with Vose's method in integers: column i starts with
// weight*n, every column's capacity is the total weight, and each column below capacity is
// topped up from one above it.
func newAliasPicker(members []upstream.Member) *aliasPicker {
	n := len(members)
	p := &aliasPicker{members: members, threshold: make([]uint64, n), alias: make([]uint32, n)}
	var total uint64
	scaled := make([]uint64, n)
	for i := range members {
		// Capped as the weighted policy caps them: uncapped, w*n and the total overflow
		// (weights {2^62, 2^62, 2^62, 1} would skew every share).
		w := uint64(min(max(members[i].Weight, 1), maxWeight))
		total += w
		scaled[i] = w * uint64(n)
	}
	small, large := make([]uint32, 0, n), make([]uint32, 0, n)
	for i, s := range scaled {
		if s < total {
			small = append(small, uint32(i))
		} else {
			large = append(large, uint32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small, large = small[:len(small)-1], large[:len(large)-1]
		// scaled[s] < total, so scaled[s] * 2^32 / total fits 32 bits.
		hi, lo := bits.Mul64(scaled[s], aliasFull)
		p.threshold[s], _ = bits.Div64(hi, lo, total)
		p.alias[s] = l
		scaled[l] -= total - scaled[s]
		if scaled[l] < total {
			small = append(small, l)
		} else {
			large = append(large, l)
		}
	}
	// What is left is full (up to rounding, which leaves a column a hair off full).
	for _, rest := range [2][]uint32{small, large} {
		for _, i := range rest {
			p.threshold[i] = aliasFull
			p.alias[i] = i
		}
	}
	return p
}

// randomDraws bounds the draws of one random Pick before it falls back to a scan. Redrawing
// spreads an unusable member's share over the others in proportion to their weights; the
// scan cannot (the member after a run of unusable ones takes what lands in the run), so it
// must be rare: with half of the weight unusable, 16 draws all miss once in 65,536 picks.
const randomDraws = 16

// Pick draws until a draw lands on an admissible member, at most randomDraws times, then
// scans from a random place.
func (p *aliasPicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	n := uint64(len(p.members))
	for range randomDraws {
		if m := &p.members[p.draw(n)]; admit(m, &ex) {
			return m, nil
		}
	}
	return member(p.members, scanFrom(p.members, int(rand.Uint64N(n)), &ex))
}

// draw returns one member index from one random word: the low half picks the column
// (Lemire's multiply-shift, no division), the high half is the coin.
func (p *aliasPicker) draw(n uint64) uint32 {
	r := rand.Uint64()
	i := (r & (1<<32 - 1)) * n >> 32
	if r>>32 < p.threshold[i] {
		return uint32(i)
	}
	return p.alias[i]
}
