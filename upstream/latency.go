package upstream

import (
	"math"
	"sync/atomic"
	"time"
)

// LatencyDecay is the time constant of an endpoint's peak-EWMA latency: an observation's
// weight falls to 1/e after this long, and so does a peak's when no request follows it.
// Finagle and Linkerd use the same 10 s.
const LatencyDecay = 10 * time.Second

// LatencyReader is implemented by a PickerBuilder whose pickers read EndpointState.Latency.
// Measuring costs every finished request a clock read and an exponential, so a Pool has its
// endpoints measure only when its builder says it reads the result.
type LatencyReader interface {
	ReadsLatency() bool
}

// clockEpoch anchors monotonicNanos; time.Since on a time with a monotonic reading costs
// one runtime clock read, without the wall clock.
var clockEpoch = time.Now()

// monotonicNanos is nanoseconds since process start on the monotonic clock.
func monotonicNanos() int64 { return int64(time.Since(clockEpoch)) }

// peakEWMA is an endpoint's response latency as Finagle's and Linkerd's peak-EWMA balancers
// keep it: a moving average that jumps at once to any higher observation (so an endpoint
// that turns slow loses traffic at its first slow answer, not after an average catches
// up) and decays towards lower ones with LatencyDecay. It is updated and read without a
// lock: concurrent observations each apply their own decay in a CAS loop.
type peakEWMA struct {
	nanos atomic.Uint64 // math.Float64bits of the estimate in nanoseconds; 0: none yet
	stamp atomic.Int64  // monotonicNanos of the last observation
}

// observeOutcome folds the latency an outcome counts as (observedLatency) into the estimate.
func (p *peakEWMA) observeOutcome(o Outcome) {
	if latency, ok := observedLatency(o, math.Float64frombits(p.nanos.Load())); ok {
		p.observe(latency)
	}
}

// observe folds one latency into the estimate.
func (p *peakEWMA) observe(latency time.Duration) {
	now := monotonicNanos()
	weight := decay(now - p.stamp.Swap(now))
	sample := float64(latency)
	for {
		old := p.nanos.Load()
		cur := math.Float64frombits(old)
		next := sample
		if sample < cur {
			next = cur*weight + sample*(1-weight)
		}
		if p.nanos.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// read returns the estimate decayed for the time from the last observation to now (a
// monotonicNanos reading), so an endpoint that was slow once and then got no traffic is
// tried again after a while, and whether there has been any observation at all.
func (p *peakEWMA) read(now int64) (nanos float64, observed bool) {
	cur := math.Float64frombits(p.nanos.Load())
	if cur == 0 {
		return 0, false
	}
	return cur * decay(now-p.stamp.Load()), true
}

// decay is exp(-elapsed/LatencyDecay), the weight an estimate keeps after elapsed
// nanoseconds. Under load observations come a few milliseconds apart or less, where the
// series 1 - x + x^2/2 is exact to within x^3/6 (below 2e-7 up to 100 ms) at a fraction of
// math.Exp's cost.
func decay(elapsed int64) float64 {
	if elapsed <= 0 {
		return 1
	}
	x := float64(elapsed) / float64(LatencyDecay)
	if x < 0.01 {
		return 1 - x + x*x/2
	}
	return math.Exp(-x)
}

// LatencyDecayWeight is the share of a latency estimate left after elapsed nanoseconds
// without an observation: exp(-elapsed/LatencyDecay).
func LatencyDecayWeight(elapsed int64) float64 { return decay(elapsed) }

// FailurePenalty is the least latency a failed attempt counts as (see observedLatency).
const FailurePenalty = time.Second

// observedLatency is the latency an outcome counts as in the endpoint's estimate, given the
// estimate so far (nanoseconds, 0 when none), and whether it counts at all. A response of
// any status counts its time to the headers. An attempt that failed on the endpoint's side
// without a response (a refused dial, a broken connection, a protocol error, a timeout)
// counts as a penalty, as Finagle's peak-EWMA does: the larger of its own time, twice the
// estimate and FailurePenalty. Otherwise an endpoint that fails fast would never be
// measured, would look idle and unmeasured (cost 0) and draw about 2/n of the first
// attempts. A client that left measures nothing.
func observedLatency(o Outcome, estimate float64) (time.Duration, bool) {
	switch {
	case o.Status != 0:
		return o.Latency, o.Latency > 0
	case o.Err == ErrNone || o.Err == ErrCanceled:
		return 0, false
	}
	return max(o.Latency, time.Duration(2*estimate), FailurePenalty), true
}

// Latency is the endpoint's peak-EWMA response latency (time to response headers), decayed
// to now, and whether any request has measured it yet; a state that is not measured (see
// NewMeasuredEndpointState) never has. The least_time policy reads it.
func (s *EndpointState) Latency() (time.Duration, bool) {
	nanos, ok := s.latency.read(monotonicNanos())
	return time.Duration(nanos), ok
}

// LatencyEstimate is the peak-EWMA latency in nanoseconds as of its last observation, that
// observation's time on a monotonic nanosecond clock, and whether there has been one. A
// picker comparing two endpoints decays the older estimate by LatencyDecayWeight of the gap
// between their times: decaying both to now would scale both by the same factor, so the
// comparison needs no clock read. The two values are read separately, without a lock; a
// concurrent observation may pair one's new value with the other's old one, an error of
// one observation's weight.
func (s *EndpointState) LatencyEstimate() (nanos float64, at int64, measured bool) {
	nanos = math.Float64frombits(s.latency.nanos.Load())
	return nanos, s.latency.stamp.Load(), nanos != 0
}
