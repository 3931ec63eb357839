// Package cors is the per-route CORS filter (Fetch standard, "CORS protocol"): the gateway
// answers preflights itself and owns the CORS headers of the route's responses.
//
// It is written here rather than on github.com/rs/cors because the chain's contract has two
// phases and rs/cors has one: its handler writes the CORS headers into w.Header() and then
// calls the next handler, but the proxy copies the upstream's fields into that map after the
// filters ran, appending to keys already there, so an upstream that sends its own
// Access-Control-Allow-Origin would give the client two. Here the request side only answers
// preflights, and the response side edits the final header map in a filter.HeaderHook, after
// the upstream's fields are in. rs/cors's wildcard origins also match any text between the
// prefix and suffix (an empty label, a path); here "*" stands for one or more DNS labels.
//
// Preflights (OPTIONS with Origin and Access-Control-Request-Method) are never forwarded.
// An allowed one gets 204 with Access-Control-Allow-Origin, -Allow-Methods, -Allow-Headers
// (the requested headers that are allowed), -Max-Age when set and -Allow-Credentials when
// set. A refused one (origin not allowed, method not allowed, more than maxRequestedHeaders
// requested headers) gets the gateway's JSON 403 without any of those: the browser would
// fail the preflight either way, and a 403 says in the access log and the status metrics
// that the gateway refused it, where a 204 would look like success. Both carry
// Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers.
//
// The CORS-safelisted methods (GET, HEAD, POST) are allowed in a preflight whatever
// allow_methods says, as the browser does not consult Access-Control-Allow-Methods for them,
// and the CORS-safelisted header names (Accept, Accept-Language, Content-Language,
// Content-Type) are always allowed; allow_headers: ["*"] allows any requested header.
//
// On other requests with an Origin the response's Access-Control-* fields from the upstream
// are dropped and, when the origin is allowed, the gateway's are set (Allow-Origin: the origin,
// or "*" for a "*" list without credentials; Allow-Credentials; Expose-Headers). Every
// response gets Vary: Origin, appended to the upstream's Vary (unless that already names
// Origin or is "*"). A request without Origin passes untouched but for that Vary.
//
// Origins compare as browsers serialize them: lower-case scheme and host, no default port.
// "null" matches only when listed literally; "*" does not match it.
package cors

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"golang.org/x/net/http/httpguts"
)

// maxRequestedHeaders bounds the names one preflight may ask for; browsers send a handful,
// and the bound keeps a hostile header list from costing more than a few microseconds.
const maxRequestedHeaders = 64

// Response field names, canonical so they index http.Header directly.
const (
	allowOriginField      = "Access-Control-Allow-Origin"
	allowCredentialsField = "Access-Control-Allow-Credentials"
	allowMethodsField     = "Access-Control-Allow-Methods"
	allowHeadersField     = "Access-Control-Allow-Headers"
	exposeHeadersField    = "Access-Control-Expose-Headers"
	maxAgeField           = "Access-Control-Max-Age"
	requestMethodField    = "Access-Control-Request-Method"
	requestHeadersField   = "Access-Control-Request-Headers"
)

// Shared one-element values (capacity one, so an append elsewhere copies them).
var (
	trueValue          = []string{"true"}[:1:1]
	anyOriginValue     = []string{"*"}[:1:1]
	varyOriginValue    = []string{"Origin"}[:1:1]
	varyPreflightValue = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}[:1:1]
)

// Filter is a route's compiled CORS policy; it is both a filter.RequestFilter (preflights)
// and a filter.ResponseFilter (the response's CORS headers). It is safe for concurrent use.
// A nil *Filter does nothing.
type Filter struct {
	origins      originSet
	anyGrant     *grant // for an origin list with "*"
	credentials  bool
	methods      []string // allowed in preflights besides the safelisted ones
	allowMethods []string // Access-Control-Allow-Methods value
	allowHeaders []string // lower-case names allowed in preflights
	anyHeader    bool     // allow_headers: ["*"]
	expose       []string // Access-Control-Expose-Headers value; nil: not sent
	maxAge       []string // Access-Control-Max-Age value; nil: not sent

	// Hooks bound once at construction, so wrapping a response allocates only the wrapper.
	noOriginHook func(http.Header, int) // adds Vary: Origin
	refusedHook  func(http.Header, int) // drops the upstream's CORS fields, adds Vary
}

