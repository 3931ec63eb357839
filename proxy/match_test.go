package proxy

import (
	"fmt"
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

// conditionsOf compiles m as NewRoute does for a route without CORS.
func conditionsOf(m config.Match) *conditions { return newConditions(&m, false) }

// holdsAlone is c.holds(r) as a table holding only c's route checks it.
func holdsAlone(c *conditions, r *http.Request) bool {
	names, indexes := queryNamesOf(c)
	query := queryValues{names: names}
	return c.holds(r, &query, indexes)
}

// queryNamesOf returns the query names of c's conditions, as a table holding only c's
// route has them, and the index there of each condition.
func queryNamesOf(c *conditions) (*queryNames, []int) {
	names := &queryNames{}
	var indexes []int
	if c != nil {
		for _, q := range c.query {
			indexes = append(indexes, names.add(q.name))
		}
	}
	return names, indexes
}

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
		if got := holdsAlone(c, newRequest(tc.method, "/")); got != tc.want {
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
			if got := holdsAlone(c, newRequest("GET", "/", tc.lines...)); got != tc.want {
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
			if got := holdsAlone(c, r); got != tc.want {
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
	if !holdsAlone(c, all) {
		t.Fatal("all conditions met: holds = false")
	}
	names, indexes := queryNamesOf(c)
	if n := testing.AllocsPerRun(100, func() {
		query := queryValues{names: names}
		c.holds(all, &query, indexes)
	}); n != 0 {
		t.Errorf("holds: %v allocs, want 0", n)
	}
	for name, r := range map[string]*http.Request{
		"method": newRequest("GET", "/?beta&v=2", "X-Canary", "always", "X-User", "u7", "X-Trace", ""),
		"header": newRequest("POST", "/?beta&v=2", "X-Canary", "always", "X-User", "u7x", "X-Trace", ""),
		"absent": newRequest("POST", "/?beta&v=2", "X-Canary", "always", "X-User", "u7"),
		"query":  newRequest("POST", "/?beta&v=3", "X-Canary", "always", "X-User", "u7", "X-Trace", ""),
	} {
		if holdsAlone(c, r) {
			t.Errorf("%s unmet: holds = true", name)
		}
	}
	if c := conditionsOf(config.Match{}); c != nil {
		t.Errorf("an empty match compiles to %+v, want nil (no conditions)", c)
	}
	if !holdsAlone(nil, newRequest("DELETE", "/")) {
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

// firstQueryValues scans rawQuery for names, as Table.Match does, and returns each name's
// value and whether it has one.
func firstQueryValues(rawQuery string, names ...string) ([]string, []bool) {
	set := &queryNames{}
	indexes := make([]int, len(names))
	for i, name := range names {
		indexes[i] = set.add(name)
	}
	query := queryValues{names: set}
	values, found := make([]string, len(names)), make([]bool, len(names))
	for i := range names {
		values[i], found[i] = query.value(indexes[i], rawQuery)
	}
	return values, found
}

// TestQueryScanLinear checks that a huge query with many pairs is scanned, not parsed into
// a map: no allocation, whatever its size.
func TestQueryScanLinear(t *testing.T) {
	q := strings.Repeat("a=1&", 16<<10) + "version=%32"
	if v, ok := firstQueryValues(q, "version"); !ok[0] || v[0] != "%32" {
		t.Fatalf("first value = %q, %v", v[0], ok[0])
	}
	c := conditionsOf(config.Match{Query: map[string]config.ValueMatch{"version": {Exact: "2"}}})
	r := newRequest("GET", "/")
	r.URL.RawQuery = q
	names, indexes := queryNamesOf(c)
	if n := testing.AllocsPerRun(10, func() {
		query := queryValues{names: names}
		if !c.holds(r, &query, indexes) {
			t.Fatal("no match")
		}
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

// TestQueryValues checks the scan for several names at once: each gets its own first
// value, with few names (compared one by one), many (looked up in a map) and long ones
// (past the stack buffer).
func TestQueryValues(t *testing.T) {
	long := strings.Repeat("n", 100)
	many := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "a b", long}
	cases := []struct {
		name, query string
		names       []string
		want        []string // "-": no value
	}{
		{"few", "b=2&a=1&a=3&c", []string{"a", "b", "c", "d"}, []string{"1", "2", "", "-"}},
		{"escaped keys", "%61=1&b=%32&a+b=3&a%20b=4", []string{"a", "b", "a b"}, []string{"1", "%32", "3"}},
		{"skipped pairs", "a=%zz&a;=1&%zz=1&a=2&b=1;&b", []string{"a", "b"}, []string{"2", ""}},
		{"many", "j=10&a=1&a%20b=sp&" + long + "=L&i=9&zz=0", many,
			[]string{"1", "-", "-", "-", "-", "-", "-", "-", "9", "10", "sp", "L"}},
		{"long", "n=1&" + long + "x=2&" + strings.Repeat("%6E", 100) + "=3", []string{long, "n"}, []string{"3", "1"}},
		{"empty name", "=1&a=2", []string{"", "a"}, []string{"1", "2"}},
		{"repeated name", "a=1", []string{"a", "a"}, []string{"1", "1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			values, found := firstQueryValues(tc.query, tc.names...)
			for i, name := range tc.names {
				got := values[i]
				if !found[i] {
					got = "-"
				}
				if got != tc.want[i] {
					t.Errorf("%.10s: %q, want %q", name, got, tc.want[i])
				}
			}
		})
	}
}

// TestQueryValuesManyNames checks the scan past 512 names, where the names already seen are
// marked in a bitmap on the heap: only each name's first value counts.
func TestQueryValuesManyNames(t *testing.T) {
	names := make([]string, 600)
	for i := range names {
		names[i] = fmt.Sprint("p", i)
	}
	values, found := firstQueryValues("p599=a&p3=b&p599=c&p3=d&p700=x&p%30=e&p0=f", names...)
	for i := range names {
		want, wantOK := map[int]string{599: "a", 3: "b", 0: "e"}[i]
		if found[i] != wantOK || values[i] != want {
			t.Errorf("%s: %q, %v; want %q, %v", names[i], values[i], found[i], want, wantOK)
		}
	}
}

// FuzzFirstQueryValue checks the query scanner against net/url: the scan finds, for each
// name, the value url.ParseQuery lists first, with few names and with many;
// queryUnescapedEquals and unescapeQueryInto agree with url.QueryUnescape, and
// validQueryEscapes with its error.
func FuzzFirstQueryValue(f *testing.F) {
	for _, seed := range [][2]string{
		{"version=2", "version"}, {"a=%zz&a=1", "a"}, {"a=1;b=2&a=3", "a"}, {"%61=1", "a"},
		{"a+b=c+d", "a b"}, {"a=%", "a"}, {"=x&a", ""}, {"a&a=2", "a"}, {"&&&", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, rawQuery, name string) {
		if strings.Count(rawQuery, "&") >= 10000 {
			return // ParseQuery's own limit on its map: out of the comparison (see queryValues.scan)
		}
		parsed, _ := url.ParseQuery(rawQuery)
		for _, names := range [][]string{
			{name},
			{"a", name, "b", "c", "d", "e", "f", "g", "h", "i", "a b", ""},
		} {
			values, found := firstQueryValues(rawQuery, names...)
			for i, name := range names {
				want, wantOK := parsed[name]
				if found[i] != wantOK {
					t.Fatalf("%d names: %q in %q found %v, ParseQuery %v", len(names), name, rawQuery, found[i], wantOK)
				}
				if !wantOK {
					continue
				}
				got := values[i]
				decoded, err := url.QueryUnescape(got)
				if err != nil || decoded != want[0] {
					t.Fatalf("%d names: %q in %q = %q (%q, %v), ParseQuery's first %q", len(names), name, rawQuery, got, decoded, err, want[0])
				}
				if !queryUnescapedEquals(got, want[0]) || queryUnescapedEquals(got, want[0]+"x") {
					t.Fatalf("queryUnescapedEquals(%q, %q) disagrees with the decoded value", got, want[0])
				}
			}
		}
		decoded, err := url.QueryUnescape(rawQuery)
		if eq := queryUnescapedEquals(rawQuery, name); eq != (err == nil && decoded == name) {
			t.Fatalf("queryUnescapedEquals(%q, %q) = %v, QueryUnescape = %q, %v", rawQuery, name, eq, decoded, err)
		}
		if valid := validQueryEscapes(rawQuery); valid != (err == nil) {
			t.Fatalf("validQueryEscapes(%q) = %v, QueryUnescape error %v", rawQuery, valid, err)
		}
		for _, size := range []int{len(name), len(rawQuery)} {
			buffer := make([]byte, size)
			n, ok := unescapeQueryInto(buffer, rawQuery)
			if wantOK := err == nil && len(decoded) <= size; ok != wantOK || ok && string(buffer[:n]) != decoded {
				t.Fatalf("unescapeQueryInto(%d bytes, %q) = %q, %v; QueryUnescape = %q, %v", size, rawQuery, buffer[:n], ok, decoded, err)
			}
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
