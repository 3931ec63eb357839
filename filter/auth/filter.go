package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/switchyard/switchyard/filter"
)

// Filter is one route's authentication: its mechanisms in order, the identity headers
// they own and their counters. It is safe for concurrent use.
type Filter struct {
	route      string
	mechanisms []mechanismState
	// identityHeaders are every mechanism's IdentityHeaders, canonical and without
	// duplicates: removed from each request before any mechanism runs.
	identityHeaders []string
	log             *slog.Logger
}

// mechanismState is a mechanism with what the filter keeps for it.
type mechanismState struct {
	Mechanism
	name       string
	identities *identityNames
	counters   *mechanismCounters
}

// maxStackDecisions is how many decisions ServeRequest keeps without allocating; a route
// has at most one mechanism of each of the four kinds.
const maxStackDecisions = 4

// New returns the filter running mechanisms, in the given order, on route. It returns nil
// when mechanisms is empty, so the route's chain skips it. m and log may be nil (nothing
// counted, nothing logged).
func New(route string, mechanisms []Mechanism, m *Metrics, log *slog.Logger) *Filter {
	if len(mechanisms) == 0 {
		return nil
	}
	f := &Filter{route: route, log: log}
	seen := make(map[string]bool)
	for _, mech := range mechanisms {
		name := mech.Name()
		f.mechanisms = append(f.mechanisms, mechanismState{
			Mechanism:  mech,
			name:       name,
			identities: &identityNames{prefix: name + ":"},
			counters:   m.newMechanismCounters(route, name),
		})
		for _, h := range mech.IdentityHeaders() {
			h = textproto.CanonicalMIMEHeaderKey(h)
			if h != "" && !seen[h] {
				seen[h] = true
				f.identityHeaders = append(f.identityHeaders, h)
			}
		}
	}
	return f
}

// ServeRequest removes client-sent identity headers, then runs the mechanisms until one
// admits. It answers the request itself (and returns false) when none does: 403 if one
// proved an identity the route does not allow, else 503 if one could not decide, else 401
// with each mechanism's challenge. The client is never told which check failed; the
// reasons go to the debug log and to the metrics.
func (f *Filter) ServeRequest(w http.ResponseWriter, r *http.Request, q *filter.Request) bool {
	if f == nil {
		return true
	}
	f.scrubIdentityHeaders(r.Header)
	if len(r.Trailer) > 0 {
		// Declared trailers travel upstream too (proxy/clientio.go), and some servers
		// merge trailers into headers: a name auth owns must not arrive that way either.
		f.scrubIdentityHeaders(r.Trailer)
	}
	debug := f.log != nil && f.log.Enabled(r.Context(), slog.LevelDebug)

	var stack [maxStackDecisions]Decision
	decisions := stack[:0]
	forbidden, unavailable := false, false
	for i := range f.mechanisms {
		m := &f.mechanisms[i]
		d := m.Authenticate(w, r, q)
		m.counters.count(d)
		if debug {
			f.logDecision(r.Context(), q, m.name, d)
		}
		switch d.Result {
		case Skipped, Invalid:
		case Admitted:
			q.Identity = ""
			if d.Identity != "" {
				q.Identity = m.identities.get(d.Identity)
			}
			return true
		case Answered:
			q.Status = d.Status
			return false
		case Forbidden:
			forbidden = true
		case Unavailable:
			unavailable = true
		default:
			// An unknown result never admits; it counts as invalid, like labelResult.
			d.Result = Invalid
		}
		decisions = append(decisions, d)
	}

	status := http.StatusUnauthorized
	switch {
	case forbidden:
		status = http.StatusForbidden
	case unavailable:
		status = http.StatusServiceUnavailable
	default:
		h := w.Header()
		for i := range f.mechanisms {
			if c := f.mechanisms[i].Challenge(decisions[i]); c != "" {
				// The canonical spelling of WWW-Authenticate, set directly so nothing
				// re-canonicalizes it.
				h["Www-Authenticate"] = append(h["Www-Authenticate"], c)
			}
		}
	}
	if debug {
		f.log.LogAttrs(r.Context(), slog.LevelDebug, "auth refused",
			slog.String("route", f.route), slog.String("request_id", q.RequestID), slog.Int("status", status))
	}
	if status == http.StatusServiceUnavailable {
		// Not the usual 503 text ("no healthy upstream"): the upstream was never asked.
		q.RefuseMessage(w, status, "authentication unavailable")
		return false
	}
	q.Refuse(w, status)
	return false
}

// logDecision writes one mechanism's decision at debug level: never the credential, only
// what the mechanism decided, why, and the identity it proved (a key name, a user, a sub).
func (f *Filter) logDecision(ctx context.Context, q *filter.Request, mechanism string, d Decision) {
	f.log.LogAttrs(ctx, slog.LevelDebug, "auth decision",
		slog.String("route", f.route),
		slog.String("request_id", q.RequestID),
		slog.String("mechanism", mechanism),
		slog.String("result", resultLabels[labelResult(d.Result)]),
		slog.String("reason", d.Reason),
		slog.String("identity", d.Identity))
}

// scrubIdentityHeaders deletes every identity header the client sent. Go's server
// canonicalizes header names, so deleting the canonical key removes every spelling of
// case; a name with '_' in place of '-' (X_User_Id) is a different header to Go but the
// same one to backends that map headers to CGI-style variables (HTTP_X_USER_ID: PHP,
// WSGI, Rack), so those spellings are removed too.
func (f *Filter) scrubIdentityHeaders(h http.Header) {
	if len(f.identityHeaders) == 0 {
		return
	}
	for _, name := range f.identityHeaders {
		delete(h, name)
	}
	for key := range h {
		if strings.IndexByte(key, '_') < 0 {
			continue
		}
		for _, name := range f.identityHeaders {
			if sameHeaderIgnoringUnderscores(key, name) {
				delete(h, key)
				break
			}
		}
	}
}

// sameHeaderIgnoringUnderscores reports whether a and b name the same header when case is
// ignored and '_' counts as '-'.
func sameHeaderIgnoringUnderscores(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := foldHeaderByte(a[i]), foldHeaderByte(b[i])
		if x != y {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// Close releases what the filter's mechanisms hold beyond a request (forward auth's idle
// connections). It is deliberately not io.Closer's Close: filter.Chain.Close must not close
// an auth filter, because the gateway keeps one across reloads while its block is unchanged
// and closes it itself once no table uses it.
func (f *Filter) Close() {
	if f == nil {
		return
	}
	for _, m := range f.mechanisms {
		if c, ok := m.Mechanism.(io.Closer); ok {
			_ = c.Close()
		}
	}
}
