package breaker

import (
	"errors"
	"sync/atomic"

	"github.com/sony/gobreaker/v2"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// health is one endpoint's resilience state. Everything the request path reads is an atomic;
// the clock is read only while an ejection or an open breaker is pending.
//
// # Driving gobreaker without a per-request token
//
// upstream.Health splits a request into Admit() and Report(outcome) with nothing tying the
// two together, while gobreaker's TwoStepCircuitBreaker.Allow returns a per-request closure
// (one heap allocation, and it would have to be stored somewhere until Report). Matching
// stored closures to reports in FIFO order would be wrong as soon as requests finish out of
// order. So gobreaker is driven like this instead:
//
//   - gobreaker stays the authority on counts, the trip decision (ReadyToTrip with our ratio
//     and minimum), open timeout, the rolling window and when half-open closes or re-opens.
//     Each outcome is recorded at Report time with CircuitBreaker.Execute around a function
//     that just returns the outcome: one call, one generation, no closure to keep.
//
//   - Its state is mirrored into atomics by OnStateChange, so Available and Admit are
//     lock-free while closed (the common case). gobreaker moves open -> half-open lazily;
//     Admit triggers that with State() once our copy of the deadline has passed.
//
//   - Half-open probe slots are taken in Admit (a CAS on probes, bounded by
//     HalfOpenRequests), not at Report time, because the bound must hold for requests in
//     flight. A canceled probe gives its slot back, as gobreaker's exclusions do.
//
//   - Per-generation correctness: gobreaker drops results of requests admitted in an
//     earlier generation. Without a token we tell them apart by time: a report whose
//     request started (now - Outcome.Latency) before the latest state change belongs to an
//     older generation and is dropped while the breaker is open or half-open, so a slow
//     request from before the trip can neither close nor re-open the breaker, and never
//     consumes or frees a probe slot. While open, every report is dropped. While closed,
//     reports are counted in the current window even if they straddle a window boundary,
//     as any observation made now should be. This needs the proxy to set Outcome.Latency
//     (measured from just after Admit); a zero latency is taken as current.
//
//   - A half-open generation whose probe slots are all taken and have not all reported
//     within one open timeout is failed (see expireProbes), so a misjudged report can delay
//     recovery by one open timeout but never wedge the endpoint.
//
// The cost is gobreaker's mutex, taken twice per reported outcome (Execute's before and
// after steps), plus its two clock reads; no allocation.
type health struct {
	p   *policy
	key string

	// outlier detection
	consecutiveFailures atomic.Int32
	totalFailures       atomic.Uint64
	ejectedUntil        atomic.Int64 // clock ns; 0 or past = not ejected (reset to 0 lazily)
	lastEjectionEnd     atomic.Int64 // clock ns when the last ejection ended, for decay
	timesEjected        atomic.Int32 // as of the last ejection; see decayedTimes

	// refused dials; see refusing.go
	refusals     atomic.Int32
	refusedUntil atomic.Int64 // clock ns; 0 = reachable

	// active health checks; written only by the checker's one probe of this endpoint
	activeDown     atomic.Bool
	activePasses   atomic.Int32
	activeFailures atomic.Int32

	// circuit breaker; circuit is nil when breakers are off
	circuit         *gobreaker.CircuitBreaker[struct{}]
	circuitState    atomic.Int32 // gobreaker.State mirrored by onBreakerChange
	generationStart atomic.Int64 // clock ns of the last breaker state change
	openUntil       atomic.Int64 // clock ns when open may turn half-open
	probes          atomic.Int32 // half-open probe slots taken in this generation
	maxProbes       int32
	openTimeout     int64
}

// errFailed is what a failed outcome looks like to gobreaker.
var errFailed = errors.New("upstream failure")

// Outcome functions for Execute; package-level so recording an outcome allocates nothing.
func succeeded() (struct{}, error) { return struct{}{}, nil }
func failed() (struct{}, error)    { return struct{}{}, errFailed }

// Available reports whether the endpoint may take traffic now, without side effects.
func (h *health) Available() bool {
	if h.refusedUntil.Load() != 0 && h.refusing(h.p.clock()) {
		return false // panic mode never overrides this: nothing listens there
	}
	if !h.p.panicMode.Load() && !h.signalsOK(false) {
		return false
	}
	if h.circuit == nil {
		return true
	}
	switch gobreaker.State(h.circuitState.Load()) {
	case gobreaker.StateClosed:
		return true
	case gobreaker.StateOpen:
		return h.p.clock() >= h.openUntil.Load()
	default:
		return h.probes.Load() < h.maxProbes
	}
}

// Admit admits one request: not ejected or actively failing (unless the pool is in panic
// mode), and the breaker closed or a half-open probe slot free.
func (h *health) Admit() bool {
	if h.refusedUntil.Load() != 0 && h.refusing(h.p.clock()) {
		return false
	}
	if h.p.panicRecheck.Load() != 0 {
		h.p.maybeLeavePanic()
	}
	if !h.p.panicMode.Load() && !h.signalsOK(true) {
		return false
	}
	if h.circuit == nil {
		return true
	}
	for {
		switch gobreaker.State(h.circuitState.Load()) {
		case gobreaker.StateClosed:
			return true
		case gobreaker.StateOpen:
			if h.p.clock() < h.openUntil.Load() {
				return false
			}
			// State() is the call on which gobreaker moves to half-open; the hook has updated
			// circuitState by the time it returns, so the loop sees the new state.
			if h.circuit.State() == gobreaker.StateOpen {
				return false
			}
		default:
			n := h.probes.Load()
			if n >= h.maxProbes {
				h.expireProbes()
				return false
			}
			if h.probes.CompareAndSwap(n, n+1) {
				return true
			}
		}
	}
}

// signalsOK reports whether outlier detection and active checks let the endpoint serve.
// With clear, an ejection that has ended is reset to 0 so later calls skip the clock.
func (h *health) signalsOK(clear bool) bool {
	if h.activeDown.Load() {
		return false
	}
	if u := h.ejectedUntil.Load(); u != 0 {
		if h.p.clock() < u {
			return false
		}
		if clear {
			h.ejectedUntil.CompareAndSwap(u, 0)
		}
	}
	return true
}

// Report records the outcome of an admitted request. A client cancel says nothing about
// the upstream and counts neither as success nor failure.
func (h *health) Report(o upstream.Outcome) {
	if o.Err == upstream.ErrCanceled {
		if h.circuit != nil && gobreaker.State(h.circuitState.Load()) == gobreaker.StateHalfOpen && !h.stale(o) {
			h.releaseProbe()
		}
		return
	}
	if o.Err == upstream.ErrConnect {
		h.refused()
	} else {
		h.answered() // a reset or timeout still proves something listens
	}
	fail := h.p.isFailure(o)
	if h.p.passive {
		h.recordOutlier(fail)
	}
	if h.circuit != nil {
		h.recordBreaker(o, fail)
	}
}

func (h *health) recordOutlier(fail bool) {
	if !fail {
		// Load first: the success path should not write a shared cache line.
		if h.consecutiveFailures.Load() != 0 {
			h.consecutiveFailures.Store(0)
		}
		return
	}
	h.totalFailures.Add(1)
	// Exactly one of several concurrent failures sees the threshold, so one ejects.
	if h.consecutiveFailures.Add(1) == h.p.consecutiveFailures {
		h.p.eject(h)
		h.consecutiveFailures.Store(0)
	}
}

func (h *health) recordBreaker(o upstream.Outcome, fail bool) {
	switch gobreaker.State(h.circuitState.Load()) {
	case gobreaker.StateOpen:
		return // admitted before the trip: gobreaker would drop it too
	case gobreaker.StateHalfOpen:
		if h.stale(o) {
			return
		}
	}
	fn := succeeded
	if fail {
		fn = failed
	}
	// Errors here are gobreaker refusing the record (it changed state meanwhile); the
	// outcome then belongs to a finished generation and is rightly dropped.
	_, _ = h.circuit.Execute(fn)
}

// stale reports whether the request behind o started before the breaker's latest state
// change, i.e. belongs to an earlier generation.
func (h *health) stale(o upstream.Outcome) bool {
	return o.Latency > 0 && h.p.clock()-int64(o.Latency) < h.generationStart.Load()
}

// expireProbes re-opens a half-open breaker whose probes have not all reported within one
// open timeout: a probe that slow is a failure, and this bounds any slot accounting error
// (a probe wrongly judged stale, a Report the proxy never made) to one open timeout instead
// of an endpoint stuck half-open with no free slot forever.
func (h *health) expireProbes() {
	if h.p.clock()-h.generationStart.Load() >= h.openTimeout {
		_, _ = h.circuit.Execute(failed)
	}
}

func (h *health) releaseProbe() {
	for {
		n := h.probes.Load()
		if n <= 0 || h.probes.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// decayedTimes is times-ejected after Envoy-style decay: one ejection is forgiven per base
// ejection time the endpoint has spent back in service since its last ejection ended.
func (h *health) decayedTimes(now int64) int32 {
	times := h.timesEjected.Load()
	last := h.lastEjectionEnd.Load()
	if times == 0 || now <= last || h.p.baseEjection <= 0 {
		return times
	}
	forgiven := (now - last) / h.p.baseEjection
	return times - int32(min(int64(times), forgiven))
}

// initBreaker sets up the endpoint's circuit breaker from br, which newPolicy completed.
func (h *health) initBreaker(br *config.Breaker) {
	h.maxProbes = int32(br.HalfOpenRequests)
	h.openTimeout = int64(br.OpenTimeout)
	minRequests, ratio := br.MinRequests, br.FailureRatio
	h.circuit = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        h.key,
		MaxRequests: br.HalfOpenRequests,
		Interval:    br.Interval,
		// Ten buckets make the window roll instead of resetting all at once, so a burst of
		// failures just before a fixed-window reset is not forgotten.
		BucketPeriod: br.Interval / 10,
		Timeout:      br.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= minRequests && float64(c.TotalFailures) >= ratio*float64(c.Requests)
		},
		OnStateChange: h.onBreakerChange,
	})
}

// onBreakerChange runs under gobreaker's mutex. Fields are written before circuitState so a
// reader that sees the new state also sees its deadline and empty probe slots.
func (h *health) onBreakerChange(_ string, from, to gobreaker.State) {
	now := h.p.clock()
	switch to {
	case gobreaker.StateOpen:
		h.openUntil.Store(now + h.openTimeout)
	case gobreaker.StateHalfOpen:
		h.probes.Store(0)
	}
	h.generationStart.Store(now)
	h.circuitState.Store(int32(to))
	h.p.metrics.breakerChanged(h.p.route, to)
	lvl := h.p.log.Info
	if to == gobreaker.StateOpen {
		lvl = h.p.log.Warn
	}
	lvl("circuit breaker state change", "endpoint", h.key, "from", from.String(), "to", to.String())
}
