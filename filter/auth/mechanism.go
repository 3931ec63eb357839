// Package auth is the per-route authentication filter: it runs a route's mechanisms (API
// keys, basic, JWT, forward auth; each in its own package below this one) in a fixed order
// and admits the request on the first success. See config/types_auth.go for the order and
// for how the answer is chosen when none admits.
package auth

import (
	"net/http"

	"github.com/switchyard/switchyard/filter"
)

// Result is what one mechanism made of one request.
type Result int

// The results a mechanism returns.
const (
	// Skipped: the request carries no credential for this mechanism.
	Skipped Result = iota
	// Admitted: the credential is valid and allowed on this route. The mechanism has
	// already applied its upstream edits to the request (identity headers, strip).
	Admitted
	// Invalid: a credential is present but wrong, expired, for another audience, signed
	// by an unknown key... Counts towards 401.
	Invalid
	// Forbidden: the credential proves an identity this route does not allow (allow
	// lists, required claims). Counts towards 403.
	Forbidden
	// Unavailable: the mechanism could not decide (no JWKS ever loaded, the forward auth
	// service timed out or is unreachable). Counts towards 503: fail closed.
	Unavailable
	// Answered: the mechanism wrote the response itself (forward auth relaying its
	// service's non-2xx answer); the filter stops and writes nothing more.
	Answered
)

// Decision is one mechanism's verdict on one request.
type Decision struct {
	Result Result
	// Identity names who the credential proves (key name, user, JWT sub, forward
	// identity header's value) when Admitted or Forbidden; never a secret. The filter
	// prefixes it with the mechanism's name.
	Identity string
	// Reason is a short, fixed metric label and debug-log word: "missing", "invalid",
	// "expired", "unknown_key", "wrong_audience", "wrong_issuer", "forbidden",
	// "unavailable", "timeout", "denied", "ok", "busy" (no bcrypt slot in time),
	// "canceled" (the client left during a forward auth call). Any other word counts as
	// "other". It is never sent to the client.
	Reason string
	// Status is the status written when Result is Answered.
	Status int
}

// Mechanism is one way of authenticating a request.
type Mechanism interface {
	// Name is the mechanism's config key (config.AuthAPIKey...): metric label and
	// identity prefix.
	Name() string
	// Authenticate decides on r. It may edit r only when it admits it (identity headers,
	// stripping the credential), and write to w only when it returns Answered. q carries
	// the client IP and request id (forward auth sends them on).
	Authenticate(w http.ResponseWriter, r *http.Request, q *filter.Request) Decision
	// Challenge is the WWW-Authenticate value this mechanism adds to a 401 given its own
	// decision on the request ("" for none), e.g. `Basic realm="users", charset="UTF-8"`.
	Challenge(d Decision) string
	// IdentityHeaders are the request headers the mechanism sets upstream when it admits
	// (name_header, user_header, claims_to_headers, forward response_headers). The filter
	// removes client-sent copies of every mechanism's headers before any runs, so a
	// client can never pass one off as the gateway's.
	IdentityHeaders() []string
}
