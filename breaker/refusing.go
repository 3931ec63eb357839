package breaker

import (
	"time"

	"github.com/sony/gobreaker/v2"
)

// An endpoint that refuses connections (or cannot be dialled at all) cannot serve, and
// unlike a 5xx this is not a matter of judgement: nothing listens there. Such an endpoint
// is set aside at its first refused dial for a backoff that doubles while dials keep
// failing (refuseBackoffBase, 2x, ..., refuseBackoffMax), and taken back at its first
// response. This departs from Envoy on purpose: Envoy counts a refusing host as an ordinary
// consecutive failure, so max_ejection_percent can keep it in rotation and panic mode can
// send traffic to it, which turns one dead process into client-visible errors while other
// endpoints could serve (issue #12). Here a refusing endpoint
//   - is unavailable whatever max_ejected_percent says, and even in panic mode;
//   - is not counted as a member for max_ejected_percent and the panic threshold, as an
//     endpoint with an open breaker is not either: both percentages are about endpoints
//     that could take traffic, so a dead one must not make ejecting a failing one
//     impossible, nor push the pool into panic.
//
// When the backoff ends the next request probes it (the proxy retries a refused dial on
// another endpoint for free, so a probe costs the client nothing but a refused dial).
const (
	refuseBackoffBase = time.Second
	refuseBackoffMax  = 30 * time.Second
)

// refused records a refused or failed dial.
func (h *health) refused() {
	n := h.refusals.Add(1)
	d := refuseBackoffMax
	if n <= 6 {
		d = min(refuseBackoffBase<<(n-1), refuseBackoffMax)
	}
	now := h.p.clock()
	h.refusedUntil.Store(now + int64(d))
	if n == 1 {
		h.p.log.Warn("endpoint refuses connections: set aside", "endpoint", h.key, "for", d)
		h.p.metrics.refusing(h.p.route)
		h.p.membershipChanged()
	}
}

// answered records that the endpoint answered (any response): it is reachable again.
func (h *health) answered() {
	if h.refusals.Load() == 0 {
		return // the common case: one load, no write
	}
	h.refusals.Store(0)
	h.refusedUntil.Store(0)
	h.p.log.Info("endpoint answers again", "endpoint", h.key)
	h.p.membershipChanged()
}

// refusing reports whether the endpoint is set aside for refusing connections at now.
func (h *health) refusing(now int64) bool {
	u := h.refusedUntil.Load()
	return u != 0 && now < u
}

// canServe reports whether the endpoint counts as a member for max_ejected_percent and the
// panic threshold: it accepts connections and its breaker is not open.
func (h *health) canServe(now int64) bool {
	if h.refusing(now) {
		return false
	}
	return h.circuit == nil || gobreaker.State(h.circuitState.Load()) != gobreaker.StateOpen
}
