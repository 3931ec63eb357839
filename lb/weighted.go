package lb

import (
	"math/bits"
	"net/http"
	"sync/atomic"

	"github.com/switchyard/switchyard/upstream"
)

// DefaultMaxSchedule is the longest smooth-WRR schedule Weighted precomputes (a []uint32, so
// 256 KiB at most). Building a schedule costs O(length x members), so it is also skipped when
// that product exceeds maxScheduleWork; see Weighted for what happens instead.
const DefaultMaxSchedule = 1 << 16

// maxScheduleWork bounds length x members for a precomputed schedule: about 4M add-and-compare
// steps, a few milliseconds, well inside the 10 ms budget for a pool update.
const maxScheduleWork = 1 << 22

// maxWeight caps one member's weight so the period (sum of weights) fits in 63 bits for any
// pool size that fits in memory; real registries use small weights.
const maxWeight = 1<<32 - 1

// Weighted is the weighted policy: nginx's smooth weighted round robin. For weights
// {a:5, b:1, c:1} the picks are a a b a c a a, repeating.
//
// Weights are first divided by their GCD; the period L is then their sum. Three cases:
//   - all weights equal: smooth WRR degenerates to plain round robin in key order, so the
//     round-robin picker is used (exactly the same sequence, no table).
//   - L <= MaxSchedule and L x members <= 4M: the exact nginx sequence is precomputed once per
//     snapshot and ticket t picks schedule[t mod L].
//   - otherwise (large or finely weighted pools): golden-ratio interleaving, precomputed into
//     the same kind of table when L <= MaxSchedule, computed per pick beyond. Ticket t maps to
//     position (t x P) mod L on the line where member i owns an interval of weight_i
//     positions; P is the integer nearest L/phi coprime with L, so every L consecutive
//     tickets visit every position exactly once and each member gets exactly weight_i of
//     them. The low-discrepancy stride spreads a member's picks evenly through the period
//     (three-gap theorem), which is the property smooth WRR exists for, without a table
//     of length L or an O(L x members) build.
//
// Every pick consumes one ticket of one shared atomic counter, so proportions are exact per
// period however many goroutines pick.
type Weighted struct {
	// MaxSchedule is the longest schedule to precompute; 0 means DefaultMaxSchedule.
	MaxSchedule int
}

