package breaker

import (
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/switchyard/switchyard/upstream"
)

// Endpoint health states as Status.State reports them.
const (
	StateHealthy   = "healthy"
	StateEjected   = "ejected"   // outlier detection took it out until EjectedUntil
	StateUnhealthy = "unhealthy" // failing active health checks
	StateRefusing  = "refusing"  // refused a connection; set aside until RefusingUntil
)

// Status is one endpoint's resilience state for the admin API. It is defined in upstream,
// where upstream.Health returns it, so that wrapped Health values report it too.
type Status = upstream.HealthStatus

// StatusOf returns the status of h, or false when h is nil (as it is for pools without a
// health policy).
func StatusOf(h upstream.Health) (Status, bool) {
	if h == nil {
		return Status{}, false
	}
	return h.Status(), true
}

// Key implements upstream.Health.
func (h *health) Key() string { return h.key }

// Status implements upstream.Health.
func (h *health) Status() Status {
	p := h.p
	var br gobreaker.State
	if h.circuit != nil {
		// State() rather than the mirror: it also applies a due open -> half-open move,
		// so Available below agrees with it.
		br = h.circuit.State()
	}
	now := p.clock()
	s := Status{
		Key:                 h.key,
		State:               StateHealthy,
		Available:           h.Available(),
		TimesEjected:        int(h.decayedTimes(now)),
		ConsecutiveFailures: int(h.consecutiveFailures.Load()),
		TotalFailures:       h.totalFailures.Load(),
		Panic:               p.panicMode.Load(),
	}
	if h.activeDown.Load() {
		s.State = StateUnhealthy
	}
	if u := h.ejectedUntil.Load(); u > now {
		s.State = StateEjected
		t := p.base.Add(time.Duration(u))
		s.EjectedUntil = &t
	}
	if u := h.refusedUntil.Load(); u > now {
		s.State = StateRefusing
		t := p.base.Add(time.Duration(u))
		s.RefusingUntil = &t
	}
	if p.activeChecks {
		s.ActiveCheck = "passing"
		if h.activeDown.Load() {
			s.ActiveCheck = "failing"
		}
	}
	if h.circuit != nil {
		s.Breaker = br.String()
		c := h.circuit.Counts()
		s.RecentRequests, s.RecentFailures = c.Requests, c.TotalFailures
	}
	return s
}
