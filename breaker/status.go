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

// Status is one endpoint's resilience state for the admin API.
type Status struct {
	Key string `json:"key"`
	// State is healthy, ejected, unhealthy or refusing (refusing wins, then ejection).
	State string `json:"state"`
	// Available is what the picker sees now: false while ejected, unhealthy (outside panic
	// mode), breaker open, or half-open with every probe slot taken.
	Available           bool       `json:"available"`
	EjectedUntil        *time.Time `json:"ejected_until,omitempty"`
	RefusingUntil       *time.Time `json:"refusing_until,omitempty"`
	TimesEjected        int        `json:"times_ejected"` // after decay for time in service
	ConsecutiveFailures int        `json:"consecutive_failures"`
	TotalFailures       uint64     `json:"total_failures"`
	// Breaker is closed, open or half-open; empty when breakers are off.
	Breaker string `json:"breaker,omitempty"`
	// RecentRequests and RecentFailures are the breaker's rolling window counts.
	RecentRequests uint32 `json:"recent_requests"`
	RecentFailures uint32 `json:"recent_failures"`
	// ActiveCheck is passing or failing; empty when the route has no active checks.
	ActiveCheck string `json:"active_check,omitempty"`
	// Panic is true while the pool is in panic mode and ignores ejections and check results.
	Panic bool `json:"panic"`
}

// StatusOf returns the status of h, or false when h was not made by this package (or is
// nil, as it is for pools without a health policy).
func StatusOf(h upstream.Health) (Status, bool) {
	hh, ok := h.(*health)
	if !ok || hh == nil {
		return Status{}, false
	}
	return hh.status(), true
}

func (h *health) status() Status {
	p := h.p
	var br gobreaker.State
	if h.cb != nil {
		// State() rather than the mirror: it also applies a due open -> half-open move,
		// so Available below agrees with it.
		br = h.cb.State()
	}
	now := p.clock()
	s := Status{
		Key:                 h.key,
		State:               StateHealthy,
		Available:           h.Available(),
		TimesEjected:        int(h.decayedTimes(now)),
		ConsecutiveFailures: int(h.consecFails.Load()),
		TotalFailures:       h.totalFailures.Load(),
		Panic:               p.panic.Load(),
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
	if p.hc {
		s.ActiveCheck = "passing"
		if h.activeDown.Load() {
			s.ActiveCheck = "failing"
		}
	}
	if h.cb != nil {
		s.Breaker = br.String()
		c := h.cb.Counts()
		s.RecentRequests, s.RecentFailures = c.Requests, c.TotalFailures
	}
	return s
}
