package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Tests for the route model's keys (issue 16): match, split, sticky, mirror, rewrite and the
// per-route filters.

func TestRouteModelLoads(t *testing.T) {
	data, err := os.ReadFile("testdata/route_model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, string(data))
	r, plain := c.Routes[0], c.Routes[1]
	for i := range c.Routes {
		checkComplete(t, &c.Routes[i].Policy)
	}
	if r.Host != "*.example.com" || plain.Host != "*.example.com" {
		t.Errorf("hosts %q %q", r.Host, plain.Host)
	}
	wantMatch := &Match{
		Methods: []string{"GET", "HEAD"},
		Headers: map[string]ValueMatch{"X-Canary": {Exact: "always"}, "X-Beta": {Present: true}, "X-Ver": {Regex: "v[0-9]+"}},
		Query:   map[string]ValueMatch{"version": {Exact: "2"}, "debug": {Exact: "1"}},
	}
	if !reflect.DeepEqual(r.Match, wantMatch) {
		t.Errorf("match = %+v", r.Match)
	}
	wantSplit := []SplitBranch{
		{Backend: Backend{Service: "users-v2", Discovery: RegistryConsul, Tags: []string{"v2"}}, Weight: 10},
		{Backend: Backend{Service: "users", Discovery: RegistryEtcd}, Weight: 1},
		{Backend: Backend{Upstreams: []Upstream{{URL: "http://127.0.0.1:9001", Weight: 1}, {URL: "http://127.0.0.1:9002", Weight: 3}}}, Weight: 0},
	}
	if !reflect.DeepEqual(r.Split, wantSplit) {
		t.Errorf("split = %+v", r.Split)
	}
	if r.Split[2].Registry() != RegistryStatic || r.Split[0].Registry() != RegistryConsul {
		t.Errorf("branch registries %q %q", r.Split[2].Registry(), r.Split[0].Registry())
	}
	if r.PassingOnly == nil || !*r.PassingOnly {
		t.Errorf("a route with a consul branch gets passing_only true, got %v", r.PassingOnly)
	}
	if want := (&Sticky{Cookie: "sy_users", Secret: "k", TTL: time.Hour}); !reflect.DeepEqual(r.Sticky, want) {
		t.Errorf("sticky = %+v", r.Sticky)
	}
	if want := (&Mirror{Backend: Backend{Service: "users-shadow", Discovery: RegistryEtcd}, Percent: 10}); !reflect.DeepEqual(r.Mirror, want) {
		t.Errorf("mirror = %+v", r.Mirror)
	}
	if want := (&Rewrite{Prefix: "/v2", Host: "users.internal:8080"}); !reflect.DeepEqual(r.Rewrite, want) {
		t.Errorf("rewrite = %+v", r.Rewrite)
	}
	if want := (&Rewrite{Prefix: "/"}); !plain.StripPrefix || !reflect.DeepEqual(plain.Rewrite, want) {
		t.Errorf("strip_prefix: %v rewrite %+v, want the shorthand for rewrite: {prefix: /}", plain.StripPrefix, plain.Rewrite)
	}

	// The route's headers block replaces the defaults' one; response, which it leaves out,
	// comes from the defaults' block.
	wantHeaders := &HeaderRules{Enabled: ptr(true),
		Request:  &HeaderEdits{Set: map[string]string{"X-Env": "prod"}, Add: map[string]string{"X-Via": "gw"}, Remove: []string{"Cookie"}},
		Response: &HeaderEdits{Remove: []string{"Server"}}}
	if !reflect.DeepEqual(r.Headers, wantHeaders) {
		t.Errorf("headers = %+v / %+v", r.Headers.Request, r.Headers.Response)
	}
	if *r.MaxBodyBytes != 1<<20 || *plain.MaxBodyBytes != 1<<20 {
		t.Errorf("max_body_bytes %d %d", *r.MaxBodyBytes, *plain.MaxBodyBytes)
	}
	if !reflect.DeepEqual(r.IPAllow, []string{"10.0.0.0/8"}) || !reflect.DeepEqual(r.IPDeny, []string{"192.0.2.7/32", "10.1.0.0/16"}) {
		t.Errorf("ip lists %q %q", r.IPAllow, r.IPDeny)
	}
	if plain.IPAllow != nil || plain.IPDeny == nil || len(plain.IPDeny) != 0 {
		t.Errorf("plain route: ip_allow %q (want none), ip_deny %q (want cleared: [])", plain.IPAllow, plain.IPDeny)
	}
	wantCORS := &CORS{Enabled: ptr(true), AllowOrigins: []string{"https://app.example.com"}, AllowMethods: []string{"GET", "POST"},
		AllowCredentials: true, MaxAge: 10 * time.Minute}
	if !reflect.DeepEqual(r.CORS, wantCORS) {
		t.Errorf("cors = %+v", r.CORS)
	}
	if plain.CORS != nil {
		t.Errorf("defaults' cors is off, but the plain route got %+v", plain.CORS)
	}
	if want := (&Compress{Enabled: ptr(true), MinBytes: 512, Types: []string{"text/html"}}); !reflect.DeepEqual(r.Compress, want) {
		t.Errorf("compress = %+v", r.Compress)
	}
	if want := (&Compress{Enabled: ptr(true), MinBytes: 512, Types: builtinCompress.Types}); !reflect.DeepEqual(plain.Compress, want) {
		t.Errorf("inherited compress = %+v", plain.Compress)
	}
	if &plain.Compress.Types[0] == &builtinCompress.Types[0] || &plain.Compress.Types[0] == &c.Defaults.Compress.Types[0] {
		t.Error("compress types shared with the built-ins or the defaults")
	}
}

func TestFilterDefaults(t *testing.T) {
	c := mustParse(t, okRoute)
	f := c.Routes[0].Filters
	if f.MaxBodyBytes == nil || *f.MaxBodyBytes != 0 || f.Headers != nil || f.CORS != nil || f.Compress != nil || f.IPAllow != nil || f.IPDeny != nil {
		t.Errorf("filters without configuration: %+v", f)
	}
	r := c.Routes[0]
	if r.Match != nil || r.Split != nil || r.Sticky != nil || r.Mirror != nil || r.Rewrite != nil {
		t.Errorf("route model keys without configuration: %+v", r)
	}
	c = mustParse(t, "routes:\n  - {prefix: /, upstreams: [\"http://h:1\"], cors: {allow_origins: [\"*\"]}, compress: {}, headers: {}}\n")
	r = c.Routes[0]
	if want := (&CORS{Enabled: ptr(true), AllowOrigins: []string{"*"}, AllowMethods: []string{"GET", "HEAD", "POST"}}); !reflect.DeepEqual(r.CORS, want) {
		t.Errorf("cors = %+v", r.CORS)
	}
	if want := (&Compress{Enabled: ptr(true), MinBytes: 1024, Types: builtinCompress.Types}); !reflect.DeepEqual(r.Compress, want) {
		t.Errorf("compress = %+v", r.Compress)
	}
	if want := (&HeaderRules{Enabled: ptr(true)}); !reflect.DeepEqual(r.Headers, want) {
		t.Errorf("headers = %+v", r.Headers)
	}
}

func TestFilterInheritance(t *testing.T) {
	src := `defaults:
  headers: { request: { set: { X-Env: prod } }, response: { remove: [Server] } }
  max_body_bytes: 1000
  ip_allow: [10.0.0.0/8]
  ip_deny: [10.9.9.9]
  cors: { allow_origins: ["https://a.example"], max_age: 1m }
  compress: { enabled: false, min_bytes: 0 }
routes:
  - { prefix: /inherit, upstreams: ["http://h:1"] }
  - prefix: /override
    upstreams: ["http://h:1"]
    headers: { response: { set: { X-Frame-Options: DENY } } }
    max_body_bytes: 0
    ip_allow: []
    ip_deny: ["192.0.2.0/24"]
    cors: { allow_methods: [PUT] }
    compress: {}
  - prefix: /off
    upstreams: ["http://h:1"]
    headers: { enabled: false }
    cors: { enabled: false }
`
	c := mustParse(t, src)
	in, ov, off := c.Routes[0], c.Routes[1], c.Routes[2]
	if in.Headers == nil || in.Headers.Request.Set["X-Env"] != "prod" || in.Headers.Response.Remove[0] != "Server" {
		t.Errorf("inherit headers: %+v", in.Headers)
	}
	if *in.MaxBodyBytes != 1000 || !reflect.DeepEqual(in.IPAllow, []string{"10.0.0.0/8"}) || !reflect.DeepEqual(in.IPDeny, []string{"10.9.9.9/32"}) {
		t.Errorf("inherit scalars: %d %q %q", *in.MaxBodyBytes, in.IPAllow, in.IPDeny)
	}
	if in.CORS == nil || in.CORS.MaxAge != time.Minute || len(in.CORS.AllowMethods) != 3 || in.Compress != nil {
		t.Errorf("inherit blocks: cors %+v compress %+v", in.CORS, in.Compress)
	}
	// The route's headers block replaces the defaults' as a whole, but request, which it
	// does not write, comes from the defaults' block.
	if h := ov.Headers; h.Request.Set["X-Env"] != "prod" || h.Response.Set["X-Frame-Options"] != "DENY" || h.Response.Remove != nil {
		t.Errorf("override headers: %+v / %+v", h.Request, h.Response)
	}
	if *ov.MaxBodyBytes != 0 || ov.IPAllow == nil || len(ov.IPAllow) != 0 || !reflect.DeepEqual(ov.IPDeny, []string{"192.0.2.0/24"}) {
		t.Errorf("override scalars: %d %q %q", *ov.MaxBodyBytes, ov.IPAllow, ov.IPDeny)
	}
	if cr := ov.CORS; !reflect.DeepEqual(cr.AllowMethods, []string{"PUT"}) || cr.MaxAge != time.Minute || cr.AllowOrigins[0] != "https://a.example" {
		t.Errorf("override cors: %+v", cr)
	}
	// compress: {} turns on the defaults' disabled block with its values (min_bytes: 0).
	if cp := ov.Compress; cp == nil || cp.MinBytes != 0 || len(cp.Types) != len(builtinCompress.Types) {
		t.Errorf("override compress: %+v", cp)
	}
	if off.Headers != nil || off.CORS != nil {
		t.Errorf("off: headers %+v cors %+v", off.Headers, off.CORS)
	}
	// No route shares a map or list with another or with defaults.
	in.Headers.Request.Set["X-Env"] = "changed"
	in.IPAllow[0] = "changed"
	if ov.Headers.Request.Set["X-Env"] != "prod" || c.Defaults.Headers.Request.Set["X-Env"] != "prod" || c.Defaults.IPAllow[0] != "10.0.0.0/8" {
		t.Error("routes share maps or lists")
	}
}

func TestCloneBlockIsDeep(t *testing.T) {
	in := &HeaderRules{Enabled: ptr(true), Request: &HeaderEdits{Set: map[string]string{"A": "1"}, Remove: []string{"B"}}}
	out := cloneBlock(in)
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("clone differs: %+v", out)
	}
	out.Request.Set["A"] = "2"
	out.Request.Remove[0] = "C"
	*out.Enabled = false
	if in.Request.Set["A"] != "1" || in.Request.Remove[0] != "B" || !*in.Enabled {
		t.Errorf("clone shares with the original: %+v", in.Request)
	}
}

