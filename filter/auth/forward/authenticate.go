package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
	"golang.org/x/net/http/httpguts"
)

// The fields every subrequest carries besides the configured ones.
const (
	headerMethod    = "X-Forwarded-Method"
	headerProto     = "X-Forwarded-Proto"
	headerHost      = "X-Forwarded-Host"
	headerURI       = "X-Forwarded-Uri"
	headerFor       = "X-Forwarded-For"
	headerRequestID = "X-Request-Id"
)

// noUserAgent is set when User-Agent is not a configured request header: present and empty,
// net/http sends no User-Agent instead of its own. Shared read-only by every subrequest.
var noUserAgent = []string{""}

// Authenticate asks the auth service about r; see the package doc for what each answer
// means. It edits r only when it admits, and writes to w only when it returns Answered.
func (m *Mechanism) Authenticate(w http.ResponseWriter, r *http.Request, q *filter.Request) auth.Decision {
	ctx, cancel := context.WithTimeout(r.Context(), m.timeout)
	defer cancel()
	defer m.releaseIfClosed()
	sub := m.template.WithContext(ctx)
	sub.Header = m.subrequestHeader(r, q)
	res, err := m.transport.RoundTrip(sub)
	if err != nil {
		return m.logCause(r, q, failure(ctx, r.Context()), err)
	}
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		d, cause := m.admit(r, res)
		// Read to the end so the connection goes back to the pool; net/http puts it there
		// before the read returns, so releaseIfClosed sees it.
		if res.ContentLength != 0 { // NoBody needs no read (nor CopyN's LimitReader)
			_, _ = io.CopyN(io.Discard, res.Body, drainLimit+1)
		}
		_ = res.Body.Close()
		return m.logCause(r, q, d, cause)
	}
	d, cause := m.relay(ctx, r.Context(), w, res, q)
	return m.logCause(r, q, d, cause)
}

// releaseIfClosed closes the idle connections once the mechanism is closed. A request still
// running when a reload closed its route's mechanism returns its connection to the pool
// after Close emptied it; this takes it out again, so nothing idles for IdleConnTimeout.
func (m *Mechanism) releaseIfClosed() {
	if m.closed.Load() {
		m.transport.CloseIdleConnections()
	}
}

// subrequestHeader builds the subrequest's fields. Client value slices are shared, not
// copied: the transport only reads them.
func (m *Mechanism) subrequestHeader(r *http.Request, q *filter.Request) http.Header {
	h := make(http.Header, len(m.requestHeaders)+7)
	for _, name := range m.requestHeaders {
		if vv := r.Header[name]; len(vv) > 0 && validValues(vv) {
			h[name] = vv
		}
	}
	if !m.sendsUserAgent {
		h["User-Agent"] = noUserAgent
	}
	// One array backs the six values: one allocation instead of six.
	values := new([6]string)
	set := func(i int, name, value string) {
		if value != "" && httpguts.ValidHeaderFieldValue(value) {
			values[i] = value
			h[name] = values[i : i+1 : i+1]
		}
	}
	set(0, headerMethod, r.Method)
	if r.TLS != nil {
		set(1, headerProto, "https")
	} else {
		set(1, headerProto, "http")
	}
	set(2, headerHost, r.Host)
	set(3, headerURI, requestURI(r, q))
	if q != nil {
		set(4, headerFor, q.ClientIP)
		set(5, headerRequestID, q.RequestID)
	}
	return h
}

// requestURI is the path the gateway routes and forwards (q.Path: dot-segments resolved,
// still escaped) with the query as the client sent it. Never the raw request target: an
// auth service that allows "/public/*" must not be shown "/public/%2e%2e/admin" for a
// request the upstream receives as "/admin". Without q.Path (a request built outside the
// proxy) it is the request line's target in origin form, else the parsed URL's.
func requestURI(r *http.Request, q *filter.Request) string {
	if q != nil && q.Path != "" {
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			return q.Path + "?" + r.URL.RawQuery
		}
		return q.Path
	}
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// admit applies a 2xx answer to r: the response_headers replace the client's, and the
// identity header names who was admitted. A bad identity or value fails closed without
// touching r, with the cause.
func (m *Mechanism) admit(r *http.Request, res *http.Response) (auth.Decision, error) {
	bad := auth.Decision{Result: auth.Unavailable, Reason: reasonUnavailable}
	identity := ""
	if m.identityHeader != "" {
		switch vv := res.Header[m.identityHeader]; {
		case len(vv) > 1:
			return bad, errSeveralIdentities
		case len(vv) == 1 && len(vv[0]) > MaxIdentityLength:
			return bad, errLongIdentity
		case len(vv) == 1:
			identity = vv[0]
		}
	}
	for _, name := range m.responseHeaders {
		if !validValues(res.Header[name]) {
			return bad, errInvalidValue
		}
	}
	if r.Header == nil && len(m.responseHeaders) > 0 {
		r.Header = make(http.Header, len(m.responseHeaders)) // a request built in code
	}
	for _, name := range m.responseHeaders {
		if vv := res.Header[name]; len(vv) > 0 {
			r.Header[name] = vv
		} else {
			delete(r.Header, name)
		}
	}
	return auth.Decision{Result: auth.Admitted, Identity: identity, Reason: reasonOK}, nil
}

// failure classifies an exchange that ended in an error: the client gone, the subrequest's
// timeout, or anything else the auth service or the network did.
func failure(ctx, parent context.Context) auth.Decision {
	d := auth.Decision{Result: auth.Unavailable, Reason: reasonUnavailable}
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		d.Reason = reasonCanceled
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		d.Reason = reasonTimeout
	}
	return d
}

// validValues reports whether every value is a valid field value (no control characters
// but tab), which net/http would otherwise refuse to send.
func validValues(vv []string) bool {
	for _, v := range vv {
		if !httpguts.ValidHeaderFieldValue(v) {
			return false
		}
	}
	return true
}