// grant is what an allowed origin's responses get: its Allow-Origin value and the hook
// that sets it.
type grant struct {
	allowOrigin []string
	hook        func(http.Header, int)
}

// New compiles c. It returns nil, nil when c is nil or disabled, so the chain skips the
// filter, and an error naming every bad entry otherwise.
func New(c *config.CORS) (*Filter, error) {
	if c == nil || c.Enabled != nil && !*c.Enabled {
		return nil, nil
	}
	f := &Filter{credentials: c.AllowCredentials, origins: originSet{exact: map[string]*grant{}}}
	var errs []error
	if len(c.AllowOrigins) == 0 {
		errs = append(errs, errors.New("cors: allow_origins is empty"))
	}
	for _, o := range c.AllowOrigins {
		origin, err := normalizeOrigin(strings.TrimSpace(o))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("cors: allow_origins: %w", err))
		case origin == "*":
			f.origins.any = true
		case strings.Contains(origin, "*"):
			w, err := parseWildcard(origin)
			if err != nil {
				errs = append(errs, fmt.Errorf("cors: allow_origins: %w", err))
				continue
			}
			if c.AllowCredentials {
				errs = append(errs, fmt.Errorf("cors: allow_credentials cannot be used with a wildcard origin (%q): any subdomain could read credentialed responses", origin))
				continue
			}
			f.origins.wildcards = append(f.origins.wildcards, w)
		default:
			f.origins.exact[origin] = f.newGrant([]string{origin}[:1:1])
		}
	}
	if f.origins.any {
		if c.AllowCredentials {
			errs = append(errs, errors.New(`cors: allow_credentials cannot be used with the "*" origin (browsers refuse credentials with Access-Control-Allow-Origin: *)`))
		}
		f.anyGrant = f.newGrant(anyOriginValue)
	}

	methods := c.AllowMethods
	if len(methods) == 0 {
		methods = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	}
	for _, m := range methods {
		if !httpguts.ValidHeaderFieldName(m) { // a method is a token, as a field name is
			errs = append(errs, fmt.Errorf("cors: allow_methods: %q is not a method", m))
		}
	}
	f.methods = methods
	f.allowMethods = []string{strings.Join(methods, ", ")}[:1:1]

	for _, h := range c.AllowHeaders {
		switch {
		case h == "*":
			f.anyHeader = true
		case !httpguts.ValidHeaderFieldName(h):
			errs = append(errs, fmt.Errorf("cors: allow_headers: %q is not a header name", h))
		default:
			f.allowHeaders = append(f.allowHeaders, strings.ToLower(h))
		}
	}
	for _, h := range c.ExposeHeaders {
		if !httpguts.ValidHeaderFieldName(h) {
			errs = append(errs, fmt.Errorf("cors: expose_headers: %q is not a header name", h))
		}
	}
	if len(c.ExposeHeaders) > 0 {
		f.expose = []string{strings.Join(c.ExposeHeaders, ", ")}[:1:1]
	}
	if c.MaxAge > 0 {
		// Whole seconds, at least one: "0" would tell the browser not to cache at all.
		seconds := max(int64(c.MaxAge/time.Second), 1)
		f.maxAge = []string{strconv.FormatInt(seconds, 10)}[:1:1]
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f.noOriginHook = func(h http.Header, _ int) { addVaryOrigin(h) }
	f.refusedHook = func(h http.Header, _ int) {
		dropCORSFields(h)
		addVaryOrigin(h)
	}
	return f, nil
}

// newGrant binds the response hook for one Allow-Origin value.
func (f *Filter) newGrant(allowOrigin []string) *grant {
	return &grant{allowOrigin: allowOrigin, hook: func(h http.Header, _ int) { f.setCORSFields(h, allowOrigin) }}
}

// ServeRequest answers preflights (204 allowed, 403 refused) and lets every other request
// through untouched.
func (f *Filter) ServeRequest(w http.ResponseWriter, r *http.Request, q *filter.Request) bool {
	if f == nil || !isPreflight(r) {
		return true
	}
	h := w.Header()
	h["Vary"] = varyPreflightValue
	allowOrigin := f.allowOriginValue(r.Header["Origin"])
	method := r.Header[requestMethodField]
	if allowOrigin == nil || len(method) != 1 || !f.methodAllowed(method[0]) {
		q.Refuse(w, http.StatusForbidden)
		return false
	}
	allowHeaders, ok := f.allowedRequestHeaders(r.Header[requestHeadersField])
	if !ok {
		q.Refuse(w, http.StatusForbidden)
		return false
	}
	h[allowOriginField] = allowOrigin
	h[allowMethodsField] = f.allowMethods
	if allowHeaders != nil {
		h[allowHeadersField] = allowHeaders
	}
	if f.maxAge != nil {
		h[maxAgeField] = f.maxAge
	}
	if f.credentials {
		h[allowCredentialsField] = trueValue
	}
	q.Status = http.StatusNoContent
	w.WriteHeader(http.StatusNoContent)
	return false
}

