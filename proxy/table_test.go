package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// plainRequest is a GET without headers or query, for tables whose routes have no
// conditions: only host and path decide.
var plainRequest = &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Header: http.Header{}}

func TestTableMatch(t *testing.T) {
	routes := []*Route{
		{Name: "root", Prefix: "/"},
		{Name: "api", Prefix: "/api"},
		{Name: "users", Prefix: "/api/users"},
		{Name: "deep", Prefix: "/a/b/c"},
		{Name: "host-api", Prefix: "/api", Host: "admin.example.com"},
		{Name: "host-root", Prefix: "/", Host: "shop.example.com"},
	}
	tbl := NewTable(routes, nil)
	cases := []struct {
		host, path, want string
	}{
		{"x", "/", "root"},
		{"x", "/api", "api"},
		{"x", "/api/", "api"},
		{"x", "/api/x", "api"},
		{"x", "/apix", "root"}, // segment-aware: never a partial segment
		{"x", "/api/users", "users"},
		{"x", "/api/users/7", "users"},
		{"x", "/api/users2", "api"},
		{"x", "/a/b", "root"},
		{"x", "/a/b/c/d", "deep"},
		{"admin.example.com", "/api/users", "host-api"}, // host routes first
		{"ADMIN.example.com:8080", "/api", "host-api"},  // case and port ignored
		{"admin.example.com", "/other", "root"},         // falls back to host-less routes
		{"shop.example.com", "/api", "host-root"},
		// Canonical escaped paths: an encoded slash is inside its segment.
		{"x", "/api%2Fx", "root"},
		{"x", "/api%2Fusers", "root"},
		{"x", "/api/users%2F7", "api"},
		{"x", "/api/users%2Fx/y", "api"},
		{"x", "/a/b/c%2Fd", "root"},
		// A fully qualified host (final dot) is the same host.
		{"admin.example.com.", "/api", "host-api"},
		{"admin.example.com.:8080", "/api", "host-api"},
		{"ADMIN.EXAMPLE.COM.:8080", "/api", "host-api"},
		{"admin.example.com..", "/api", "api"},
		{"admin.example.com:", "/api", "host-api"},
	}
	for _, c := range cases {
		t.Run(c.host+c.path, func(t *testing.T) {
			got := tbl.Match(plainRequest, c.host, c.path)
			if got == nil || got.Name != c.want {
				t.Fatalf("Match(%q, %q) = %v, want %s", c.host, c.path, got, c.want)
			}
		})
	}
	if r := NewTable([]*Route{{Name: "api", Prefix: "/api"}}, nil).Match(plainRequest, "x", "/other"); r != nil {
		t.Fatalf("no root route: got %s, want nil", r.Name)
	}
}

func TestTableHosts(t *testing.T) {
	routes := []*Route{
		{Name: "root", Prefix: "/"},
		{Name: "v6", Prefix: "/", Host: "::1"},
		{Name: "v6-bracketed", Prefix: "/b", Host: "[2001:DB8::1]"},
		{Name: "fqdn", Prefix: "/", Host: "fqdn.example.com."},
		{Name: "fqdn-dup", Prefix: "/", Host: "fqdn.example.com"}, // same host: first wins
	}
	tbl := NewTable(routes, nil)
	cases := []struct{ host, path, want string }{
		{"[::1]:8080", "/x", "v6"},
		{"[::1]", "/x", "v6"},
		{"[::1]junk", "/x", "root"},
		{"[::1", "/x", "root"},
		{"::1", "/x", "root"}, // not a valid Host: the last colon is taken for a port
		{"[2001:db8::1]:443", "/b/c", "v6-bracketed"},
		{"[2001:DB8::1]", "/b", "v6-bracketed"},
		{"fqdn.example.com", "/x", "fqdn"},
		{"fqdn.example.com.", "/x", "fqdn"},
		{"", "/x", "root"},
		{".", "/x", "root"},
		{":80", "/x", "root"},
	}
	for _, c := range cases {
		if got := tbl.Match(plainRequest, c.host, c.path); got == nil || got.Name != c.want {
			t.Errorf("Match(%q, %q) = %v, want %s", c.host, c.path, got, c.want)
		}
	}
	for _, h := range []string{"example.com", "example.com:8080", "[::1]:8080", "api.example.com."} {
		if n := testing.AllocsPerRun(100, func() { normalizeHost(h) }); n != 0 {
			t.Errorf("normalizeHost(%q): %v allocs, want 0", h, n)
		}
	}
}

