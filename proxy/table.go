package proxy

import (
	"strings"
)

// Table is an immutable route table. The handler loads it once per request through an atomic
// pointer, so a reload never changes the routes a running request sees.
type Table struct {
	byHost  map[string]*prefixes // routes with a host: lower-case host without port or final dot
	anyHost *prefixes            // routes without a host
	routes  []*Route             // every route, in config order
	trust   *Trust               // whose forwarding headers are believed
	// escaped holds the canonical prefix of each route whose plain Prefix is not its own
	// canonical form ("/a b" is matched as "/a%20b"); usually empty.
	escaped map[*Route]string
}

// prefixes maps canonical prefixes ("/", "/api", "/api/users", "/caf%C3%A9") to their
// routes.
type prefixes struct {
	routes map[string]*Route
	// maxLen is the length of the longest prefix: no longer candidate can match, so a deep
	// path costs no more lookups, nor hashing, than the table's own prefixes.
	maxLen int
}

// NewTable indexes routes. Prefixes must be cleaned (no trailing slash but "/"), hosts
// lower-case without port, and host+prefix unique (the config loader guarantees all three).
// trust (may be nil: trust nobody) decides whose X-Forwarded-* headers are kept.
//
// A route's Prefix is a plain (unescaped) path, and is matched in its canonical escaped form
// (canonicalPrefix: "/a b" is matched as "/a%20b"), the form of canonical request paths; the
// usual ASCII prefix is its own canonical form. A prefix with a control character can match
// no valid request, and so never matches. Hosts are compared without a final dot or IPv6
// brackets, as normalizeHost leaves request hosts; should two routes then share host and
// prefix, the first in config order wins. Routes are not modified.
func NewTable(routes []*Route, trust *Trust) *Table {
	t := &Table{byHost: make(map[string]*prefixes), anyHost: newPrefixes(), routes: routes, trust: trust}
	for _, r := range routes {
		prefix, _ := canonicalPrefix(r.Prefix)
		if prefix != r.Prefix {
			if t.escaped == nil {
				t.escaped = make(map[*Route]string)
			}
			t.escaped[r] = prefix
		}
		if r.Host == "" {
			t.anyHost.add(prefix, r)
			continue
		}
		h := routeHost(r.Host)
		p := t.byHost[h]
		if p == nil {
			p = newPrefixes()
			t.byHost[h] = p
		}
		p.add(prefix, r)
	}
	return t
}

func newPrefixes() *prefixes { return &prefixes{routes: make(map[string]*Route)} }

func (p *prefixes) add(prefix string, r *Route) {
	if _, dup := p.routes[prefix]; dup {
		return
	}
	p.routes[prefix] = r
	p.maxLen = max(p.maxLen, len(prefix))
}

// Routes returns every route in config order. Callers must not modify it.
func (t *Table) Routes() []*Route { return t.routes }

// Match returns the route for a request host and a canonical path (see canonicalPath), or
// nil. Routes with a host are tried first; among routes of one host the longest matching
// prefix wins, and prefixes match whole segments only: "/api" matches "/api" and "/api/x",
// never "/apix", nor "/api%2Fx" (one segment, "api%2Fx"). It costs one map lookup per
// segment of the path's first len(longest prefix) bytes whatever the number of routes, and
// allocates nothing.
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

// upstreamPath returns the path to forward for canonical path p, which Match matched to rt:
// p itself, or for a strip_prefix route what follows the route's canonical prefix, rooted
// (see stripPrefix). It allocates nothing.
func (t *Table) upstreamPath(rt *Route, p string) string {
	if !rt.StripPrefix {
		return p
	}
	prefix := rt.Prefix
	if len(t.escaped) > 0 {
		if e, ok := t.escaped[rt]; ok {
			prefix = e
		}
	}
	return stripPrefix(p, prefix)
}

func (p *prefixes) longest(path string) *Route {
	if len(p.routes) == 0 {
		return nil
	}
	// Strip a trailing slash so "/api/" tries "/api" first; "/" stays "/".
	cand := path
	if len(cand) > 1 && cand[len(cand)-1] == '/' {
		cand = cand[:len(cand)-1]
	}
	if len(cand) > p.maxLen {
		// Jump to the longest segment boundary a prefix can reach: without this a 64 KiB
		// path of "/a" segments would cost 32 Ki lookups hashing up to 64 KiB each.
		if i := strings.LastIndexByte(cand[:p.maxLen+1], '/'); i > 0 {
			cand = cand[:i]
		} else {
			cand = "/"
		}
	}
	for {
		if r, ok := p.routes[cand]; ok {
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

// normalizeHost returns a request's Host as route hosts are keyed: without port, final dot
// ("api.example.com." is the same name, fully qualified) or IPv6 brackets ("[::1]:8080" is
// "::1", as the config stores it), lower-case. It allocates only when the host has
// upper-case letters.
func normalizeHost(host string) string {
	if host != "" && host[0] == '[' {
		i := strings.IndexByte(host, ']')
		if i < 0 || i+1 < len(host) && host[i+1] != ':' {
			return host // malformed: matches no route host
		}
		return toLowerASCII(host[1:i])
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return routeHost(host)
}

// routeHost returns a host name, without port, as route hosts are keyed: lower-case, without
// a final dot or IPv6 brackets.
func routeHost(host string) string {
	if n := len(host); n > 2 && host[0] == '[' && host[n-1] == ']' {
		host = host[1 : n-1]
	}
	if n := len(host); n > 1 && host[n-1] == '.' {
		host = host[:n-1]
	}
	return toLowerASCII(host)
}

// toLowerASCII lower-cases s, allocating only when it has upper-case letters.
func toLowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
