package auth

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts every mechanism's decisions as
// switchyard_auth_decisions_total{route, mechanism, result, reason}. One *Metrics serves
// every route; a nil *Metrics counts nothing.
//
// result is the decision's Result, one of: skipped (no credential for this mechanism),
// admitted, invalid (counts towards 401), forbidden (403), unavailable (503) and answered
// (the mechanism wrote the response). Mechanisms after the one that admits do not run and
// are not counted.
//
// reason is one of the fixed words listed in Decision.Reason, plus "busy" (basic auth found
// no bcrypt slot in time); any other word a mechanism returns is counted as "other", so a
// mechanism can never grow the label set.
//
// New makes each mechanism's admitted/ok series at once (it reads 0 rather than being
// absent); the other series appear the first time their decision happens.
type Metrics struct {
	decisions *prometheus.CounterVec
}

// NewMetrics creates the decision counter and registers it with reg (if non-nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_auth_decisions_total",
			Help: "Authentication decisions, by route, mechanism, result (skipped, admitted, invalid, forbidden, unavailable, answered) and reason.",
		}, []string{"route", "mechanism", "result", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions)
	}
	return m
}

// resultLabels are the result label values, indexed by Result.
var resultLabels = [...]string{
	Skipped:     "skipped",
	Admitted:    "admitted",
	Invalid:     "invalid",
	Forbidden:   "forbidden",
	Unavailable: "unavailable",
	Answered:    "answered",
}

// reasonLabels are the reason label values; the last is what any unlisted reason counts as.
var reasonLabels = [...]string{
	"missing", "invalid", "expired", "unknown_key", "wrong_audience", "wrong_issuer",
	"forbidden", "unavailable", "timeout", "denied", "ok", "busy", "canceled", "other",
}

// reasonIndex maps a reason to its place in reasonLabels; a map lookup with a string key
// does not allocate.
var reasonIndex = func() map[string]int {
	m := make(map[string]int, len(reasonLabels))
	for i, r := range reasonLabels {
		m[r] = i
	}
	return m
}()

// otherReason is the index of "other" in reasonLabels.
const otherReason = len(reasonLabels) - 1

// counterRef boxes a Counter so it can sit behind an atomic.Pointer.
type counterRef struct{ counter prometheus.Counter }

// mechanismCounters are one route's counters for one mechanism, made on first use so that
// only the (result, reason) pairs that happen appear in /metrics, and looked up afterwards
// by index without touching the CounterVec (whose label lookup hashes strings on every
// call).
type mechanismCounters struct {
	vec       *prometheus.CounterVec
	route     string
	mechanism string
	slots     [len(resultLabels)][len(reasonLabels)]atomic.Pointer[counterRef]
}

// newMechanismCounters prepares the counters of one mechanism on one route; nil when m is
// nil. The admitted series is made at once so it reads 0 rather than being absent.
func (m *Metrics) newMechanismCounters(route, mechanism string) *mechanismCounters {
	if m == nil {
		return nil
	}
	c := &mechanismCounters{vec: m.decisions, route: route, mechanism: mechanism}
	c.slot(Admitted, reasonIndex["ok"])
	return c
}

// count adds one decision.
func (c *mechanismCounters) count(d Decision) {
	if c == nil {
		return
	}
	reason, ok := reasonIndex[d.Reason]
	if !ok {
		reason = otherReason
	}
	c.slot(labelResult(d.Result), reason).Inc()
}

// slot returns the counter for a result and reason index, creating it the first time.
func (c *mechanismCounters) slot(result Result, reason int) prometheus.Counter {
	p := &c.slots[result][reason]
	if ref := p.Load(); ref != nil {
		return ref.counter
	}
	ref := &counterRef{c.vec.WithLabelValues(c.route, c.mechanism, resultLabels[result], reasonLabels[reason])}
	// Two requests may race to create it; the CounterVec hands both the same series.
	p.CompareAndSwap(nil, ref)
	return ref.counter
}

// labelResult maps a Result to a valid index of resultLabels: a value outside the known
// set is what the filter treats it as, invalid.
func labelResult(r Result) Result {
	if r < 0 || int(r) >= len(resultLabels) {
		return Invalid
	}
	return r
}