// TestTableEscapedPrefixes checks that configured prefixes, plain paths, match the canonical
// escaped form of request paths, and that strip_prefix cuts the escaped prefix off.
func TestTableEscapedPrefixes(t *testing.T) {
	routes := []*Route{
		{Name: "root", Prefix: "/"},
		{Name: "space", Prefix: "/a b", StripPrefix: true},
		{Name: "cafe", Prefix: "/café/menu", StripPrefix: true},
		{Name: "percent", Prefix: "/100%", StripPrefix: true},
		{Name: "bang", Prefix: "/a!b", StripPrefix: true},
		{Name: "nul", Prefix: "/x\x00", StripPrefix: true},
		{Name: "keep", Prefix: "/keep me"},
	}
	tbl := NewTable(routes, nil)
	cases := []struct{ target, want, upstream string }{
		{"/a%20b/x", "space", "/x"},
		{"/a b", "space", "/"},
		{"/a b/", "space", "/"},
		{"/a+b", "root", "/a+b"},
		{"/caf%c3%a9/menu/1", "cafe", "/1"},
		{"/café/menu", "cafe", "/"},
		{"/caf%C3%A9", "root", "/caf%C3%A9"},
		{"/100%25/x%2Fy", "percent", "/x%2Fy"},
		{"/a!b/c", "bang", "/c"},
		{"/a%21b/c", "root", "/a%21b/c"}, // not the same path per RFC 3986
		{"/x", "root", "/x"},             // "/x\x00" is keyed "/x%00", which no canonical path is
		{"/keep%20me/x", "keep", "/keep%20me/x"},
	}
	for _, c := range cases {
		p, ok := canonicalPath(c.target)
		if !ok {
			t.Fatalf("canonicalPath(%q) refused", c.target)
		}
		rt := tbl.Match(plainRequest, "h", p)
		if rt == nil || rt.Name != c.want {
			t.Errorf("Match(%q) = %v, want %s", p, rt, c.want)
			continue
		}
		if got := tbl.upstreamPath(rt, p); got != c.upstream {
			t.Errorf("upstreamPath(%s, %q) = %q, want %q", rt.Name, p, got, c.upstream)
		}
	}
	if routes[1].Prefix != "/a b" {
		t.Errorf("NewTable changed a route's Prefix to %q", routes[1].Prefix)
	}
	if n := testing.AllocsPerRun(100, func() { tbl.upstreamPath(routes[2], "/caf%C3%A9/menu/1") }); n != 0 {
		t.Errorf("upstreamPath: %v allocs, want 0", n)
	}
}

// TestMatchDeepPath checks that a path much longer than any prefix costs no more than the
// table's prefixes: the candidates start at the longest prefix length.
func TestMatchDeepPath(t *testing.T) {
	tbl := NewTable(makeRoutes(100), nil)
	cases := []struct{ path, want string }{
		{"/svc5/users" + strings.Repeat("/a", 32<<10), "5"},
		{"/svc5/users/" + strings.Repeat("a", 64<<10), "5"},
		{"/svc5/usersx" + strings.Repeat("/a", 10), "root"},
		{"/svc55/users/", "55"},
		{"/svc99/users/", "99"},
		{"/svc99/user", "root"},
		{strings.Repeat("/a", 32<<10), "root"},
	}
	for _, c := range cases {
		if got := tbl.Match(plainRequest, "h", c.path); got == nil || got.Name != c.want {
			t.Errorf("Match(%.40q...) = %v, want %s", c.path, got, c.want)
		}
	}
	// No root route: a deep path under no prefix matches nothing.
	if got := NewTable([]*Route{{Name: "api", Prefix: "/api"}}, nil).Match(plainRequest, "h", strings.Repeat("/a", 100)); got != nil {
		t.Errorf("Match = %s, want nil", got.Name)
	}
}

func TestMatchAllocsAndScale(t *testing.T) {
	for _, n := range []int{10, 10000} {
		tbl := NewTable(makeRoutes(n), nil)
		allocs := testing.AllocsPerRun(1000, func() {
			if tbl.Match(plainRequest, "example.com", "/svc5/users/42/orders") == nil {
				t.Fatal("no match")
			}
		})
		if allocs != 0 {
			t.Fatalf("%d routes: %v allocs per match, want 0", n, allocs)
		}
	}
}

func makeRoutes(n int) []*Route {
	routes := make([]*Route, 0, n+1)
	routes = append(routes, &Route{Name: "root", Prefix: "/"})
	for i := 0; i < n; i++ {
		routes = append(routes, &Route{Name: fmt.Sprint(i), Prefix: fmt.Sprintf("/svc%d/users", i)})
	}
	return routes
}

