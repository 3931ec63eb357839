package proxy

import (
	"net/http"
	"slices"
	"strings"
)

// Table is an immutable route table. The handler loads it once per request through an atomic
// pointer, so a reload never changes the routes a running request sees.
type Table struct {
	byHost map[string]*prefixes // routes with an exact host: lower-case, without port or final dot
	// wildcards holds the routes of "*.example.com" keyed by their suffix ".example.com";
	// wildcardMaxLen is the longest key, so a long request host costs no more lookups than
	// the configured suffixes can use.
	wildcards      map[string]*prefixes
	wildcardMaxLen int
	anyHost        *prefixes // routes without a host
	routes         []*Route  // every route, in config order
	trust          *Trust    // whose forwarding headers are believed
	// escaped holds the canonical prefix of each route whose plain Prefix is not its own
	// canonical form ("/a b" is matched as "/a%20b"); usually empty.
	escaped map[*Route]string
	// query holds the parameter names of every route's query conditions, so a request's
	// query is scanned once for all of them (see queryValues); nil when there are none.
	query *queryNames
}

// prefixes maps canonical prefixes ("/", "/api", "/api/users", "/caf%C3%A9") to the routes
// of one host class that share the prefix.
type prefixes struct {
	// routes holds each prefix's first route in precedence order (see comparePrecedence).
	// One pointer per prefix, as when routes had no conditions, so a table without them
	// keeps that small, cache-friendly map; when the first route has conditions, all of the
	// prefix's routes, in precedence order, are in alternatives under that first route.
	routes       map[string]*Route
	alternatives map[*Route]*candidates
	// maxLen is the length of the longest prefix: no longer candidate can match, so a deep
	// path costs no more lookups, nor hashing, than the table's own prefixes.
	maxLen int
	// building holds every prefix's routes in config order while NewTable runs.
	building map[string][]*Route
}

// candidates are the routes of one prefix, in precedence order, when the first has
// conditions.
type candidates struct {
	routes []*Route
	// queryIndexes[i] holds, for each of routes[i]'s query conditions in order, the index
	// of its name in the table's queryNames; nil for a route without query conditions.
	queryIndexes [][]int
}

// NewTable indexes routes. Prefixes must be cleaned (no trailing slash but "/"), and hosts
// lower-case without port, either exact names or "*." and a suffix (one leading wildcard
// label); the config loader guarantees both. trust (may be nil: trust nobody) decides whose
// X-Forwarded-* headers are kept.
//
// A route's Prefix is a plain (unescaped) path, and is matched in its canonical escaped form
// (canonicalPrefix: "/a b" is matched as "/a%20b"), the form of canonical request paths; the
// usual ASCII prefix is its own canonical form. A prefix with a control character can match
// no valid request, and so never matches. Hosts are compared without a final dot or IPv6
// brackets, as normalizeHost leaves request hosts. Routes sharing host and prefix are tried
// in precedence order (a method condition, then more header conditions, then more query
// conditions), then config order; so of two such routes without conditions the first in
// config order wins. Routes are not modified.
func NewTable(routes []*Route, trust *Trust) *Table {
	t := &Table{byHost: make(map[string]*prefixes), anyHost: newPrefixes(), routes: routes, trust: trust}
	for _, r := range routes {
		if r.conditions != nil {
			for _, c := range r.conditions.query {
				if t.query == nil {
					t.query = &queryNames{}
				}
				t.query.add(c.name)
			}
		}
		prefix, _ := canonicalPrefix(r.Prefix)
		if prefix != r.Prefix {
			if t.escaped == nil {
				t.escaped = make(map[*Route]string)
			}
			t.escaped[r] = prefix
		}
		t.hostClass(r.Host).add(prefix, r)
	}
	t.anyHost.finish(t.query)
	for _, p := range t.byHost {
		p.finish(t.query)
	}
	for _, p := range t.wildcards {
		p.finish(t.query)
	}
	return t
}

// hostClass returns the prefixes of the routes with host, made on first use.
func (t *Table) hostClass(host string) *prefixes {
	if host == "" {
		return t.anyHost
	}
	h := routeHost(host)
	byHost := t.byHost
	if strings.HasPrefix(h, "*.") {
		if t.wildcards == nil {
			t.wildcards = make(map[string]*prefixes)
		}
		h, byHost = h[1:], t.wildcards // keyed ".example.com", as matchWildcards looks up
		t.wildcardMaxLen = max(t.wildcardMaxLen, len(h))
	}
	p := byHost[h]
	if p == nil {
		p = newPrefixes()
		byHost[h] = p
	}
	return p
}

func newPrefixes() *prefixes {
	return &prefixes{routes: make(map[string]*Route), building: make(map[string][]*Route)}
}

func (p *prefixes) add(prefix string, r *Route) {
	p.building[prefix] = append(p.building[prefix], r)
	p.maxLen = max(p.maxLen, len(prefix))
}