// WrapResponse sets the response's CORS fields just before its status line is written.
func (f *Filter) WrapResponse(w http.ResponseWriter, r *http.Request, _ *filter.Request) (http.ResponseWriter, func()) {
	if f == nil || isPreflight(r) {
		// ServeRequest answered it; were the writer wrapped first, its hook must not strip
		// the answer's own CORS fields.
		return w, nil
	}
	origins := r.Header["Origin"]
	if len(origins) == 0 {
		return filter.HeaderHook(w, f.noOriginHook), nil
	}
	if len(origins) == 1 {
		if g := f.lookup(origins[0]); g != nil {
			return filter.HeaderHook(w, g.hook), nil
		}
		if f.origins.matchWildcard(origins[0]) {
			allowOrigin := []string{origins[0]}
			return filter.HeaderHook(w, func(h http.Header, _ int) { f.setCORSFields(h, allowOrigin) }), nil
		}
	}
	return filter.HeaderHook(w, f.refusedHook), nil
}

// lookup returns the precomputed grant for origin: "*" or an exact entry; nil when origin is
// allowed only by a wildcard entry, or not at all.
func (f *Filter) lookup(origin string) *grant {
	if g := f.origins.exact[origin]; g != nil {
		return g
	}
	if f.anyGrant != nil && origin != "null" && origin != "" {
		return f.anyGrant
	}
	return nil
}

// matchWildcard reports whether a wildcard entry allows origin.
func (s *originSet) matchWildcard(origin string) bool {
	for i := range s.wildcards {
		if s.wildcards[i].match(origin) {
			return true
		}
	}
	return false
}

// allowOriginValue returns the Access-Control-Allow-Origin value for a request's Origin values,
// or nil when they are not exactly one allowed origin.
func (f *Filter) allowOriginValue(origins []string) []string {
	if len(origins) != 1 {
		return nil
	}
	if g := f.lookup(origins[0]); g != nil {
		return g.allowOrigin
	}
	if f.origins.matchWildcard(origins[0]) {
		return []string{origins[0]}
	}
	return nil
}

// methodAllowed compares case-sensitively, as the browser compares Allow-Methods.
func (f *Filter) methodAllowed(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		return true
	}
	for _, m := range f.methods {
		if m == method {
			return true
		}
	}
	return false
}

// setCORSFields makes the gateway's CORS fields the response's only ones.
func (f *Filter) setCORSFields(h http.Header, allowOrigin []string) {
	dropCORSFields(h)
	h[allowOriginField] = allowOrigin
	if f.credentials {
		h[allowCredentialsField] = trueValue
	}
	if f.expose != nil {
		h[exposeHeadersField] = f.expose
	}
	addVaryOrigin(h)
}

// dropCORSFields deletes every Access-Control-* field: on this route the gateway alone
// decides what a browser may read, so an upstream cannot widen (or garble) it.
func dropCORSFields(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
}

// addVaryOrigin appends Origin to the response's Vary unless it already varies on Origin
// or on everything. The upstream's values are copied, never appended to in place.
func addVaryOrigin(h http.Header) {
	vary := h["Vary"]
	if len(vary) == 0 {
		h["Vary"] = varyOriginValue
		return
	}
	for _, v := range vary {
		for v != "" {
			var token string
			token, v, _ = strings.Cut(v, ",")
			token = strings.Trim(token, " \t")
			if token == "*" || strings.EqualFold(token, "Origin") {
				return
			}
		}
	}
	values := make([]string, len(vary)+1)
	copy(values, vary)
	values[len(vary)] = "Origin"
	h["Vary"] = values
}

// isPreflight reports whether r is a CORS preflight: OPTIONS with Origin and
// Access-Control-Request-Method.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && len(r.Header["Origin"]) > 0 && len(r.Header[requestMethodField]) > 0
}
