package cors

import (
	"strings"

	"golang.org/x/net/http/httpguts"
)

// safelistedHeaders are the CORS-safelisted request header names (Fetch), always allowed.
// A browser names one in a preflight only when its value is not a safelisted one (such as
// Content-Type: application/json), which is what most APIs are sent.
var safelistedHeaders = [...]string{"accept", "accept-language", "content-language", "content-type"}

// allowedRequestHeaders returns the Access-Control-Allow-Headers value for a preflight's
// Access-Control-Request-Headers values: the requested names that are allowed, or nil when
// none is (or none was requested). ok is false when more than maxRequestedHeaders names
// were requested. When every name is allowed and came in one field line, that line is the
// answer as it is (it then holds only allowed names, commas and blanks), so the common
// preflight allocates nothing here.
func (f *Filter) allowedRequestHeaders(values []string) (allow []string, ok bool) {
	if len(values) == 0 {
		return nil, true
	}
	count, allowed := 0, 0
	for _, v := range values {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = strings.Trim(name, " \t"); name == "" {
				continue
			}
			if count++; count > maxRequestedHeaders {
				return nil, false
			}
			if f.headerAllowed(name) {
				allowed++
			}
		}
	}
	switch {
	case allowed == 0:
		return nil, true
	case allowed == count && len(values) == 1:
		return values[:1:1], true
	}
	var b strings.Builder
	for _, v := range values {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = strings.Trim(name, " \t"); name != "" && f.headerAllowed(name) {
				if b.Len() > 0 {
					b.WriteString(", ")
				}
				b.WriteString(name)
			}
		}
	}
	return []string{b.String()}, true
}

// headerAllowed reports whether a requested header name may be sent, case-insensitively.
// A name that is not a token is never allowed: it is echoed back in the answer.
func (f *Filter) headerAllowed(name string) bool {
	if !httpguts.ValidHeaderFieldName(name) {
		return false
	}
	if f.anyHeader {
		return true
	}
	for _, a := range safelistedHeaders {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	for _, a := range f.allowHeaders {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}