// Build returns a picker over members. It keeps the slice, which the Pool never modifies.
func (w Weighted) Build(members []upstream.Member) upstream.Picker {
	n := len(members)
	if n == 0 {
		return noEndpoint{}
	}
	weights := make([]uint64, n)
	var g uint64
	for i := range members {
		wi := uint64(max(members[i].Weight, 1))
		wi = min(wi, maxWeight)
		weights[i] = wi
		g = gcd(g, wi)
	}
	var total uint64
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	if total == uint64(n) {
		return &rrPicker{members: members}
	}
	limit := uint64(w.MaxSchedule)
	if limit == 0 {
		limit = DefaultMaxSchedule
	}
	switch {
	case total <= limit && total*uint64(n) <= maxScheduleWork:
		return &schedulePicker{members: members, schedule: smoothSchedule(weights, total), smooth: true}
	case total <= limit:
		return &schedulePicker{members: members, schedule: newInterleavePicker(members, weights, total).table()}
	}
	return newInterleavePicker(members, weights, total)
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// smoothSchedule runs nginx's smooth weighted round robin for one full period: each step every
// member's current weight grows by its weight, the largest (first on ties, as in nginx) is
// picked and loses the total. After total steps every current weight is back to zero, so
// the sequence repeats exactly.
func smoothSchedule(weights []uint64, total uint64) []uint32 {
	cur := make([]int64, len(weights))
	out := make([]uint32, total)
	for s := range out {
		best := -1
		for i, wi := range weights {
			cur[i] += int64(wi)
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(total)
		out[s] = uint32(best)
	}
	return out
}

type schedulePicker struct {
	members  []upstream.Member
	schedule []uint32
	smooth   bool // the schedule is nginx's sequence, not the interleaved one
	_        cacheLinePad
	next     atomic.Uint64
	_        cacheLinePad
}

// Pick follows the schedule; a ticket landing on an unusable member is dropped and another
// taken, so the others keep their relative shares.
func (p *schedulePicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	l := uint64(len(p.schedule))
	probes := min(l, ticketProbes)
	var i uint32
	for range probes {
		i = p.schedule[(p.next.Add(1)-1)%l]
		if m := &p.members[i]; admit(m, &ex) {
			return m, nil
		}
	}
	return member(p.members, scanFrom(p.members, int(i)+1, &ex))
}

// interleavePicker is the table-free weighted picker; see Weighted.
type interleavePicker struct {
	members []upstream.Member
	period  uint64   // L, the sum of reduced weights
	stride  uint64   // P, coprime with L
	wide    bool     // L > 2^32: (t mod L) x P needs 128-bit arithmetic
	ends    []uint64 // ends[i] = weight_0 + ... + weight_i; member i owns [ends[i-1], ends[i])
	shift   uint     // bucket of position pos is pos >> shift
	buckets []uint32 // buckets[b] = owner of position b << shift; last entry n-1
	_       cacheLinePad
	next    atomic.Uint64
	_       cacheLinePad
}

func newInterleavePicker(members []upstream.Member, weights []uint64, total uint64) *interleavePicker {
	n := len(members)
	p := &interleavePicker{
		members: members,
		period:  total,
		stride:  coprimeStride(total),
		wide:    total > 1<<32,
		ends:    make([]uint64, n),
	}
	var sum uint64
	for i, wi := range weights {
		sum += wi
		p.ends[i] = sum
	}
	// Aim for between n/2 and 2n buckets so the owner search below is nearly always a
	// single comparison, whatever the spread of weights.
	if lb, ln := bits.Len64(total-1), bits.Len(uint(n)); lb > ln {
		p.shift = uint(lb - ln)
	}
	nb := (total-1)>>p.shift + 1
	p.buckets = make([]uint32, nb+1)
	owner := 0
	for b := range nb {
		pos := b << p.shift
		for p.ends[owner] <= pos {
			owner++
		}
		p.buckets[b] = uint32(owner)
	}
	p.buckets[nb] = uint32(n - 1)
	return p
}

// coprimeStride returns the integer nearest l/phi that is coprime with l, so that
// t -> t x P mod l is a permutation of one period with well-spread consecutive images.
func coprimeStride(l uint64) uint64 {
	if l <= 2 {
		return 1
	}
	// 0x9E3779B97F4A7C15 is 2^64/phi; the high word of l times it is floor(l/phi).
	p, _ := bits.Mul64(l, 0x9E3779B97F4A7C15)
	for p < 1 || gcd(p, l) != 1 {
		p++
	}
	return p
}

// table precomputes one period of the interleaved sequence, in O(period), so a pool too large
// for the O(period x members) smooth schedule but with a short period still picks by a
// sequential table read instead of two divisions and a search over scattered arrays.
func (p *interleavePicker) table() []uint32 {
	out := make([]uint32, p.period)
	for t := range out {
		out[t] = uint32(p.owner(p.position(uint64(t))))
	}
	return out
}

// position maps ticket t to its place on the weight line.
func (p *interleavePicker) position(t uint64) uint64 {
	t %= p.period
	if !p.wide {
		return t * p.stride % p.period
	}
	hi, lo := bits.Mul64(t, p.stride)
	return bits.Rem64(hi, lo, p.period)
}

// owner returns the member that owns position pos: the first i with ends[i] > pos, searched
// only between the owners of pos's bucket boundaries.
func (p *interleavePicker) owner(pos uint64) int {
	b := pos >> p.shift
	lo, hi := int(p.buckets[b]), int(p.buckets[b+1])
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.ends[mid] > pos {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Pick works like schedulePicker.Pick with the schedule computed on the fly.
func (p *interleavePicker) Pick(_ *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	var i int
	for range ticketProbes {
		i = p.owner(p.position(p.next.Add(1) - 1))
		if m := &p.members[i]; admit(m, &ex) {
			return m, nil
		}
	}
	return member(p.members, scanFrom(p.members, i+1, &ex))
}