// finish puts the routes of each prefix in precedence order, keeping config order among
// equals, and indexes them for longest; query holds the table's query names (nil: none).
func (p *prefixes) finish(query *queryNames) {
	for prefix, routes := range p.building {
		slices.SortStableFunc(routes, func(a, b *Route) int { return comparePrecedence(a.conditions, b.conditions) })
		p.routes[prefix] = routes[0]
		if routes[0].conditions == nil {
			continue
		}
		if p.alternatives == nil {
			p.alternatives = make(map[*Route]*candidates)
		}
		c := &candidates{routes: routes, queryIndexes: make([][]int, len(routes))}
		for i, r := range routes {
			if r.conditions == nil || len(r.conditions.query) == 0 {
				continue
			}
			c.queryIndexes[i] = make([]int, len(r.conditions.query))
			for k, condition := range r.conditions.query {
				c.queryIndexes[i][k] = query.lookup(condition.name)
			}
		}
		p.alternatives[routes[0]] = c
	}
	p.building = nil
}

// Routes returns every route in config order. Callers must not modify it.
func (t *Table) Routes() []*Route { return t.routes }

// Match returns the route for request r, whose host and canonical path (see canonicalPath)
// are given, or nil. Precedence is Gateway API HTTPRoute's: routes with the exact host, then
// wildcard routes ("*.example.com" matches "a.example.com" and "a.b.example.com", never
// "example.com"), longest suffix first, then routes without a host. Within each of those
// the longest matching prefix wins, and prefixes match whole segments only: "/api" matches
// "/api" and "/api/x", never "/apix", nor "/api%2Fx" (one segment, "api%2Fx"). Among routes
// with that prefix the first in precedence order whose conditions r meets wins; if none
// does, the next shorter prefix is tried, then the next host class. A CORS preflight meets
// the conditions of a route with CORS on when the method it asks for meets the route's
// methods condition, whatever its header and query conditions (see conditions.holds).
//
// Without conditions it costs one map lookup per segment of the path's first len(longest
// prefix) bytes whatever the number of routes, plus one per label of the host's last
// len(longest wildcard suffix) bytes when there are wildcard routes, and allocates nothing;
// conditions are checked only on the routes of prefixes the path reaches. The query is
// scanned at most once per call, however many routes with query conditions are tried, and
// only when one is: the cost is linear in the query's length, not in its length times the
// routes.
func (t *Table) Match(r *http.Request, host, path string) *Route {
	if t.query == nil {
		return t.match(r, host, path, nil)
	}
	query := queryValues{names: t.query}
	return t.match(r, host, path, &query)
}

// match is Match with the request's query values for the table's names (nil when the table
// has no query conditions), scanned on first use.
func (t *Table) match(r *http.Request, host, path string, query *queryValues) *Route {
	if len(t.byHost) > 0 || len(t.wildcards) > 0 {
		h := normalizeHost(host)
		if p, ok := t.byHost[h]; ok {
			if rt := p.longest(r, path, query); rt != nil {
				return rt
			}
		}
		if len(t.wildcards) > 0 {
			if rt := t.matchWildcards(r, h, path, query); rt != nil {
				return rt
			}
		}
	}
	return t.anyHost.longest(r, path, query)
}

// matchWildcards tries the wildcard routes whose suffix ends host (normalized), longest
// suffix first: "a.b.example.com" looks up ".b.example.com", then ".example.com", then
// ".com", skipping suffixes longer than any configured one. A host with an empty label
// ("a..example.com", ".example.com") is no DNS name and matches no wildcard.
func (t *Table) matchWildcards(r *http.Request, host, path string, query *queryValues) *Route {
	if host == "" || host[0] == '.' || strings.Contains(host, "..") {
		return nil
	}
	// The wildcard label is not empty, so a suffix starts at index 1 or later.
	from := max(1, len(host)-t.wildcardMaxLen)
	for from < len(host) {
		i := strings.IndexByte(host[from:], '.')
		if i < 0 {
			return nil
		}
		suffix := host[from+i:]
		if p, ok := t.wildcards[suffix]; ok {
			if rt := p.longest(r, path, query); rt != nil {
				return rt
			}
		}
		from += i + 1
	}
	return nil
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

// longest returns the first route, in precedence order, of the longest prefix of path
// whose conditions r meets, or nil. query is as for Table.match.
func (p *prefixes) longest(r *http.Request, path string, query *queryValues) *Route {
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
		if first, ok := p.routes[cand]; ok {
			if first.conditions == nil {
				return first // routes without conditions sort last: the only candidate
			}
			if rt := p.firstHolding(r, first, query); rt != nil {
				return rt
			}
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

// firstHolding returns the first route, in precedence order, of the prefix whose first route
// is first, that r meets the conditions of; or nil.
func (p *prefixes) firstHolding(r *http.Request, first *Route, query *queryValues) *Route {
	c := p.alternatives[first]
	for i, rt := range c.routes {
		if rt.conditions == nil || rt.conditions.holds(r, query, c.queryIndexes[i]) {
			return rt
		}
	}
	return nil
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
