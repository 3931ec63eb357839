package forward

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// Why an answer was not used, beside net/http's errors: the causes SetLogger's logger sees.
var (
	errBodyTooLarge      = errors.New("answer body longer than the relay cap")
	errInformational     = errors.New("an informational status as the final answer")
	errConnectionOptions = errors.New("answer's Connection header names too many fields")
	errSeveralIdentities = errors.New("identity header sent more than once")
	errLongIdentity      = errors.New("identity header longer than the identity cap")
	errInvalidValue      = errors.New("a response_headers value has control characters")
)

// SetLogger sets where the cause of each Unavailable decision (the connection error, the
// TLS failure, which check an answer failed) is logged, at debug level: the decision's
// reason says only "timeout" or "unavailable", and an operator chasing 503s needs the rest.
// Nil, the default, logs nothing. Call it before the mechanism serves requests.
func (m *Mechanism) SetLogger(log *slog.Logger) { m.log = log }

// logCause logs why d was decided when d is Unavailable and a debug logger is set, and
// returns d. The cause may quote the auth service's bytes; slog's handlers escape them.
func (m *Mechanism) logCause(r *http.Request, q *filter.Request, d auth.Decision, cause error) auth.Decision {
	if cause == nil || m.log == nil || !m.log.Enabled(r.Context(), slog.LevelDebug) {
		return d
	}
	route, requestID := "", ""
	if q != nil {
		route, requestID = q.Route, q.RequestID
	}
	m.log.LogAttrs(r.Context(), slog.LevelDebug, "forward auth could not decide",
		slog.String("route", route),
		slog.String("request_id", requestID),
		slog.String("reason", d.Reason),
		slog.String("error", cause.Error()))
	return d
}
