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

// extract returns the request's token; present is false when the request carries none for
// this source (including an Authorization header of another scheme, which basic auth may
// own). A present but empty token is returned as "" with present true.
func (src tokenSource) extract(r *http.Request) (token string, present bool) {
	switch src.kind {
	case fromBearer:
		v := firstHeader(r.Header, src.name)
		scheme, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", false
		}
		return strings.Trim(rest, " \t"), true
	case fromHeader:
		v := strings.Trim(firstHeader(r.Header, src.name), " \t")
		return v, v != ""
	case fromQuery:
		return queryValue(r.URL.RawQuery, src.name)
	case fromCookie:
		return cookieValue(r.Header["Cookie"], src.name)
	}
	return "", false
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

func firstHeader(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// queryValue returns the first value of the parameter name in a raw query. A value that
// does not unescape counts as present and empty, so it is refused rather than ignored.
func queryValue(rawQuery, name string) (string, bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		key, value, _ := strings.Cut(pair, "=")
		if !queryKeyIs(key, name) {
			continue
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return "", true
		}
		return v, v != ""
	}
	return "", false
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

// cookieValue returns the first cookie called name in the Cookie header lines.
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			key, value, ok := strings.Cut(strings.Trim(part, " \t"), "=")
			if !ok || key != name {
				continue
			}
			// RFC 6265 allows a quoted value.
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			return value, true
		}
	}
	return "", false
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