// Routes may share host and prefix when their conditions differ; identical conditions (the
// precedence tie) are an error naming both routes.
func TestSharedHostAndPrefix(t *testing.T) {
	const head = "routes:\n"
	route := func(match string) string {
		if match == "" {
			match = "{}" // no conditions, as when match is left out
		}
		return "  - prefix: /api\n    upstreams: [\"http://h:1\"]\n    match: " + match + "\n"
	}
	accepted := [][2]string{
		{"", "{methods: [GET]}"},
		{"", "{headers: {X-A: {present: true}}}"},
		{"{methods: [GET]}", "{methods: [POST]}"},
		{"{headers: {X-A: a}}", "{headers: {X-A: b}}"},
		{"{headers: {X-A: a}}", "{headers: {X-A: {regex: a}}}"},
		{"{headers: {X-A: a}}", "{query: {X-A: a}}"},
		{"{query: {v: \"1\"}}", "{query: {V: \"1\"}}"}, // query names are case-sensitive
		{"{methods: [GET], headers: {X-A: a}}", "{methods: [GET]}"},
	}
	for _, tc := range accepted {
		if c := mustParse(t, head+route(tc[0])+route(tc[1])); len(c.Routes) != 2 {
			t.Errorf("%v: %d routes", tc, len(c.Routes))
		}
	}
	tie := `routes.yaml:5: routes[1].prefix: duplicate route: same host, prefix and match conditions as routes[0] (line 2); routes may share host and prefix only with different conditions`
	var cases []errorCase
	for _, tc := range [][2]string{
		{"", ""},
		{"", "null"},
		{"{methods: [GET, POST]}", "{methods: [post, GET, GET]}"},
		{"{headers: {X-A: a}}", "{headers: {x-a: {exact: a}}}"},
		{"{headers: {X-A: {present: true}}, query: {q: {regex: \"^a\"}}}", "{query: {q: {regex: \"^a\"}}, headers: {x-A: {present: true}}}"},
	} {
		want := []string{tie}
		if strings.Contains(tc[1], "GET, GET") {
			want = []string{tie, `routes.yaml:7: routes[1].match.methods[2]: duplicate method "GET"`}
		}
		cases = append(cases, errorCase{tc[0] + " vs " + tc[1], head + route(tc[0]) + route(tc[1]), want})
	}
	checkErrors(t, cases)
}

