package proxy

import (
	"path"
	"strings"
)

// Table is an immutable route table. The handler loads it once per request through an atomic
// pointer, so a reload never changes the routes a running request sees.
type Table struct {
	byHost  map[string]prefixes // routes with a host: lower-case host without port
	anyHost prefixes            // routes without a host
	routes  []*Route            // every route, in config order
	trust   *Trust              // whose forwarding headers are believed
}

// prefixes maps a cleaned prefix ("/", "/api", "/api/users") to its route.
type prefixes map[string]*Route

// NewTable indexes routes. Prefixes must be cleaned (no trailing slash but "/"), hosts
// lower-case without port, and host+prefix unique (the config loader guarantees all three).
// trust (may be nil: trust nobody) decides whose X-Forwarded-* headers are kept.
func NewTable(routes []*Route, trust *Trust) *Table {
	t := &Table{byHost: make(map[string]prefixes), anyHost: make(prefixes), routes: routes, trust: trust}
	for _, r := range routes {
		if r.Host == "" {
			t.anyHost[r.Prefix] = r
			continue
		}
		p := t.byHost[r.Host]
		if p == nil {
			p = make(prefixes)
			t.byHost[r.Host] = p
		}
		p[r.Prefix] = r
	}
	return t
}

// Routes returns every route in config order. Callers must not modify it.
func (t *Table) Routes() []*Route { return t.routes }

// Match returns the route for a request host and a cleaned path, or nil. Routes with a host
// are tried first; among routes of one host the longest matching prefix wins, and prefixes
// match whole segments only: "/api" matches "/api" and "/api/x", never "/apix". It costs one
// map lookup per path segment whatever the number of routes, and allocates nothing.
func (t *Table) Match(host, path string) *Route {
	if len(t.byHost) > 0 {
		if p, ok := t.byHost[normalizeHost(host)]; ok {
			if r := p.longest(path); r != nil {
				return r
			}
		}
	}
	return t.anyHost.longest(path)
}

func (p prefixes) longest(path string) *Route {
	if len(p) == 0 {
		return nil
	}
	// Strip a trailing slash so "/api/" tries "/api" first; "/" stays "/".
	cand := path
	if len(cand) > 1 && cand[len(cand)-1] == '/' {
		cand = cand[:len(cand)-1]
	}
	for {
		if r, ok := p[cand]; ok {
			return r
		}
		i := strings.LastIndexByte(cand, '/')
		switch {
		case i > 0:
			cand = cand[:i]
		case i == 0 && cand != "/":
			cand = "/"
		default:
			return nil
		}
	}
}

// normalizeHost strips the port and lower-cases host, allocating only when the host has
// upper-case letters.
func normalizeHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// cleanPath returns the canonical form of p: rooted, with "." and ".." segments resolved and
// repeated slashes merged, keeping a trailing slash (net/http's ServeMux rule). Already-clean
// paths are returned without allocating.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if isClean(p) {
		return p
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// isClean reports whether p is rooted and has no empty, "." or ".." segment (a trailing
// slash is allowed); the common case, checked without allocating.
func isClean(p string) bool {
	if p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		if rest == "" {
			return true // trailing slash
		}
		if rest[0] == '/' {
			return false
		}
		if rest[0] == '.' && (len(rest) == 1 || rest[1] == '/' ||
			(rest[1] == '.' && (len(rest) == 2 || rest[2] == '/'))) {
			return false
		}
	}
	return true
}

// TEMPORARY until path.go lands.
func canonicalPath(p string) (string, bool)    { return cleanPath(p), true }
func hasEncodedSlash(string) bool              { return false }
func forwardURLPath(p string) (string, string) { return p, "" }
