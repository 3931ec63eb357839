package upstream

import (
	"errors"
	"net/http"
	"time"
)

// ErrNoEndpoint means a pool has no endpoint able to take the request; the proxy answers 503.
var ErrNoEndpoint = errors.New("no endpoint available")

// ErrorKind classifies how a proxied request failed, so health, breaker and retry logic agree.
type ErrorKind uint8

// Error kinds, from the gateway's point of view.
const (
	ErrNone     ErrorKind = iota // a response arrived (its status may still be a failure)
	ErrConnect                   // dial failed or was refused: nothing was sent
	ErrTimeout                   // the upstream did not answer in time
	ErrReset                     // the connection broke before a response arrived
	ErrProtocol                  // the upstream answered with something that is not HTTP
	ErrCanceled                  // the client went away; never counted against the upstream
)

var errorKindNames = [...]string{"none", "connect", "timeout", "reset", "protocol", "canceled"}

// String names the kind as it appears in logs and metric labels.
func (k ErrorKind) String() string {
	if int(k) < len(errorKindNames) {
		return errorKindNames[k]
	}
	return "unknown"
}

// Outcome is what happened to one request sent to an endpoint.
type Outcome struct {
	Status  int           // HTTP status received, 0 when none arrived
	Err     ErrorKind     // ErrNone when a response arrived
	Latency time.Duration // from sending the request to its response headers, or to the failure
}

// Health is the resilience layer's view of one endpoint (outlier detection, circuit breaker).
// Implementations must be lock-free on Available and cheap on Admit and Report: those three
// run on the request path. The others run off it: active health checks write through
// CheckResult and the admin API reads Status. They are one interface on purpose, so a policy
// that wraps or replaces another's Health values (to trace or count reports, say) must
// forward them, or fail to compile, instead of silently turning active checks, the admin
// status or pool membership off.
type Health interface {
	// Available reports, without side effects, whether the endpoint may take traffic now.
	Available() bool
	// Admit is called once for the endpoint a picker chose; false makes the picker try
	// another (a half-open breaker with no probe slot left, say). Every admitted request
	// is followed by exactly one Report.
	Admit() bool
	// Report records the outcome of an admitted request.
	Report(Outcome)

	// Key is the endpoint this Health tracks: the key its policy's NewHealth was given.
	Key() string
	// CheckResult counts one active health check of the endpoint. After unhealthyThreshold
	// failed checks in a row the endpoint fails active checks (and is unavailable outside
	// panic mode); after healthyThreshold passed ones it passes again. It reports whether
	// the endpoint fails active checks now and whether this result changed that. Checks of
	// one endpoint never overlap.
	CheckResult(passed bool, healthyThreshold, unhealthyThreshold int) (failing, changed bool)
	// Status describes the endpoint's health for the admin API.
	Status() HealthStatus
}

// HealthPolicy creates the Health of every endpoint of one pool and learns the pool's
// membership, so pool-wide rules (max ejected percent, panic threshold) count the right set.
type HealthPolicy interface {
	// NewHealth creates the Health of the endpoint key. The pool calls it once per key and
	// keeps the result across updates.
	NewHealth(key string) Health
	// SetMembers is called after every pool update with the current members' health, in
	// snapshot order: values this policy's NewHealth returned, or wrappers around them. It
	// runs off the request path.
	SetMembers(hs []Health)
}

// HealthStatus is one endpoint's resilience state as the admin API shows it.
type HealthStatus struct {
	Key string `json:"key"`
	// State is healthy, ejected (by outlier detection, until EjectedUntil), unhealthy
	// (failing active health checks) or refusing (refused a connection; set aside until
	// RefusingUntil). Refusing wins, then ejected.
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

// Picker chooses an endpoint for a request from one immutable set of members. Pick runs on
// the request path: it must not lock, block or allocate.
type Picker interface {
	// Pick returns an admitted member, its in-flight count already incremented (call
	// member.State.Done exactly once when the request ends), or ErrNoEndpoint.
	Pick(r *http.Request, ex Excluded) (*Member, error)
}

// PickerBuilder builds a Picker for each new member set; it runs off the request path.
type PickerBuilder interface {
	Build(members []Member) Picker
}

// MaxExcluded bounds how many endpoints one request can exclude (its earlier attempts).
const MaxExcluded = 8

// Excluded lists endpoints a retry must avoid. It is a value type so passing it through the
// Picker interface does not allocate; the zero value excludes nothing.
type Excluded struct {
	states [MaxExcluded]*EndpointState
	n      uint8
}

// Add excludes s; beyond MaxExcluded entries further ones are ignored.
func (e *Excluded) Add(s *EndpointState) {
	if int(e.n) < MaxExcluded {
		e.states[e.n] = s
		e.n++
	}
}

// Has reports whether s is excluded.
func (e *Excluded) Has(s *EndpointState) bool {
	for i := uint8(0); i < e.n; i++ {
		if e.states[i] == s {
			return true
		}
	}
	return false
}

// Len is the number of excluded endpoints.
func (e *Excluded) Len() int { return int(e.n) }