// Merge keys work in data mappings as in schema ones, and cannot multiply work unseen: a
// chain of mappings that only merge the previous one twice is stopped by the visit bound.
func TestDataMappingMerges(t *testing.T) {
	src := `defaults:
  headers:
    request:
      set: &common { X-Env: prod, X-Team: core }
    response:
      set: { <<: *common, X-Env: dev }
` + okRoute
	c := mustParse(t, src)
	if got := c.Routes[0].Headers.Response.Set; !reflect.DeepEqual(got, map[string]string{"X-Env": "dev", "X-Team": "core"}) {
		t.Errorf("merged set = %v", got)
	}

	var b strings.Builder
	b.WriteString("defaults:\n  headers:\n    request:\n      add: &a0 {X-A: a}\n    response:\n      set:\n        <<:\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "          - &a%d {<<: [*a%d, *a%d]}\n", i, i-1, i-1)
	}
	b.WriteString(okRoute)
	start := time.Now()
	_, err := Parse("routes.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many values") {
		t.Errorf("merge chain: err = %v, want the visit bound", err)
	}
	if d := time.Since(start); d > 10*time.Second { // a generous bound against hanging, not a speed check
		t.Errorf("merge chain took %s", d)
	}
}

// Keys the route model allows in combinations that are easy to get wrong.
func TestRouteModelAccepted(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(t *testing.T, r Route)
	}{
		{"sticky without split pins the endpoint", "routes:\n  - {prefix: /a, service: s, sticky: {cookie: sy}}\n", func(t *testing.T, r Route) {
			if r.Sticky == nil || r.Sticky.Cookie != "sy" || r.Sticky.TTL != 0 {
				t.Errorf("sticky = %+v", r.Sticky)
			}
		}},
		{"mirror to static upstreams", "routes:\n  - {prefix: /a, service: s, mirror: {upstreams: [\"http://H:1/\"]}}\n", func(t *testing.T, r Route) {
			if m := r.Mirror; m.Percent != 100 || !reflect.DeepEqual(m.Upstreams, []Upstream{{URL: "http://h:1", Weight: 1}}) || m.Registry() != RegistryStatic {
				t.Errorf("mirror = %+v", m)
			}
		}},
		{"single drained-free branch", "routes:\n  - {prefix: /a, split: [{service: s}]}\n", func(t *testing.T, r Route) {
			if r.Split[0].Weight != 1 || r.Split[0].Discovery != RegistryEtcd {
				t.Errorf("split = %+v", r.Split)
			}
		}},
		{"rewrite host only keeps the path", "routes:\n  - {prefix: /a, service: s, rewrite: {host: \"[::1]:8080\"}}\n", func(t *testing.T, r Route) {
			if r.Rewrite.Prefix != "" || r.Rewrite.Host != "[::1]:8080" {
				t.Errorf("rewrite = %+v", r.Rewrite)
			}
		}},
		{"wildcard host with a port", "routes:\n  - {prefix: /a, service: s, host: \"*.Example.com:8443\"}\n", func(t *testing.T, r Route) {
			if r.Host != "*.example.com" {
				t.Errorf("host = %q", r.Host)
			}
		}},
		{"empty header value and env in values", "routes:\n  - {prefix: /a, service: s, headers: {request: {set: {X-A: \"\", X-B: \"${SY_ROUTE_MODEL:-v}\"}}}}\n", func(t *testing.T, r Route) {
			if got := r.Headers.Request.Set; got["X-A"] != "" || got["X-B"] != "v" || len(got) != 2 {
				t.Errorf("set = %v", got)
			}
		}},
		{"origins and types normalized", "routes:\n  - {prefix: /a, service: s, cors: {allow_origins: [\"HTTPS://*.Example.com:8443\", \"http://[::1]:3000\"]}, compress: {types: [\"Application/JSON\", \"text/*\"]}}\n", func(t *testing.T, r Route) {
			if !reflect.DeepEqual(r.CORS.AllowOrigins, []string{"https://*.example.com:8443", "http://[::1]:3000"}) || !reflect.DeepEqual(r.Compress.Types, []string{"application/json", "text/*"}) {
				t.Errorf("origins %q types %q", r.CORS.AllowOrigins, r.Compress.Types)
			}
		}},
		{"IPv6 lists", "routes:\n  - {prefix: /a, service: s, ip_allow: [\"2001:db8::1\", \"2001:db8::/32\", \"::ffff:192.0.2.1\"]}\n", func(t *testing.T, r Route) {
			if want := []string{"2001:db8::1/128", "2001:db8::/32", "192.0.2.1/32"}; !reflect.DeepEqual(r.IPAllow, want) {
				t.Errorf("ip_allow = %q, want %q", r.IPAllow, want)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, mustParse(t, tc.yaml).Routes[0]) })
	}
}
