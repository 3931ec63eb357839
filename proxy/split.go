package proxy

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// Branch is one weighted branch of a route's traffic split: a pool (a service or a static
// group) and its relative share of the route's requests.
type Branch struct {
	Pool   *upstream.Pool
	Weight int // 0: the branch gets no new requests (sticky clients already on it stay)
}

// maxSchedule bounds the precomputed schedule (weights divided by their gcd). A split whose
// weights sum past it uses the strided counter instead, which is as exact but less smooth.
const maxSchedule = 4096

// splitter chooses a branch per request: exact shares over every run of total requests,
// lock-free (one atomic add) and without allocating. A chosen branch is final for the
// request: when its pool has no endpoint the request is answered 503, never moved to
// another branch, so a split's shares are what the config says even while a canary is down.
type splitter struct {
	branches []Branch
	// schedule is the smooth weighted round robin order (nginx's) of one period: branch i
	// appears weight(i)/gcd times, spread out. Nil when the period exceeds maxSchedule.
	schedule []int32
	// bounds are the cumulative weights for the strided fallback: ticket t in
	// [bounds[i-1], bounds[i]) is branch i.
	bounds []uint64
	total  uint64 // sum of weights (divided by their gcd); 0: every weight is 0
	stride uint64 // coprime with total, so ticket*stride mod total is a permutation
	_      cacheLinePad
	next   atomic.Uint64
}

// cacheLinePad keeps the hot counter off the cache line holding the read-only fields.
type cacheLinePad [64]byte

// newSplitter precomputes the choice for branches; nil when there is no split.
func newSplitter(branches []Branch) *splitter {
	if len(branches) == 0 {
		return nil
	}
	s := &splitter{branches: branches}
	var g uint64
	for _, b := range branches {
		if b.Weight > 0 {
			g = gcd(g, uint64(b.Weight))
		}
	}
	if g == 0 {
		return s // every weight is 0: every request answers 503
	}
	s.bounds = make([]uint64, len(branches))
	for i, b := range branches {
		if b.Weight > 0 {
			s.total += uint64(b.Weight) / g
		}
		s.bounds[i] = s.total
	}
	// A random start: a reload makes a new splitter, and a schedule that always started at
	// its beginning would never reach a 1-in-100 branch on a route reloaded more often than
	// every 50 requests. Any start keeps every period exact.
	s.next.Store(rand.Uint64())
	if s.total <= maxSchedule {
		s.schedule = smoothSchedule(branches, g, s.total)
		return s
	}
	// A stride near total/phi spreads consecutive tickets across the branches; any stride
	// coprime with total keeps every period exact.
	s.stride = s.total*618/1000 | 1
	for gcd(s.stride, s.total) != 1 {
		s.stride++
	}
	return s
}

// smoothSchedule is one period of smooth weighted round robin: each step every branch gains
// its weight, the richest is chosen and pays total. Each branch is chosen exactly its weight
// times per period, interleaved rather than in runs.
func smoothSchedule(branches []Branch, g, total uint64) []int32 {
	current := make([]int64, len(branches))
	schedule := make([]int32, total)
	for step := range schedule {
		best := -1
		for i, b := range branches {
			if b.Weight <= 0 {
				continue
			}
			current[i] += int64(uint64(b.Weight) / g)
			if best < 0 || current[i] > current[best] {
				best = i
			}
		}
		current[best] -= int64(total)
		schedule[step] = int32(best)
	}
	return schedule
}

// pick returns the branch for the next request, or -1 when every weight is 0.
func (s *splitter) pick() int {
	if s.total == 0 {
		return -1
	}
	n := s.next.Add(1) - 1
	if s.schedule != nil {
		return int(s.schedule[n%uint64(len(s.schedule))])
	}
	hi, lo := bits.Mul64(n%s.total, s.stride)
	t := bits.Rem64(hi, lo, s.total)
	lo2, hi2 := 0, len(s.bounds)-1 // first bound > t
	for lo2 < hi2 {
		mid := int(uint(lo2+hi2) >> 1)
		if s.bounds[mid] > t {
			hi2 = mid
		} else {
			lo2 = mid + 1
		}
	}
	return lo2
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// traffic compiles where the route's requests go besides its pool: the split's branches,
// the sticky cookie (over the branches, or over the route's one pool) and the mirror.
func (r *Route) traffic(rc *config.Route, o RouteOptions) {
	r.split = newSplitter(o.Branches)
	branches := o.Branches
	if len(branches) == 0 && o.Pool != nil {
		branches = []Branch{{Pool: o.Pool, Weight: 1}}
	}
	r.sticky = newSticky(rc.Sticky, rc.Host, rc.Prefix, branches)
	if rc.Mirror != nil && o.MirrorPool != nil {
		m := o.Metrics
		if m == nil {
			m = NewMetrics(nil)
		}
		var maxBody int64
		if rc.Retry != nil {
			maxBody = rc.Retry.MaxBodyBytes
		}
		r.mirror = newMirror(o.MirrorPool, rc.Mirror.Percent, maxBody, rc.Timeout, m.mirror, r.Name)
	}
}
