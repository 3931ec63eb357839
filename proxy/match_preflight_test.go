package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/cors"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
)

// TestPreflightMatching checks that a CORS preflight reaches the route whose CORS policy
// must answer it: on a route that answers preflights, it is matched by the method it asks
// for, whatever the header and query conditions it cannot carry; other routes, and other
// OPTIONS requests, are matched as before.
func TestPreflightMatching(t *testing.T) {
	route := func(name, prefix string, m config.Match, cors bool) *Route {
		return &Route{Name: name, Prefix: prefix, conditions: newConditions(&m, cors)}
	}
	canary := map[string]config.ValueMatch{"X-Canary": {Exact: "always"}}
	tbl := NewTable([]*Route{
		route("a-methods", "/a", config.Match{Methods: []string{"GET", "POST"}}, true),
		route("b-stable", "/b", config.Match{}, false),
		route("b-canary", "/b", config.Match{Headers: canary}, true),
		route("c-stable", "/c", config.Match{}, false),
		route("c-canary", "/c", config.Match{Headers: canary}, false), // no CORS: as before
		route("d-stable", "/d", config.Match{}, false),
		route("d-put-query", "/d", config.Match{Methods: []string{"PUT"}, Query: map[string]config.ValueMatch{"v": {Exact: "2"}}}, true),
		route("e-options", "/e", config.Match{Methods: []string{"OPTIONS"}}, true),
	}, nil)
	preflight := func(method string) []string {
		return []string{"Origin", "https://app.example.com", "Access-Control-Request-Method", method}
	}
	cases := []struct {
		method, target string
		headerLines    []string
		want           string
	}{
		{"OPTIONS", "/a/x", preflight("POST"), "a-methods"},
		{"OPTIONS", "/a/x", preflight("GET"), "a-methods"},
		{"OPTIONS", "/a/x", preflight("DELETE"), "<nil>"}, // a method the route does not take
		{"OPTIONS", "/a/x", preflight("post"), "<nil>"},   // methods compare exactly
		{"OPTIONS", "/a/x", []string{"Origin", "https://app.example.com"}, "<nil>"},
		{"OPTIONS", "/a/x", []string{"Access-Control-Request-Method", "POST"}, "<nil>"},
		{"OPTIONS", "/a/x", nil, "<nil>"},
		{"GET", "/a/x", preflight("DELETE"), "a-methods"},
		{"POST", "/a/x", preflight("DELETE"), "a-methods"},
		{"DELETE", "/a/x", preflight("POST"), "<nil>"}, // only OPTIONS is a preflight
		{"OPTIONS", "/b/x", preflight("POST"), "b-canary"},
		{"OPTIONS", "/b/x", preflight("PATCH"), "b-canary"}, // no method condition: any
		{"OPTIONS", "/b/x", nil, "b-stable"},
		{"GET", "/b/x", preflight("POST"), "b-stable"},
		{"GET", "/b/x", []string{"X-Canary", "always"}, "b-canary"},
		{"OPTIONS", "/c/x", preflight("POST"), "c-stable"},
		{"OPTIONS", "/d/x", preflight("PUT"), "d-put-query"},
		{"OPTIONS", "/d/x?v=3", preflight("PUT"), "d-put-query"},
		{"OPTIONS", "/d/x", preflight("GET"), "d-stable"},
		{"PUT", "/d/x", nil, "d-stable"},
		{"PUT", "/d/x?v=2", nil, "d-put-query"},
		{"OPTIONS", "/e/x", preflight("POST"), "e-options"}, // still matched as any request
	}
	for _, c := range cases {
		r := newRequest(c.method, c.target, c.headerLines...)
		if got := tbl.Match(r, "example.com", r.URL.Path); routeName(got) != c.want {
			t.Errorf("%s %s %v: Match = %s, want %s", c.method, c.target, c.headerLines, routeName(got), c.want)
		}
	}
}

func TestAnswersPreflights(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		cors *config.CORS
		want bool
	}{
		{nil, false},
		{&config.CORS{AllowOrigins: []string{"*"}}, true},
		{&config.CORS{Enabled: &on, AllowOrigins: []string{"*"}}, true},
		{&config.CORS{Enabled: &off, AllowOrigins: []string{"*"}}, false},
	} {
		if got := answersPreflights(c.cors); got != c.want {
			t.Errorf("answersPreflights(%+v) = %v, want %v", c.cors, got, c.want)
		}
	}
}

// corsRoute compiles a route through NewRoute with a CORS policy allowing
// https://app.example.com and its filter chain (as gateway.routeFilters builds it), to one
// static backend.
func corsRoute(t *testing.T, prefix string, m *config.Match, corsConfig *config.CORS, backendAddr string) *Route {
	t.Helper()
	b, err := lb.New(config.LBRoundRobin)
	if err != nil {
		t.Fatal(err)
	}
	pool := upstream.NewPool("test", b, upstream.PoolOptions{})
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{{Key: backendAddr}}))
	rc := &config.Route{Prefix: prefix, Match: m}
	rc.Timeout = 5 * time.Second
	rc.CORS = corsConfig
	var chain *filter.Chain
	if corsConfig != nil {
		f, err := cors.New(corsConfig)
		if err != nil {
			t.Fatal(err)
		}
		chain = &filter.Chain{Request: []filter.RequestFilter{f}, Response: []filter.ResponseFilter{f}}
	}
	return NewRoute(rc, RouteOptions{Pool: pool, Filters: chain})
}

// TestPreflightRouting sends real preflights through the handler to routes with a CORS
// policy and conditions a preflight cannot meet, and sees them answered by that policy
// (204 and Access-Control-Allow-Origin), not refused (404) nor forwarded to another route.
func TestPreflightRouting(t *testing.T) {
	named := func(name string) string {
		return backend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
		})
	}
	policy := &config.CORS{AllowOrigins: []string{"https://app.example.com"}, AllowMethods: []string{"GET", "POST", "PUT"}, AllowHeaders: []string{"X-Canary"}}
	stable, canary, methods := named("stable"), named("canary"), named("methods")
	gw, _ := startGateway(t, nil,
		corsRoute(t, "/api", nil, nil, stable),
		corsRoute(t, "/api", &config.Match{Headers: map[string]config.ValueMatch{"X-Canary": {Exact: "always"}}}, policy, canary),
		corsRoute(t, "/methods", &config.Match{Methods: []string{"GET", "POST"}}, policy, methods),
	)
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	cases := []struct {
		method, target, requestMethod string
		status                        int
		allowOrigin, backend          string
	}{
		{"OPTIONS", "/methods/x", "POST", http.StatusNoContent, "https://app.example.com", ""},
		{"OPTIONS", "/methods/x", "PUT", http.StatusNotFound, "", ""}, // the route takes no PUT
		{"OPTIONS", "/api/x", "PUT", http.StatusNoContent, "https://app.example.com", ""},
		{"POST", "/methods/x", "", http.StatusOK, "https://app.example.com", "methods"},
		{"GET", "/api/x", "", http.StatusOK, "", "stable"},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, gw.URL+c.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "https://app.example.com")
		if c.requestMethod != "" {
			req.Header.Set("Access-Control-Request-Method", c.requestMethod)
			req.Header.Set("Access-Control-Request-Headers", "x-canary")
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status || res.Header.Get("Access-Control-Allow-Origin") != c.allowOrigin || res.Header.Get("X-Backend") != c.backend {
			t.Errorf("%s %s (%s): %d, Allow-Origin %q, backend %q; want %d, %q, %q", c.method, c.target, c.requestMethod,
				res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("X-Backend"), c.status, c.allowOrigin, c.backend)
		}
	}
}