// BenchmarkMatchDeepPath matches paths of 64 KiB (the default max_header_bytes), which cost
// what a short one does.
func BenchmarkMatchDeepPath(b *testing.B) {
	tbl := NewTable(makeRoutes(1000), nil)
	for name, p := range map[string]string{
		"short":    "/svc5/users/42/orders",
		"segments": "/svc5/users" + strings.Repeat("/a", 32<<10),
		"unrouted": strings.Repeat("/a", 32<<10),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tbl.Match(plainRequest, "example.com", p) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		tbl := NewTable(makeRoutes(n), nil)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tbl.Match(plainRequest, "example.com", "/svc5/users/42/orders") == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}

// TestTablePrecedence is Gateway API HTTPRoute's precedence as a table: exact host, then
// wildcard hosts (longest suffix first), then no host; in each, the longest prefix; among
// a prefix's routes, a method condition, then more headers, then more query conditions, then
// config order; a prefix whose routes all refuse the request falls through to the next
// shorter prefix, then to the next host class, then to nil.
func TestTablePrecedence(t *testing.T) {
	headers := func(lines ...string) map[string]config.ValueMatch {
		m := map[string]config.ValueMatch{}
		for i := 0; i+1 < len(lines); i += 2 {
			if lines[i+1] == "" {
				m[lines[i]] = config.ValueMatch{Present: true}
			} else {
				m[lines[i]] = config.ValueMatch{Exact: lines[i+1]}
			}
		}
		return m
	}
	route := func(name, host, prefix string, m config.Match) *Route {
		return &Route{Name: name, Host: host, Prefix: prefix, conditions: conditionsOf(m)}
	}
	routes := []*Route{
		route("root", "", "/", config.Match{}),
		route("api", "", "/api", config.Match{}),
		route("api-query", "", "/api", config.Match{Query: map[string]config.ValueMatch{"v": {Exact: "2"}}}),
		route("api-headers2", "", "/api", config.Match{Headers: headers("X-A", "1", "X-B", "")}),
		route("api-header", "", "/api", config.Match{Headers: headers("X-A", "1")}),
		route("api-method", "", "/api", config.Match{Methods: []string{"POST"}}),
		route("api-header-first", "", "/api", config.Match{Headers: headers("X-C", "1")}),
		route("api-header-second", "", "/api", config.Match{Headers: headers("X-D", "1")}),
		route("users-canary", "", "/api/users", config.Match{Headers: headers("X-Canary", "always")}),
		route("shop-canary", "shop.example.com", "/api", config.Match{Headers: headers("X-Shop", "1")}),
		route("wild-api", "*.example.com", "/api", config.Match{}),
		route("wildb-root", "*.b.example.com", "/", config.Match{}),
		route("wildb-delete", "*.B.example.com.", "/api", config.Match{Methods: []string{"DELETE"}}),
		route("exact-x", "a.b.example.com", "/x", config.Match{}),
	}
	tbl := NewTable(routes, nil)
	cases := []struct {
		method, host, target string
		headerLines          []string
		want                 string
	}{
		{"GET", "x", "/api", nil, "api"},
		{"GET", "x", "/api?v=2", nil, "api-query"},
		{"GET", "x", "/api", []string{"X-A", "1"}, "api-header"},
		{"GET", "x", "/api", []string{"X-A", "1", "X-B", ""}, "api-headers2"},    // more headers first
		{"POST", "x", "/api?v=2", []string{"X-A", "1", "X-B", ""}, "api-method"}, // a method beats headers
		{"POST", "x", "/api", nil, "api-method"},
		{"GET", "x", "/api?v=2", []string{"X-A", "1"}, "api-header"},               // a header beats a query
		{"GET", "x", "/api", []string{"X-C", "1", "X-D", "1"}, "api-header-first"}, // config order
		{"GET", "x", "/api", []string{"X-D", "1"}, "api-header-second"},
		{"GET", "x", "/api/users/1", []string{"X-Canary", "always"}, "users-canary"},
		{"GET", "x", "/api/users/1", nil, "api"}, // to the shorter prefix
		{"GET", "x", "/api/users/1", []string{"X-Canary", "never"}, "api"},
		{"GET", "x", "/api/users/1?v=2", []string{"X-Canary", "no"}, "api-query"}, // ... and its conditions
		{"GET", "x", "/other", nil, "root"},
		{"GET", "shop.example.com", "/api", []string{"X-Shop", "1"}, "shop-canary"}, // exact host
		{"GET", "shop.example.com", "/api", nil, "wild-api"},                        // to the wildcard class
		{"GET", "shop.example.com", "/other", nil, "root"},                          // to the host-less class
		{"GET", "a.b.example.com", "/x/1", nil, "exact-x"},
		{"GET", "A.B.Example.COM.:8443", "/x", nil, "exact-x"},
		{"GET", "a.b.example.com", "/api", nil, "wildb-root"}, // longest suffix before longest prefix
		{"DELETE", "a.b.example.com", "/api", nil, "wildb-delete"},
		{"DELETE", "c.a.b.example.com", "/api/v", nil, "wildb-delete"}, // several labels
		{"GET", "b.example.com", "/api", nil, "wild-api"},              // "*.b.example.com" is not b.example.com
		{"GET", "b.example.com", "/", nil, "root"},
		{"GET", "example.com", "/api", nil, "api"}, // nor is "*.example.com"
		{"GET", "x.example.com:80", "/api", nil, "wild-api"},
		{"GET", "X.EXAMPLE.COM.", "/api", nil, "wild-api"},
		{"GET", "x..example.com", "/api", nil, "api"}, // an empty label
		{"GET", ".example.com", "/api", nil, "api"},
		{"GET", "*.example.com", "/api", nil, "wild-api"}, // "*" is a label like any
		{"GET", "example.com.evil", "/api", nil, "api"},
		{"GET", "xexample.com", "/api", nil, "api"},
		{"GET", strings.Repeat("a.", 20000) + "b.example.com", "/api", nil, "wildb-root"}, // a long host
		{"GET", "[::1]:8080", "/api", nil, "api"},
		{"GET", "", "/api", nil, "api"},
	}
	for _, c := range cases {
		r := newRequest(c.method, c.target, c.headerLines...)
		path, _, _ := strings.Cut(c.target, "?")
		if got := tbl.Match(r, c.host, path); got == nil || got.Name != c.want {
			t.Errorf("%s %.40s%s %v: Match = %v, want %s", c.method, c.host, c.target, c.headerLines, routeName(got), c.want)
		}
	}

	// Nothing left to fall to: 404.
	only := NewTable([]*Route{
		route("post", "", "/api", config.Match{Methods: []string{"POST"}}),
		route("wild", "*.example.com", "/", config.Match{Headers: headers("X-A", "")}),
	}, nil)
	for _, c := range []struct{ method, host, want string }{
		{"POST", "a.example.com", "post"},
		{"GET", "a.example.com", "<nil>"},
		{"GET", "example.com", "<nil>"},
	} {
		if got := only.Match(newRequest(c.method, "/api"), c.host, "/api"); routeName(got) != c.want {
			t.Errorf("%s %s/api: Match = %s, want %s", c.method, c.host, routeName(got), c.want)
		}
	}
}

// TestMatchConditionsAllocs checks that matching through conditions and wildcards, met or
// not, allocates nothing for requests without escaped query values.
func TestMatchConditionsAllocs(t *testing.T) {
	tbl := NewTable(makeConditionalRoutes(1000), nil)
	for name, r := range map[string]*http.Request{
		"header": newRequest("GET", "/svc1/users/42?v=2", "X-Canary", "always"),
		"query":  newRequest("GET", "/svc1/users/42?beta=1&v=2"),
		"method": newRequest("DELETE", "/svc1/users/42"),
		"none":   newRequest("GET", "/svc1/users/42"),
	} {
		allocs := testing.AllocsPerRun(200, func() {
			if tbl.Match(r, "a.example.com", r.URL.Path) == nil {
				t.Fatal("no match")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per match, want 0", name, allocs)
		}
	}
	wildcards := NewTable(makeWildcardRoutes(1000), nil)
	r := newRequest("GET", "/svc/users/42")
	for host, want := range map[string]string{"a.t5.example.com": "5", "a.b.t999.example.com.:443": "999", "t5.example.com": "root"} {
		allocs := testing.AllocsPerRun(200, func() {
			if got := wildcards.Match(r, host, r.URL.Path); got == nil || got.Name != want {
				t.Fatalf("Match(%s) = %s, want %s", host, routeName(got), want)
			}
		})
		if allocs != 0 {
			t.Errorf("wildcard %s: %v allocs per match, want 0", host, allocs)
		}
	}
}

// precedenceFuzzRoutes mixes every host class, nested prefixes and conditions of each
// kind, in an order that is not precedence order.
func precedenceFuzzRoutes() []*Route {
	route := func(name, host, prefix string, m config.Match) *Route {
		return &Route{Name: name, Host: host, Prefix: prefix, conditions: conditionsOf(m)}
	}
	v := func(vm config.ValueMatch) map[string]config.ValueMatch { return map[string]config.ValueMatch{"v": vm} }
	xa := func(vm config.ValueMatch) map[string]config.ValueMatch {
		return map[string]config.ValueMatch{"X-A": vm}
	}
	return []*Route{
		route("root", "", "/", config.Match{}),
		route("api-query", "", "/api", config.Match{Query: v(config.ValueMatch{Exact: "2"})}),
		route("api-header", "", "/api", config.Match{Headers: xa(config.ValueMatch{Regex: "[0-9]+"})}),
		route("api-method", "", "/api", config.Match{Methods: []string{"GET"}}),
		route("api-both", "", "/api", config.Match{Headers: xa(config.ValueMatch{Present: true}), Query: v(config.ValueMatch{Present: true})}),
		route("v1", "", "/api/v1", config.Match{Headers: xa(config.ValueMatch{Exact: "1"})}),
		route("exact", "a.example.com", "/api", config.Match{Query: map[string]config.ValueMatch{"beta": {Present: true}}}),
		route("exact-root", "A.Example.com.", "/", config.Match{Methods: []string{"POST"}}),
		route("wild", "*.example.com", "/api/v1", config.Match{}),
		route("wild-root", "*.example.com", "/", config.Match{Headers: xa(config.ValueMatch{Exact: "w"})}),
		route("wildb", "*.b.example.com", "/api", config.Match{Methods: []string{"DELETE"}, Headers: xa(config.ValueMatch{Present: true})}),
		route("wildcom", "*.com", "/x", config.Match{}),
		route("api-query-again", "", "/api", config.Match{Query: v(config.ValueMatch{Exact: "2"})}), // after api-query: never wins
	}
}

// bruteMatchPrecedence is Table.Match's precedence written as a sort key over every route:
// host class (exact, wildcard by longer suffix, none), longer prefix, method condition, more
// headers, more query conditions, config order.
func bruteMatchPrecedence(routes []*Route, r *http.Request, host, path string) *Route {
	h := normalizeHost(host)
	var best *Route
	var bestKey []int
	for i, rt := range routes {
		class, suffixLen := 2, 0
		switch rh := routeHost(rt.Host); {
		case rt.Host == "":
		case strings.HasPrefix(rh, "*."):
			suffix := rh[1:]
			if !strings.HasSuffix(h, suffix) || len(h) == len(suffix) || h[0] == '.' || strings.Contains(h, "..") {
				continue
			}
			class, suffixLen = 1, len(suffix)
		case rh == h:
			class = 0
		default:
			continue
		}
		prefix, _ := canonicalPrefix(rt.Prefix)
		if !segmentPrefix(prefix, path) || !holdsAlone(rt.conditions, r) {
			continue
		}
		c := rt.conditions
		key := []int{class, -suffixLen, -len(prefix), -c.methodCount(), -c.headerCount(), -c.queryCount(), i}
		if best == nil || slices.Compare(key, bestKey) < 0 {
			best, bestKey = rt, key
		}
	}
	return best
}

// FuzzTableMatch checks Table.Match against bruteMatchPrecedence on any host, path, method,
// header and query.
func FuzzTableMatch(f *testing.F) {
	for _, host := range []string{"a.example.com", "A.EXAMPLE.COM.:80", "x.b.example.com", "b.example.com", "example.com", "x.com", "a..example.com", ""} {
		f.Add(uint8(0), host, "/api/v1/x", "1", "v=2&beta")
		f.Add(uint8(2), host, "/api/", "w", "v")
		f.Add(uint8(1), host, "/x/y", "", "")
	}
	routes := precedenceFuzzRoutes()
	tbl := NewTable(routes, nil)
	methods := []string{"GET", "POST", "DELETE", "PUT", "get"}
	f.Fuzz(func(t *testing.T, method uint8, host, target, headerValue, rawQuery string) {
		path, ok := canonicalPath(target)
		if !ok {
			return
		}
		r := &http.Request{Method: methods[int(method)%len(methods)], URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: http.Header{}}
		if headerValue != "" {
			r.Header["X-A"] = []string{headerValue}
		}
		got, want := tbl.Match(r, host, path), bruteMatchPrecedence(routes, r, host, path)
		if got != want {
			t.Fatalf("%s %q %q X-A=%q ?%s: Match = %s, want %s", r.Method, host, path, headerValue, rawQuery, routeName(got), routeName(want))
		}
	})
}
