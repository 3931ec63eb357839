package proxy

import (
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestQueryScannedOnce checks that Match reads a request's query at most once, however many
// routes with query conditions it tries (here 1,000 on /api, then routes on shorter
// prefixes and in other host classes), and not at all when it tries none: matching costs
// the query's length, not its length times the routes.
func TestQueryScannedOnce(t *testing.T) {
	routes := makeTenantRoutes(1000)[:1000] // without the route that has no conditions
	routes = append(routes,
		&Route{Name: "root-query", Prefix: "/", conditions: conditionsOf(config.Match{
			Query: map[string]config.ValueMatch{"other": {Present: true}}})},
		&Route{Name: "wild-query", Host: "*.example.com", Prefix: "/api", conditions: conditionsOf(config.Match{
			Query: map[string]config.ValueMatch{"tenant": {Exact: "wild"}}})},
		&Route{Name: "exact-header", Host: "a.example.com", Prefix: "/api/x", conditions: conditionsOf(config.Match{
			Headers: map[string]config.ValueMatch{"X-Canary": {Exact: "always"}}})},
		&Route{Name: "header", Prefix: "/header", conditions: conditionsOf(config.Match{
			Headers: map[string]config.ValueMatch{"X-Canary": {Exact: "always"}}})},
	)
	tbl := NewTable(routes, nil)
	cases := []struct {
		host, target string
		want         string
		scans        int
	}{
		{"a.example.com", "/api/x?tenant=t999", "t999", 1},
		{"a.example.com", "/api/x?" + hugeQuery("tenant=t999"), "t999", 1},
		{"a.example.com", "/api/x?" + hugeQuery("tenant=none"), "<nil>", 1}, // through every class
		{"a.example.com", "/api/x?tenant=wild", "wild-query", 1},
		{"a.example.com", "/api/x?other", "root-query", 1},
		{"b.example.com", "/header/1?tenant=t1", "<nil>", 1}, // the root route's condition reads it
		{"x", "/header/1?tenant=t1", "<nil>", 1},
	}
	for _, c := range cases {
		r := newRequest("GET", c.target)
		query := queryValues{names: tbl.query}
		got := tbl.match(r, c.host, r.URL.Path, &query)
		if routeName(got) != c.want || query.scans != c.scans {
			t.Errorf("%s %.60s: %s after %d scans, want %s after %d", c.host, c.target, routeName(got), query.scans, c.want, c.scans)
		}
		if got := tbl.Match(r, c.host, r.URL.Path); routeName(got) != c.want {
			t.Errorf("%s %.60s: Match = %s, want %s", c.host, c.target, routeName(got), c.want)
		}
	}
	// A request matched before any route with a query condition is tried leaves the query
	// unread, though the table has such routes (root-query).
	lazy := NewTable([]*Route{routes[1000], routes[1003]}, nil)
	for _, target := range []string{"/header/1?tenant=t1", "/header/1?other"} {
		r := newRequest("GET", target, "X-Canary", "always")
		query := queryValues{names: lazy.query}
		if got := lazy.match(r, "x", r.URL.Path, &query); routeName(got) != "header" || query.scans != 0 {
			t.Errorf("%s: %s after %d scans, want header after 0", target, routeName(got), query.scans)
		}
	}
}

// TestQueryMatchAllocs checks that a 64 KiB query through 1,000 routes with query
// conditions allocates nothing with up to linearQueryNames names, and once (the values)
// past them.
func TestQueryMatchAllocs(t *testing.T) {
	manyNames := make([]*Route, 0, 20)
	for i := range 20 {
		manyNames = append(manyNames, &Route{Name: fmt.Sprint("n", i), Prefix: "/api", conditions: conditionsOf(config.Match{
			Query: map[string]config.ValueMatch{fmt.Sprint("name", i): {Exact: "1"}}})})
	}
	for _, c := range []struct {
		name   string
		tbl    *Table
		tail   string
		want   string
		allocs float64
	}{
		{"one name", NewTable(makeTenantRoutes(1000), nil), "tenant=t999", "t999", 0},
		{"many names", NewTable(manyNames, nil), "name19=1", "n19", 1},
	} {
		r := newRequest("GET", "/api/x")
		r.URL.RawQuery = hugeQuery(c.tail)
		allocs := testing.AllocsPerRun(20, func() {
			if got := c.tbl.Match(r, "example.com", r.URL.Path); routeName(got) != c.want {
				t.Fatalf("%s: Match = %s, want %s", c.name, routeName(got), c.want)
			}
		})
		if allocs != c.allocs {
			t.Errorf("%s: %v allocs per match, want %v", c.name, allocs, c.allocs)
		}
	}
}
