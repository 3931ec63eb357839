package jwt

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// tokenSource is where a request carries its token (config `from`).
type tokenSource struct {
	kind sourceKind
	name string // header name (canonical), query parameter or cookie name
}

type sourceKind int

const (
	fromBearer sourceKind = iota // header:Authorization, "Bearer <token>"
	fromHeader                   // header:NAME, the raw value
	fromQuery                    // query:NAME
	fromCookie                   // cookie:NAME
)

// parseTokenSource reads a `from` value: header:NAME, query:NAME or cookie:NAME.
func parseTokenSource(from string) (tokenSource, error) {
	kind, name, ok := strings.Cut(from, ":")
	if !ok || name == "" {
		return tokenSource{}, fmt.Errorf("jwt: from %q: want header:NAME, query:NAME or cookie:NAME", from)
	}
	switch kind {
	case "header":
		if !httpguts.ValidHeaderFieldName(name) {
			return tokenSource{}, fmt.Errorf("jwt: from %q: %q is not a header name", from, name)
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if name == "Authorization" {
			return tokenSource{kind: fromBearer, name: name}, nil
		}
		return tokenSource{kind: fromHeader, name: name}, nil
	case "query":
		return tokenSource{kind: fromQuery, name: name}, nil
	case "cookie":
		if !httpguts.ValidHeaderFieldName(name) { // cookie names are HTTP tokens too
			return tokenSource{}, fmt.Errorf("jwt: from %q: %q is not a cookie name", from, name)
		}
		return tokenSource{kind: fromCookie, name: name}, nil
	}
	return tokenSource{}, fmt.Errorf("jwt: from %q: source %q is not header, query or cookie", from, kind)
}

// carried is how many copies of its token a request carries for one source.
type carried int

const (
	carriedNone carried = iota // no token: the mechanism is skipped
	carriedOne                 // exactly one, which is verified
	// carriedSeveral: two Authorization lines, two query parameters or two cookies of the
	// name. Refused: the gateway would verify one copy while the upstream, forwarded all
	// of them, may read another (a valid token followed by a forged one).
	carriedSeveral
)

// extract returns the request's token and how many the request carries; carriedNone also
// covers an Authorization header of another scheme, which basic auth may own. A single
// token that is present but empty is returned as "" with carriedOne.
func (src tokenSource) extract(r *http.Request) (token string, n carried) {
	var v string
	switch src.kind {
	case fromBearer:
		if v, n = onlyHeader(r.Header, src.name); n != carriedOne {
			// Several Authorization lines are refused whatever their scheme, as basic
			// auth refuses them: neither can tell which one the upstream will read.
			return "", n
		}
		scheme, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", carriedNone
		}
		return strings.Trim(rest, " \t"), carriedOne
	case fromHeader:
		v, n = onlyHeader(r.Header, src.name)
		v = strings.Trim(v, " \t")
		if n == carriedOne && v == "" {
			return "", carriedNone
		}
		return v, n
	case fromQuery:
		return queryValue(r.URL.RawQuery, src.name)
	case fromCookie:
		return cookieValue(r.Header["Cookie"], src.name)
	}
	return "", carriedNone
}

// strip removes the token from the request forwarded upstream.
func (src tokenSource) strip(r *http.Request) {
	switch src.kind {
	case fromBearer, fromHeader:
		delete(r.Header, src.name)
	case fromQuery:
		r.URL.RawQuery = withoutQueryParameter(r.URL.RawQuery, src.name)
	case fromCookie:
		lines := r.Header["Cookie"]
		kept := lines[:0:0]
		for _, line := range lines {
			if line = withoutCookie(line, src.name); line != "" {
				kept = append(kept, line)
			}
		}
		if len(kept) == 0 {
			delete(r.Header, "Cookie")
		} else {
			r.Header["Cookie"] = kept
		}
	}
}

// onlyHeader returns the value of header name when the request has exactly one line of it.
func onlyHeader(h http.Header, name string) (string, carried) {
	switch v := h[name]; len(v) {
	case 0:
		return "", carriedNone
	case 1:
		return v[0], carriedOne
	}
	return "", carriedSeveral
}

// queryValue returns the value of the parameter name in a raw query, and carriedSeveral
// when the name occurs more than once. A value that does not unescape counts as present
// and empty, so it is refused rather than ignored; an empty one as absent.
func queryValue(rawQuery, name string) (string, carried) {
	var value string
	seen, undecodable := false, false
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		key, raw, _ := strings.Cut(pair, "=")
		if !queryKeyIs(key, name) {
			continue
		}
		if seen {
			return "", carriedSeveral
		}
		seen = true
		v, err := url.QueryUnescape(raw)
		value, undecodable = v, err != nil
	}
	if !seen || value == "" && !undecodable {
		return "", carriedNone
	}
	return value, carriedOne
}

// queryKeyIs reports whether a raw query key is name once unescaped.
func queryKeyIs(rawKey, name string) bool {
	if rawKey == name {
		return true
	}
	if !strings.ContainsAny(rawKey, "%+") {
		return false
	}
	k, err := url.QueryUnescape(rawKey)
	return err == nil && k == name
}

// withoutQueryParameter drops every pair whose key is name, keeping the others in order.
func withoutQueryParameter(rawQuery, name string) string {
	var b strings.Builder
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		key, _, _ := strings.Cut(pair, "=")
		if pair == "" || queryKeyIs(key, name) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}

// cookieValue returns the cookie called name in the Cookie header lines, and
// carriedSeveral when more than one cookie has that name.
func cookieValue(lines []string, name string) (string, carried) {
	var value string
	n := carriedNone
	for _, line := range lines {
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			key, v, ok := strings.Cut(strings.Trim(part, " \t"), "=")
			if !ok || key != name {
				continue
			}
			if n != carriedNone {
				return "", carriedSeveral
			}
			// RFC 6265 allows a quoted value.
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			value, n = v, carriedOne
		}
	}
	return value, n
}

// withoutCookie drops every cookie called name from one Cookie header line.
func withoutCookie(line, name string) string {
	var b strings.Builder
	for rest := line; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, ";")
		part = strings.Trim(part, " \t")
		key, _, _ := strings.Cut(part, "=")
		if part == "" || key == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(part)
	}
	return b.String()
}
