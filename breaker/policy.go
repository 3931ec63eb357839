// Package breaker is the gateway's per-endpoint resilience layer: passive health (Envoy-style
// outlier detection on real traffic), a circuit breaker per endpoint (sony/gobreaker) and
// optional active health checks. It implements upstream.HealthPolicy and upstream.Health; the
// pool keeps each endpoint's Health across snapshot updates, so ejections and breaker state
// survive a registry re-announcing the endpoint.
package breaker

import (
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// policy is one pool's health policy. The per-endpoint hot path only reads atomics; mu is
// taken on the rare pool-wide decisions (ejecting, panic mode) so that counting ejected
// members and ejecting one more happen as one step.
type policy struct {
	route   string
	metrics *Metrics
	log     *slog.Logger

	passive             bool
	consecutiveFailures int32
	failureStatus       [600]bool // status -> is failure, for the statuses a proxy can see (100..599)
	baseEjection        int64     // ns; multiplied by the times ejected
	maxEjection         int64     // ns; the cap
	maxEjectedPercent   int
	panicThreshold      int // healthy percent below which every endpoint is used; 0 = never

	breakerConfig *config.Breaker // nil: no breakers
	activeChecks  bool            // active checks feed this policy

	// clock is monotonic nanoseconds since base; time.Since on a monotonic base reads only
	// the runtime's nanotime, which is the cheapest clock Go offers. Tests replace it.
	base  time.Time
	clock func() int64

	mu      sync.Mutex
	members []*health

	panicMode    atomic.Bool
	panicRecheck atomic.Int64 // clock time when an ejection ends and panic may be over; 0 = none

	// created indexes the endpoints this policy made by key, so SetMembers finds its own
	// state behind whatever Health values the pool hands back (wrappers included) without
	// a type assertion. The pointers are weak because the pool alone decides how long an
	// endpoint's state lives (it keeps removed ones a while); a strong index would keep
	// every endpoint ever seen. Guarded by mu; kept after the fields the request path
	// reads so that it leaves their layout as it was.
	created map[string]weak.Pointer[health]
}

// NewPolicy returns the health policy of one route's pool: outlier detection when ph is
// non-nil, a circuit breaker per endpoint when br is non-nil. With both nil it returns nil,
// which the pool reads as "every endpoint always available". Use NewRoutePolicy when the
// route also has active health checks. m and log may be nil.
//
// Blocks pass through config.WithDefaults: one from config.Parse is used as it is, and one
// built in code gets the built-in value of every field it leaves at zero, unless zero is a
// setting there (panic_threshold: 0 means never).
func NewPolicy(route string, ph *config.PassiveHealth, br *config.Breaker, m *Metrics, log *slog.Logger) upstream.HealthPolicy {
	return orNil(newPolicy(route, ph, br, nil, m, log))
}

// NewRoutePolicy is NewPolicy for a whole route policy: it also returns a policy (never nil)
// when only HealthCheck is set, so an ActiveChecker has per-endpoint state to write to even
// when passive health and breakers are off. Disabled blocks (Enabled=false) count as nil.
func NewRoutePolicy(route string, pol *config.Policy, m *Metrics, log *slog.Logger) upstream.HealthPolicy {
	if pol == nil {
		return nil
	}
	hc := pol.HealthCheck
	if hc != nil && hc.Enabled != nil && !*hc.Enabled {
		hc = nil
	}
	return orNil(newPolicy(route, pol.PassiveHealth, pol.Breaker, hc, m, log))
}

// orNil returns p as a HealthPolicy, nil when p is: a nil *policy in the interface would
// read as a policy and be called.
func orNil(p *policy) upstream.HealthPolicy {
	if p == nil {
		return nil
	}
	return p
}

// newPolicy builds the policy of NewPolicy and NewRoutePolicy; nil when every block is off.
func newPolicy(route string, ph *config.PassiveHealth, br *config.Breaker, hc *config.HealthCheck, m *Metrics, log *slog.Logger) *policy {
	if ph != nil && ph.Enabled != nil && !*ph.Enabled {
		ph = nil
	}
	if br != nil && br.Enabled != nil && !*br.Enabled {
		br = nil
	}
	if ph == nil && br == nil && hc == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if br != nil {
		br = config.WithDefaults(br)
	}
	// With passive health off, the built-in passive_health block still supplies the panic
	// threshold (active checks can mark endpoints down, and a misconfigured health path
	// must not turn a working pool into 503s) and the statuses the breaker counts as
	// failures: the breaker has no list of its own.
	passive := config.WithDefaults(ph)
	p := &policy{
		route:               route,
		metrics:             m,
		log:                 log.With("route", route),
		passive:             ph != nil,
		consecutiveFailures: int32(passive.ConsecutiveFailures),
		baseEjection:        int64(passive.EjectionTime),
		// Validation keeps the cap at or above the base only when the file sets both.
		maxEjection:       int64(max(passive.MaxEjectionTime, passive.EjectionTime)),
		maxEjectedPercent: passive.MaxEjectedPercent,
		panicThreshold:    passive.PanicThreshold,
		breakerConfig:     br,
		activeChecks:      hc != nil,
		base:              time.Now(),
		created:           make(map[string]weak.Pointer[health]),
	}
	p.clock = func() int64 { return int64(time.Since(p.base)) }
	for _, s := range passive.FailureStatuses {
		if s >= 0 && s < len(p.failureStatus) {
			p.failureStatus[s] = true
		}
	}
	return p
}

// NewHealth creates the state of one endpoint; the pool calls it once per key and keeps it.
func (p *policy) NewHealth(key string) upstream.Health { return p.newHealth(key) }

func (p *policy) newHealth(key string) *health {
	h := &health{p: p, key: key}
	if p.breakerConfig != nil {
		h.initBreaker(p.breakerConfig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.created[key] = weak.Make(h)
	return h
}

// SetMembers records the pool's current members so max-ejected-percent and the panic
// threshold count the right set. Members are matched to the endpoints this policy created
// by key, so a wrapper around its Health values still counts; anything else is ignored.
func (p *policy) SetMembers(hs []upstream.Health) {
	p.mu.Lock()
	defer p.mu.Unlock()
	members := make([]*health, 0, len(hs))
	for _, h := range hs {
		if h == nil {
			continue
		}
		// hs holds the member, so its weak pointer cannot have been cleared.
		if own := p.created[h.Key()].Value(); own != nil {
			members = append(members, own)
		}
	}
	for k, w := range p.created {
		if w.Value() == nil {
			delete(p.created, k)
		}
	}
	p.members = members
	p.recomputePanicLocked(p.clock())
}

// isFailure is Envoy's "consecutive gateway failure plus 5xx" rule: no response, or a
// status configured as a failure. Callers have already dropped ErrCanceled.
func (p *policy) isFailure(o upstream.Outcome) bool {
	if o.Err != upstream.ErrNone {
		return true
	}
	return o.Status >= 0 && o.Status < len(p.failureStatus) && p.failureStatus[o.Status]
}

// eject tries to eject h after its run of failures. Ejection time grows with the times
// ejected (decayed by good behaviour since the last ejection) and is capped.
func (p *policy) eject(h *health) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	if h.ejectedUntil.Load() > now {
		return // failures of requests that were in flight when it was ejected
	}
	// Max ejected percent is counted after this ejection, and one ejection is always
	// allowed: counting before (Envoy's old rule) refused to eject the only bad host of a
	// small pool, which surprised users.
	// Only members that could take traffic count (see refusing.go): a dead endpoint must
	// not make ejecting a failing one impossible.
	ejected, n := 1, 1
	for _, m := range p.members {
		if m == h || !m.canServe(now) {
			continue
		}
		n++
		if m.ejectedUntil.Load() > now {
			ejected++
		}
	}
	if ejected > 1 && ejected*100 > p.maxEjectedPercent*n {
		p.log.Debug("ejection refused by max_ejected_percent", "endpoint", h.key, "ejected", ejected-1, "members", n)
		return
	}
	times := h.decayedTimes(now) + 1
	d := min(p.baseEjection*int64(times), p.maxEjection)
	until := now + d
	h.timesEjected.Store(times)
	h.lastEjectionEnd.Store(until)
	h.ejectedUntil.Store(until)
	p.metrics.ejected(p.route)
	p.log.Warn("endpoint ejected", "endpoint", h.key, "for", time.Duration(d), "times_ejected", times)
	p.recomputePanicLocked(now)
}

// membershipChanged re-evaluates panic mode after an endpoint started or stopped refusing
// connections.
func (p *policy) membershipChanged() { p.activeChanged() }

// activeChanged re-evaluates panic mode after an active check flipped an endpoint.
func (p *policy) activeChanged() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recomputePanicLocked(p.clock())
}

// maybeLeavePanic re-evaluates panic mode once the earliest ejection that caused it, or
// refusal backoff that kept a member out, has ended; both end by time alone, so no event
// would otherwise notice. TryLock keeps
// concurrent requests from queueing behind the one that does the work.
func (p *policy) maybeLeavePanic() {
	r := p.panicRecheck.Load()
	if r == 0 || p.clock() < r || !p.mu.TryLock() {
		return
	}
	defer p.mu.Unlock()
	p.recomputePanicLocked(p.clock())
}

// recomputePanicLocked enters or leaves panic mode. It counts only members that could take
// traffic (see canServe): panic mode overrides health signals (ejections, failing active
// checks), never a breaker or a refused dial, so members it could not use anyway must not
// drive it. Healthy means neither ejected nor failing active checks.
func (p *policy) recomputePanicLocked(now int64) {
	n := 0
	healthy := 0
	// The next time the answer may change by time alone: the end of an ejection matters
	// only in panic mode (it can end it), the end of a refusal backoff always (the member
	// counts again).
	earliestEjection, earliestRefusal := int64(math.MaxInt64), int64(math.MaxInt64)
	for _, m := range p.members {
		if u := m.refusedUntil.Load(); u > now {
			earliestRefusal = min(earliestRefusal, u)
			continue
		}
		if !m.canServe(now) {
			continue
		}
		n++
		switch u := m.ejectedUntil.Load(); {
		case u > now:
			earliestEjection = min(earliestEjection, u)
		case m.activeDown.Load():
		default:
			healthy++
		}
	}
	inPanic := p.panicThreshold > 0 && n > 0 && healthy*100 < p.panicThreshold*n
	earliest := earliestRefusal
	if inPanic {
		earliest = min(earliest, earliestEjection)
	}
	if earliest == math.MaxInt64 {
		earliest = 0
	}
	p.panicRecheck.Store(earliest)
	was := p.panicMode.Swap(inPanic)
	switch {
	case inPanic && !was:
		p.metrics.panicEntered(p.route)
		p.log.Error("panic mode: too few healthy endpoints, using all of them",
			"healthy", healthy, "members", n, "panic_threshold_percent", p.panicThreshold)
	case !inPanic && was:
		p.log.Info("panic mode over", "healthy", healthy, "members", n)
	}
}
