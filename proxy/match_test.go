package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
)

// conditionsOf compiles m as NewRoute does.
func conditionsOf(m config.Match) *conditions { return newConditions(&m) }

// newRequest makes a request for target with header lines given as name, value pairs, in
// order (a repeated name adds a field line).
func newRequest(method, target string, headerLines ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(headerLines); i += 2 {
		r.Header.Add(headerLines[i], headerLines[i+1])
	}
	return r
}

func TestConditionsMethods(t *testing.T) {
	c := conditionsOf(config.Match{Methods: []string{"GET", "HEAD"}})
	cases := []struct {
		method string
		want   bool
	}{
		{"GET", true},
		{"HEAD", true},
		{"POST", false},
		{"get", false}, // methods are case-sensitive (RFC 9110 9.1)
		{"GETX", false},
	}
	for _, tc := range cases {
		if got := c.holds(newRequest(tc.method, "/")); got != tc.want {
			t.Errorf("%s: holds = %v, want %v", tc.method, got, tc.want)
		}
	}
}

func TestConditionsHeaders(t *testing.T) {
	exact := func(v string) config.ValueMatch { return config.ValueMatch{Exact: v} }
	present := config.ValueMatch{Present: true}
	regex := func(re string) config.ValueMatch { return config.ValueMatch{Regex: re} }
	cases := []struct {
		name  string
		cond  config.ValueMatch
		lines []string // request header lines, name then value
		want  bool
	}{
		{"exact", exact("always"), []string{"X-Canary", "always"}, true},
		{"exact is case-sensitive", exact("always"), []string{"X-Canary", "Always"}, false},
		{"name case-insensitive", exact("always"), []string{"x-CANARY", "always"}, true},
		{"absent", exact("always"), nil, false},
		{"other header", exact("always"), []string{"X-Canary-2", "always"}, false},
		{"first of several lines", exact("a"), []string{"X-Canary", "a", "X-Canary", "b"}, true},
		{"not the second line", exact("b"), []string{"X-Canary", "a", "X-Canary", "b"}, false},
		{"one line, a list", exact("a"), []string{"X-Canary", "a, b"}, false},
		{"empty value, exact empty", exact(""), []string{"X-Canary", ""}, true},
		{"absent, exact empty", exact(""), nil, false},
		{"empty value, exact other", exact("a"), []string{"X-Canary", ""}, false},
		{"present", present, []string{"X-Canary", "x"}, true},
		{"present, empty value", present, []string{"X-Canary", ""}, true},
		{"present, absent", present, nil, false},
		{"regex whole value", regex("v[0-9]"), []string{"X-Canary", "v1"}, true},
		{"regex anchored at end", regex("v[0-9]"), []string{"X-Canary", "v10"}, false},
		{"regex anchored at start", regex("v[0-9]"), []string{"X-Canary", "xv1"}, false},
		{"regex alternation anchored", regex("a|b"), []string{"X-Canary", "ab"}, false},
		{"regex alternation", regex("a|b"), []string{"X-Canary", "b"}, true},
		{"regex flags stay inside", regex("(?i)ABC"), []string{"X-Canary", "abc"}, true},
		{"regex on the first line", regex("b"), []string{"X-Canary", "a", "X-Canary", "b"}, false},
		{"regex empty value", regex(".*"), []string{"X-Canary", ""}, true},
		{"regex needs a value", regex(".+"), []string{"X-Canary", ""}, false},
		{"regex absent", regex(".*"), nil, false},
		// Validation refuses these; should one reach the proxy it matches nothing, and the
		// wrapper does not turn it into another pattern.
		{"broken regex", regex("a)|(b"), []string{"X-Canary", "a"}, false},
		{"broken regex, other side", regex("a)|(b"), []string{"X-Canary", "b"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := conditionsOf(config.Match{Headers: map[string]config.ValueMatch{"x-canary": tc.cond}})
			if got := c.holds(newRequest("GET", "/", tc.lines...)); got != tc.want {
				t.Errorf("holds = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConditionsQuery(t *testing.T) {
	exact := func(v string) config.ValueMatch { return config.ValueMatch{Exact: v} }
	present := config.ValueMatch{Present: true}
	regex := func(re string) config.ValueMatch { return config.ValueMatch{Regex: re} }
	cases := []struct {
		name  string
		cond  config.ValueMatch
		query string
		want  bool
	}{
		{"exact", exact("2"), "version=2", true},
		{"exact among others", exact("2"), "a=1&version=2&b=3", true},
		{"other value", exact("2"), "version=3", false},
		{"absent", exact("2"), "a=2", false},
		{"no query", present, "", false},
		{"name case-sensitive", exact("2"), "Version=2", false},
		{"percent-encoded value", exact("2"), "version=%32", true},
		{"percent-encoded name", exact("2"), "ver%73ion=2", true},
		{"plus is a space", exact("a b"), "version=a+b", true},
		{"encoded plus", exact("a+b"), "version=a%2Bb", true},
		{"raw plus is not a plus", exact("a+b"), "version=a+b", false},
		{"non-UTF-8 byte", exact("\xe9"), "version=%e9", true},
		{"repeated: the first", exact("1"), "version=1&version=2", true},
		{"repeated: not the second", exact("2"), "version=1&version=2", false},
		{"empty value", exact(""), "version=", true},
		{"no equals sign", exact(""), "version", true},
		{"empty value is present", present, "version=", true},
		{"present", present, "version=x", true},
		{"empty pairs skipped", exact("2"), "&&version=2&", true},
		{"malformed value", exact("%zz"), "version=%zz", false},
		{"malformed value absent", present, "version=%zz", false},
		{"malformed pair skipped", exact("1"), "version=%zz&version=1", true},
		{"truncated escape", present, "version=%4", false},
		{"trailing percent", present, "version=%", false},
		{"malformed name", present, "versio%6=1", false},
		{"semicolon pair skipped", present, "version=1;x=2", false},
		{"semicolon pair skipped, next counts", exact("2"), "version=1;x&version=2", true},
		{"equals in value", exact("a=b"), "version=a=b", true},
		{"regex", regex("[0-9]+"), "version=42", true},
		{"regex anchored", regex("[0-9]+"), "version=42a", false},
		{"regex on decoded value", regex("a b"), "version=a%20b", true},
		{"regex on plus", regex("a b"), "version=a+b", true},
		{"regex on first", regex("2"), "version=1&version=2", false},
		{"broken regex", regex("a)|(b"), "version=a", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := conditionsOf(config.Match{Query: map[string]config.ValueMatch{"version": tc.cond}})
			r := newRequest("GET", "/")
			r.URL.RawQuery = tc.query
			if got := c.holds(r); got != tc.want {
				t.Errorf("holds(?%s) = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}

// TestConditionsAll checks that every condition must hold, and that none allocates for a
// request without escapes.
func TestConditionsAll(t *testing.T) {
	c := conditionsOf(config.Match{
		Methods: []string{"POST"},
		Headers: map[string]config.ValueMatch{"X-Canary": {Exact: "always"}, "X-User": {Regex: "u[0-9]+"}, "X-Trace": {Present: true}},
		Query:   map[string]config.ValueMatch{"v": {Exact: "2"}, "beta": {Present: true}},
	})
	all := newRequest("POST", "/?beta&v=2", "X-Canary", "always", "X-User", "u7", "X-Trace", "")
	if !c.holds(all) {
		t.Fatal("all conditions met: holds = false")
	}
	if n := testing.AllocsPerRun(100, func() { c.holds(all) }); n != 0 {
		t.Errorf("holds: %v allocs, want 0", n)
	}
	for name, r := range map[string]*http.Request{
		"method": newRequest("GET", "/?beta&v=2", "X-Canary", "always", "X-User", "u7", "X-Trace", ""),
		"header": newRequest("POST", "/?beta&v=2", "X-Canary", "always", "X-User", "u7x", "X-Trace", ""),
		"absent": newRequest("POST", "/?beta&v=2", "X-Canary", "always", "X-User", "u7"),
		"query":  newRequest("POST", "/?beta&v=3", "X-Canary", "always", "X-User", "u7", "X-Trace", ""),
	} {
		if c.holds(r) {
			t.Errorf("%s unmet: holds = true", name)
		}
	}
	if c := conditionsOf(config.Match{}); c != nil {
		t.Errorf("an empty match compiles to %+v, want nil (no conditions)", c)
	}
	if !(*conditions)(nil).holds(newRequest("DELETE", "/")) {
		t.Error("no conditions: holds = false")
	}
}

// TestConditionsOrder checks that conditions are tried cheapest first (exact, present,
// regex), then by name, whatever order the config map gave.
func TestConditionsOrder(t *testing.T) {
	c := conditionsOf(config.Match{Headers: map[string]config.ValueMatch{
		"x-r": {Regex: "."}, "x-b": {Exact: "1"}, "x-p": {Present: true}, "x-a": {Exact: "1"},
	}})
	var names []string
	for _, h := range c.headers {
		names = append(names, h.name)
	}
	if want := []string{"X-A", "X-B", "X-P", "X-R"}; !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}

func TestComparePrecedence(t *testing.T) {
	method := conditionsOf(config.Match{Methods: []string{"GET", "POST"}})
	headers2 := conditionsOf(config.Match{Headers: map[string]config.ValueMatch{"a": {}, "b": {}}})
	headers1Query2 := conditionsOf(config.Match{Headers: map[string]config.ValueMatch{"a": {}}, Query: map[string]config.ValueMatch{"a": {}, "b": {}}})
	headers1Query3 := conditionsOf(config.Match{Headers: map[string]config.ValueMatch{"a": {}}, Query: map[string]config.ValueMatch{"a": {}, "b": {}, "c": {}}})
	query9 := conditionsOf(config.Match{Query: map[string]config.ValueMatch{"1": {}, "2": {}, "3": {}, "4": {}, "5": {}, "6": {}, "7": {}, "8": {}, "9": {}}})
	oneMethod := conditionsOf(config.Match{Methods: []string{"GET"}})
	// Most specific first.
	ordered := []*conditions{method, headers2, headers1Query3, headers1Query2, query9, nil}
	for i := range ordered {
		for j := range ordered {
			got := comparePrecedence(ordered[i], ordered[j])
			if want := sign(i - j); sign(got) != want {
				t.Errorf("compare(#%d, #%d) = %d, want sign %d", i, j, got, want)
			}
		}
	}
	if got := comparePrecedence(method, oneMethod); got != 0 {
		t.Errorf("two methods vs one: %d, want 0 (the number of methods is no specificity)", got)
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// TestQueryScanLinear checks that a huge query with many pairs is scanned, not parsed into
// a map: no allocation, whatever its size.
func TestQueryScanLinear(t *testing.T) {
	q := strings.Repeat("a=1&", 16<<10) + "version=%32"
	if v, ok := firstQueryValue(q, "version"); !ok || v != "%32" {
		t.Fatalf("firstQueryValue = %q, %v", v, ok)
	}
	c := conditionsOf(config.Match{Query: map[string]config.ValueMatch{"version": {Exact: "2"}}})
	r := newRequest("GET", "/")
	r.URL.RawQuery = q
	if n := testing.AllocsPerRun(10, func() {
		if !c.holds(r) {
			t.Fatal("no match")
		}
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

// FuzzFirstQueryValue checks the query scanner against net/url: firstQueryValue finds the
// value url.ParseQuery lists first for the name, queryUnescapedEquals agrees with
// url.QueryUnescape, and validQueryEscapes with its error.
func FuzzFirstQueryValue(f *testing.F) {
	for _, seed := range [][2]string{
		{"version=2", "version"}, {"a=%zz&a=1", "a"}, {"a=1;b=2&a=3", "a"}, {"%61=1", "a"},
		{"a+b=c+d", "a b"}, {"a=%", "a"}, {"=x&a", ""}, {"a&a=2", "a"}, {"&&&", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, rawQuery, name string) {
		if strings.Count(rawQuery, "&") >= 10000 {
			return // ParseQuery's own limit on its map: out of the comparison (see firstQueryValue)
		}
		values, _ := url.ParseQuery(rawQuery)
		want, wantOK := values[name]
		got, ok := firstQueryValue(rawQuery, name)
		if ok != wantOK {
			t.Fatalf("firstQueryValue(%q, %q) found %v, ParseQuery %v", rawQuery, name, ok, wantOK)
		}
		if ok {
			decoded, err := url.QueryUnescape(got)
			if err != nil || decoded != want[0] {
				t.Fatalf("firstQueryValue(%q, %q) = %q (%q, %v), ParseQuery's first %q", rawQuery, name, got, decoded, err, want[0])
			}
			if !queryUnescapedEquals(got, want[0]) || queryUnescapedEquals(got, want[0]+"x") {
				t.Fatalf("queryUnescapedEquals(%q, %q) disagrees with the decoded value", got, want[0])
			}
		}
		decoded, err := url.QueryUnescape(rawQuery)
		if eq := queryUnescapedEquals(rawQuery, name); eq != (err == nil && decoded == name) {
			t.Fatalf("queryUnescapedEquals(%q, %q) = %v, QueryUnescape = %q, %v", rawQuery, name, eq, decoded, err)
		}
		if valid := validQueryEscapes(rawQuery); valid != (err == nil) {
			t.Fatalf("validQueryEscapes(%q) = %v, QueryUnescape error %v", rawQuery, valid, err)
		}
	})
}

// conditionalRoute compiles a route with conditions through NewRoute, as the gateway does,
// to one static backend.
func conditionalRoute(t *testing.T, host, prefix string, m *config.Match, backendAddr string) *Route {
	t.Helper()
	b, err := lb.New(config.LBRoundRobin)
	if err != nil {
		t.Fatal(err)
	}
	pool := upstream.NewPool("test", b, upstream.PoolOptions{})
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{{Key: backendAddr}}))
	rc := &config.Route{Prefix: prefix, Host: host, Match: m}
	rc.Timeout = 5 * time.Second
	return NewRoute(rc, RouteOptions{Pool: pool})
}

// TestCanaryRouting sends real requests through the handler on a loopback listener to real
// backends, and sees them routed by header, method, query and wildcard host, with the
// precedence of Table.Match.
func TestCanaryRouting(t *testing.T) {
	named := func(name string) string {
		return backend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			w.Write([]byte(r.URL.RequestURI()))
		})
	}
	stable, byHeader, byMethod, byQuery, tenants := named("stable"), named("header"), named("method"), named("query"), named("tenants")
	gw, _ := startGateway(t, nil,
		conditionalRoute(t, "", "/api", nil, stable),
		conditionalRoute(t, "", "/api", &config.Match{Headers: map[string]config.ValueMatch{"X-Canary": {Exact: "always"}}}, byHeader),
		conditionalRoute(t, "", "/api", &config.Match{Methods: []string{"DELETE"}}, byMethod),
		conditionalRoute(t, "", "/api", &config.Match{Query: map[string]config.ValueMatch{"version": {Exact: "2"}}}, byQuery),
		conditionalRoute(t, "*.example.com", "/api", nil, tenants),
	)
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	cases := []struct {
		method, host, target string
		headerLines          []string
		status               int
		backend              string
	}{
		{"GET", "", "/api/x", nil, 200, "stable"},
		{"GET", "", "/api/x", []string{"X-Canary", "always"}, 200, "header"},
		{"GET", "", "/api/x", []string{"x-canary", "always"}, 200, "header"},
		{"GET", "", "/api/x", []string{"X-Canary", "ALWAYS"}, 200, "stable"},
		{"POST", "", "/api/x", []string{"X-Canary", "always"}, 200, "header"},
		{"DELETE", "", "/api/x", nil, 200, "method"},
		{"DELETE", "", "/api/x?version=2", []string{"X-Canary", "always"}, 200, "method"},
		{"GET", "", "/api/x?version=%32", nil, 200, "query"},
		{"GET", "", "/api/x?version=2&version=1", nil, 200, "query"},
		{"GET", "", "/api/x?version=1&version=2", nil, 200, "stable"},
		{"GET", "", "/api/x?version=%zz&version=2", nil, 200, "query"},
		{"GET", "", "/api/x?version=2", []string{"X-Canary", "always"}, 200, "header"},
		{"GET", "tenant.example.com", "/api/x", []string{"X-Canary", "always"}, 200, "tenants"},
		{"GET", "example.com", "/api/x", nil, 200, "stable"},
		{"GET", "", "/other", nil, 404, ""},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, gw.URL+c.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = c.host
		for i := 0; i+1 < len(c.headerLines); i += 2 {
			req.Header[c.headerLines[i]] = append(req.Header[c.headerLines[i]], c.headerLines[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || res.Header.Get("X-Backend") != c.backend {
			t.Errorf("%s %s%s %v: %d from %q, want %d from %q", c.method, c.host, c.target, c.headerLines, res.StatusCode, res.Header.Get("X-Backend"), c.status, c.backend)
		}
		if c.status == 200 && string(body) != c.target {
			t.Errorf("%s %s: backend saw %q", c.method, c.target, body)
		}
	}
}
