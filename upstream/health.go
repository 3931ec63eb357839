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
	Status  int       // HTTP status received, 0 when none arrived
	Err     ErrorKind // ErrNone when a response arrived
	Latency time.Duration
}

// Health is the resilience layer's view of one endpoint (outlier detection, circuit breaker).
// Implementations must be lock-free on Available and cheap on Admit and Report: all three run
// on the request path.
type Health interface {
	// Available reports, without side effects, whether the endpoint may take traffic now.
	Available() bool
	// Admit is called once for the endpoint a picker chose; false makes the picker try
	// another (a half-open breaker with no probe slot left, say). Every admitted request
	// is followed by exactly one Report.
	Admit() bool
	// Report records the outcome of an admitted request.
	Report(Outcome)
}

// HealthPolicy creates the Health of every endpoint of one pool and learns the pool's
// membership, so pool-wide rules (max ejected percent, panic threshold) count the right set.
type HealthPolicy interface {
	NewHealth(key string) Health
	// SetMembers is called after every pool update with the current members' health, in
	// snapshot order. It runs off the request path.
	SetMembers(hs []Health)
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
