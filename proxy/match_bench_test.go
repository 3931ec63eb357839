package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// makeConditionalRoutes returns a root route and n routes, four per prefix /svcN/users: a
// header canary (X-Canary: always), a query canary (v=2 and beta present), a DELETE route
// and one without conditions.
func makeConditionalRoutes(n int) []*Route {
	routes := []*Route{{Name: "root", Prefix: "/"}}
	for i := 0; len(routes) <= n; i++ {
		prefix := fmt.Sprintf("/svc%d/users", i)
		routes = append(routes,
			&Route{Name: fmt.Sprint(i, "-canary"), Prefix: prefix, conditions: conditionsOf(config.Match{
				Headers: map[string]config.ValueMatch{"X-Canary": {Exact: "always"}}})},
			&Route{Name: fmt.Sprint(i, "-query"), Prefix: prefix, conditions: conditionsOf(config.Match{
				Query: map[string]config.ValueMatch{"v": {Exact: "2"}, "beta": {Present: true}}})},
			&Route{Name: fmt.Sprint(i, "-delete"), Prefix: prefix, conditions: conditionsOf(config.Match{
				Methods: []string{"DELETE"}})},
			&Route{Name: fmt.Sprint(i), Prefix: prefix},
		)
	}
	return routes[:n+1]
}

// makeWildcardRoutes returns a root route and n wildcard routes, "*.tN.example.com" with
// prefix /svc/users.
func makeWildcardRoutes(n int) []*Route {
	routes := []*Route{{Name: "root", Prefix: "/"}}
	for i := 0; i < n; i++ {
		routes = append(routes, &Route{Name: fmt.Sprint(i), Prefix: "/svc/users", Host: fmt.Sprintf("*.t%d.example.com", i)})
	}
	return routes
}

// BenchmarkMatchConditions is Table.Match at 10, 1,000 and 10,000 routes, in one run: with
// no conditions (the figures of BenchmarkMatch), through a prefix whose routes have
// conditions (the header canary met; the query canary met, tried after the header one;
// none met, the route without conditions), and on wildcard hosts.
func BenchmarkMatchConditions(b *testing.B) {
	cases := []struct {
		name   string
		routes func(int) []*Route
		host   string
		req    *http.Request
		want   string
	}{
		{"none", makeRoutes, "example.com", newRequest("GET", "/svc1/users/42/orders"), "1"},
		{"header", makeConditionalRoutes, "example.com", newRequest("GET", "/svc1/users/42/orders", "X-Canary", "always"), "1-canary"},
		{"query", makeConditionalRoutes, "example.com", newRequest("GET", "/svc1/users/42/orders?id=7&beta&v=2"), "1-query"},
		{"unmet", makeConditionalRoutes, "example.com", newRequest("GET", "/svc1/users/42/orders?v=3", "X-Canary", "never"), "1"},
		{"wildcard", makeWildcardRoutes, "a.t1.example.com", newRequest("GET", "/svc/users/42/orders"), "1"},
	}
	for _, c := range cases {
		for _, n := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/routes=%d", c.name, n), func(b *testing.B) {
				tbl := NewTable(c.routes(n), nil)
				b.ReportAllocs()
				for b.Loop() {
					if rt := tbl.Match(c.req, c.host, c.req.URL.Path); rt == nil || rt.Name != c.want {
						b.Fatalf("Match = %s, want %s", routeName(rt), c.want)
					}
				}
			})
		}
	}
}

// makeTenantRoutes returns n routes on the one prefix /api, route i holding for query
// tenant=t<i>, then a route without conditions: every request reaching /api tries them all
// until one holds.
func makeTenantRoutes(n int) []*Route {
	routes := make([]*Route, 0, n+1)
	for i := 0; i < n; i++ {
		routes = append(routes, &Route{Name: fmt.Sprint("t", i), Prefix: "/api", conditions: conditionsOf(config.Match{
			Query: map[string]config.ValueMatch{"tenant": {Exact: fmt.Sprint("t", i)}}})})
	}
	return append(routes, &Route{Name: "api", Prefix: "/api"})
}

// makeNamedQueryRoutes returns n routes on the one prefix /api, route i holding for query
// p<i>=1: a table with n query names.
func makeNamedQueryRoutes(n int) []*Route {
	routes := make([]*Route, 0, n)
	for i := 0; i < n; i++ {
		routes = append(routes, &Route{Name: fmt.Sprint("p", i), Prefix: "/api", conditions: conditionsOf(config.Match{
			Query: map[string]config.ValueMatch{fmt.Sprint("p", i): {Exact: "1"}}})})
	}
	return routes
}

// namesQuery is a 64 KiB query naming every one of makeNamedQueryRoutes(n)'s parameters,
// over and over, with value 0, but the last with 1.
func namesQuery(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "p%d=0&", i%(n-1))
	}
	fmt.Fprintf(&b, "p%d=1", n-1)
	return b.String()
}

// hugeQuery is a 64 KiB query (the default max_header_bytes) of filler pairs ending in
// tail.
func hugeQuery(tail string) string {
	return strings.Repeat("filler=1&", (64<<10-len(tail))/len("filler=1&")) + tail
}

// BenchmarkMatchQueryRoutes is Table.Match through n routes of one prefix with a query
// condition each, on a 64 KiB query naming the last route's tenant (so every route is
// tried), on one naming none, and through n routes with a parameter name each, on a 64 KiB
// query naming them all: the query must be scanned once per request, not once per
// route.
func BenchmarkMatchQueryRoutes(b *testing.B) {
	for _, n := range []int{10, 1000} {
		tbl := NewTable(makeTenantRoutes(n), nil)
		names := NewTable(makeNamedQueryRoutes(n), nil)
		for _, c := range []struct {
			name, query, want string
			tbl               *Table
		}{
			{"last", hugeQuery(fmt.Sprint("tenant=t", n-1)), fmt.Sprint("t", n-1), tbl},
			{"unmet", hugeQuery("tenant=none"), "api", tbl},
			{"names", namesQuery(n), fmt.Sprint("p", n-1), names},
		} {
			r := newRequest("GET", "/api/x")
			r.URL.RawQuery = c.query
			b.Run(fmt.Sprintf("%s/routes=%d", c.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if rt := c.tbl.Match(r, "example.com", r.URL.Path); rt == nil || rt.Name != c.want {
						b.Fatalf("Match = %s, want %s", routeName(rt), c.want)
					}
				}
			})
		}
	}
}
