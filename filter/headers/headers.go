// Package headers is the per-route header edit filter: `headers.request` edits the request
// before it is forwarded, `headers.response` edits the final response before it reaches the
// client. Each side applies remove, then set, then add (Gateway API's HTTPHeaderFilter).
//
// Everything is worked out at construction: names are canonicalized and sorted (so edits run
// in the same order on every request), and each value is a one-element slice capped at one,
// shared by every request. Sharing is safe because nothing writes a header value in place:
// setting replaces the slice, and appending to a slice of capacity one copies it. A request
// that only has headers removed or set therefore costs no allocation; adding to a field that
// is already present allocates its new value slice.
//
// Host, the framing fields (Content-Length, Transfer-Encoding) and the hop-by-hop fields are
// never edited, even if a config asks (config validation refuses them; this is defence in
// depth, since an edit there could desynchronize the gateway and a peer on where a message
// ends). Names that are not HTTP tokens and values with control characters are skipped too.
package headers

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"golang.org/x/net/http/httpguts"
)

// Filter is a route's compiled header edits; it is both a filter.RequestFilter and a
// filter.ResponseFilter. It is safe for concurrent use. A nil *Filter edits nothing.
type Filter struct {
	request  *edits // nil: the request is not edited
	response *edits // nil: the response is not edited
	// responseHook is response.apply bound once, so wrapping a response does not allocate a
	// method value per request.
	responseHook func(h http.Header, status int)
}

// edits is one side's compiled rules, applied in field order.
type edits struct {
	remove []string
	set    []field
	add    []field
}

// field is a canonical name and its shared value slice (len 1, cap 1).
type field struct {
	name  string
	value []string
}

// New compiles rules. It returns nil when rules is nil, disabled, or edits nothing, so the
// route's chain skips the filter.
func New(rules *config.HeaderRules) *Filter {
	if rules == nil || rules.Enabled != nil && !*rules.Enabled {
		return nil
	}
	f := &Filter{request: compile(rules.Request), response: compile(rules.Response)}
	if f.request == nil && f.response == nil {
		return nil
	}
	if f.response != nil {
		f.responseHook = f.response.apply
	}
	return f
}

// EditsRequest reports whether the filter changes requests; a chain builder can leave it
// out of the request filters when it does not.
func (f *Filter) EditsRequest() bool { return f != nil && f.request != nil }

// EditsResponse reports whether the filter changes responses; a chain builder can leave it
// out of the response filters when it does not.
func (f *Filter) EditsResponse() bool { return f != nil && f.response != nil }

// ServeRequest applies the request edits to r.Header; it never answers the request.
func (f *Filter) ServeRequest(_ http.ResponseWriter, r *http.Request, _ *filter.Request) bool {
	if f != nil && f.request != nil {
		f.request.apply(r.Header, 0)
	}
	return true
}

// WrapResponse applies the response edits to the final response's header map just before
// its status line is written (after the proxy copied the upstream's fields); 1xx responses
// pass untouched. Removals apply to the trailers too (when the chain finishes, after the
// proxy set them and before net/http sends them): a field removed from the header must not
// reach the client as a trailer instead.
func (f *Filter) WrapResponse(w http.ResponseWriter, _ *http.Request, _ *filter.Request) (http.ResponseWriter, func()) {
	if f == nil || f.response == nil {
		return w, nil
	}
	hooked := filter.HeaderHook(w, f.responseHook)
	if len(f.response.remove) == 0 {
		return hooked, nil
	}
	return hooked, func() { f.response.removeTrailers(w.Header()) }
}

// removeTrailers deletes the removed fields' trailer values from h, in both forms a handler
// may set them: under http.TrailerPrefix, and under a name the Trailer field announced.
func (e *edits) removeTrailers(h http.Header) {
	for _, name := range e.remove {
		delete(h, http.TrailerPrefix+name)
		delete(h, name)
	}
}

// apply edits h: remove, set, add. status is unused; it makes apply a header hook.
func (e *edits) apply(h http.Header, _ int) {
	for _, name := range e.remove {
		delete(h, name)
	}
	for _, f := range e.set {
		h[f.name] = f.value
	}
	for _, f := range e.add {
		old := h[f.name]
		if len(old) == 0 {
			h[f.name] = f.value
			continue
		}
		// A fresh slice rather than append: old may share its backing array with a slice
		// someone else holds (a parsed header block, another map), and append would write
		// into it when old has spare capacity.
		values := make([]string, len(old)+1)
		copy(values, old)
		values[len(old)] = f.value[0]
		h[f.name] = values
	}
}

// compile turns one side's config into edits; nil when it edits nothing.
func compile(c *config.HeaderEdits) *edits {
	if c == nil {
		return nil
	}
	e := &edits{}
	for _, name := range c.Remove {
		if name, ok := editable(name); ok && !slices.Contains(e.remove, name) {
			e.remove = append(e.remove, name)
		}
	}
	slices.Sort(e.remove)
	e.set = compileFields(c.Set)
	e.add = compileFields(c.Add)
	if len(e.remove) == 0 && len(e.set) == 0 && len(e.add) == 0 {
		return nil
	}
	return e
}

// compileFields turns a name -> value map into fields sorted by canonical name (then value,
// for names that differ only in case), skipping what must not be edited.
func compileFields(m map[string]string) []field {
	var out []field
	for name, value := range m {
		name, ok := editable(name)
		if !ok || !httpguts.ValidHeaderFieldValue(value) {
			continue
		}
		out = append(out, field{name: name, value: []string{value}[:1:1]})
	}
	slices.SortFunc(out, func(a, b field) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.value[0], b.value[0]))
	})
	return out
}

// editable returns name canonicalized and whether a filter may edit it.
func editable(name string) (string, bool) {
	if !httpguts.ValidHeaderFieldName(name) {
		return "", false
	}
	name = http.CanonicalHeaderKey(name)
	switch name {
	case "Host", "Content-Length", "Transfer-Encoding",
		"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Upgrade", "Http2-Settings":
		return "", false
	}
	return name, true
}
