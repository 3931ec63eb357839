package ratelimit

import (
	"net/http"

	"github.com/switchyard/switchyard/filter"
)

// ServeRequest makes a Limiter a filter.RequestFilter: it takes one token for r, keyed on
// q.ClientIP (the address resolved through trusted_proxies), the configured header or
// q.Identity (who auth admitted; auth runs earlier in the chain), writes
// the RateLimit-* headers into w's header map on every decision, and on a deny answers 429
// (with Retry-After) through q.Refuse and stops the chain.
//
// A nil *Limiter allows everything and writes nothing, but New returns nil exactly when the
// route has no limit, so the chain builder must leave a nil Limiter out of the chain rather
// than pay a call per request for it.
func (l *Limiter) ServeRequest(w http.ResponseWriter, r *http.Request, q *filter.Request) bool {
	d := l.AllowIdentity(r, q.ClientIP, q.Identity)
	d.SetHeaders(w.Header())
	if d.Allowed {
		return true
	}
	q.Refuse(w, http.StatusTooManyRequests)
	return false
}

// Limiter is a request filter; the assertion keeps the method set from drifting.
var _ filter.RequestFilter = (*Limiter)(nil)
