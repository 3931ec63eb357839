package proxy

import (
	"net/http"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// retryable reports whether a failed attempt may be retried: never after the client left,
// only for timeouts when the route asks for it, and only when the body can be replayed.
func (x *exchange) retryable(k upstream.ErrorKind) bool {
	if x.pastDeadline() {
		return false // a gRPC call out of time: another attempt would fail at once
	}
	switch k {
	case upstream.ErrReset: // refused dials are refusedRetry's
	case upstream.ErrTimeout:
		if !x.rt.Retry.OnTimeout {
			return false
		}
	default:
		return false
	}
	return x.body == nil || x.body.rewind()
}

// refusedRetry decides whether a refused (or failed) dial is retried on another endpoint.
// Nothing was sent, so it is safe for every method and costs the upstreams nothing: it
// counts neither against the route's retries nor against the retry budget, and needs no
// replayable body (none was read). A dead endpoint therefore never fails a request while
// another endpoint of the pool can take it (issue #12). It stays bounded when every
// endpoint refuses: each endpoint is tried at most once per request (at most
// upstream.MaxExcluded of them), only within the route's timeout, and a refusing endpoint
// is set aside by the health layer at its first refusal, so later requests skip it and an
// all-down pool answers 503 at once instead of dialling.
func (x *exchange) refusedRetry(ex *upstream.Excluded) bool {
	rt := x.rt
	if rt.Retry == nil || ex.Len() >= upstream.MaxExcluded-1 || x.pastDeadline() {
		return false
	}
	if rt.Timeout > 0 && time.Since(x.start) >= rt.Timeout {
		return false
	}
	if x.cbody != nil && x.cbody.read > 0 && (x.body == nil || !x.body.rewind()) {
		return false // a transport that read the body before failing: cannot resend it
	}
	rt.metrics.retried.Inc()
	return true
}

// canRetry counts a retry and, for the failures that can signal an overloaded upstream (a
// timeout, a retried status), takes a slot of the route's retry budget (once per request).
// A connection that broke before any response (a pooled connection to a process that just
// died, a reset) is retried without the budget: it is bounded by the route's retries, and
// budgeting it let a single killed backend fail the requests in flight on it (issue #12).
func (x *exchange) canRetry(budgeted *bool, kind upstream.ErrorKind) bool {
	if x.rt.Retry == nil {
		return false
	}
	if kind != upstream.ErrReset && !*budgeted {
		if !x.rt.budget.acquire() {
			x.rt.metrics.budgetDenied.Inc()
			return false
		}
		*budgeted = true
	}
	x.rt.metrics.retried.Inc()
	return true
}

// repeatable reports whether the request may be sent more than once: the route says all its
// requests are (retry.idempotent), or the request is idempotent (isIdempotent). A gRPC call
// is repeatable only by its route: it is always a POST, and an Idempotency-Key on it is
// application metadata the gateway cannot vouch for.
func (x *exchange) repeatable() bool {
	return x.rt.Retry.Idempotent || (!x.grpc && isIdempotent(x.r))
}

// isIdempotent follows RFC 9110 9.2.2, plus requests that carry an Idempotency-Key.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}
