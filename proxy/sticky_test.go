package proxy

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// stickyValueOf is the cookie value that pins the endpoint key of branch b.
func stickyValueOf(s *sticky, b int, key string) string {
	idx := s.index(b)
	for i := range idx.view.Members {
		if m := &idx.view.Members[i]; m.Key == key {
			return idx.byState[m.State].value
		}
	}
	return ""
}

// setCookie returns the response's cookie named name, or nil.
func setCookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// stickyFixture is a gateway with one sticky route over a pool of named backends.
type stickyFixture struct {
	url   string
	c     *http.Client
	pool  *upstream.Pool
	addrs map[string]string // backend name -> host:port
}

func newStickyFixture(t *testing.T, names ...string) *stickyFixture {
	f := &stickyFixture{addrs: map[string]string{}}
	var keys []string
	for _, n := range names {
		f.addrs[n] = namedBackend(t, n)
		keys = append(keys, f.addrs[n])
	}
	f.pool = poolOf(t, "sticky", nil, keys...)
	rt := trafficRoute(t, &config.Route{Prefix: "/app", Sticky: &config.Sticky{Cookie: "sy", TTL: time.Minute}},
		RouteOptions{Pool: f.pool})
	srv, _ := startGateway(t, nil, rt)
	f.url, f.c = srv.URL+"/app/x", srv.Client()
	return f
}

func (f *stickyFixture) keys(names ...string) []string {
	var keys []string
	for _, n := range names {
		keys = append(keys, f.addrs[n])
	}
	return keys
}

func TestStickyPinsEndpoint(t *testing.T) {
	f := newStickyFixture(t, "a", "b", "c")
	status, first, res := fetchWith(t, f.c, f.url)
	ck := setCookie(res, "sy")
	if status != 200 || ck == nil {
		t.Fatalf("first answer %d %q, cookie %v: want 200 and a sticky cookie", status, first, ck)
	}
	if ck.Path != "/app" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge != 60 || ck.Secure {
		t.Errorf("cookie attributes %+v", ck)
	}
	for i := range 100 {
		_, body, res := fetchWith(t, f.c, f.url, ck)
		if body != first {
			t.Fatalf("request %d went to %q, pinned to %q", i, body, first)
		}
		if again := setCookie(res, "sy"); again != nil {
			t.Fatalf("request %d: cookie set again (%v) though it did not change", i, again)
		}
	}

	// A registry update that keeps the endpoint (others come and go, order changes) keeps
	// the pin.
	others := []string{"a", "b", "c"}
	keep := f.keys(first)
	for _, n := range others {
		if n != first {
			keep = append([]string{f.addrs[n]}, keep...)
			break
		}
	}
	setEndpoints(f.pool, keep...)
	for i := range 20 {
		if _, body, _ := fetchWith(t, f.c, f.url, ck); body != first {
			t.Fatalf("after update, request %d went to %q, pinned to %q", i, body, first)
		}
	}

	// The endpoint leaves: the client moves and gets a new cookie that pins the new one.
	var rest []string
	for _, n := range others {
		if n != first {
			rest = append(rest, n)
		}
	}
	setEndpoints(f.pool, f.keys(rest...)...)
	_, moved, res := fetchWith(t, f.c, f.url, ck)
	next := setCookie(res, "sy")
	if moved == first || next == nil || next.Value == ck.Value {
		t.Fatalf("after its endpoint left: answered by %q, cookie %v (old %q)", moved, next, ck.Value)
	}
	for i := range 20 {
		if _, body, _ := fetchWith(t, f.c, f.url, next); body != moved {
			t.Fatalf("request %d with the new cookie went to %q, want %q", i, body, moved)
		}
	}
}

// TestStickyIgnoresForgedCookies: values that are not one this route issued are ignored:
// normal balancing, and a fresh cookie.
func TestStickyIgnoresForgedCookies(t *testing.T) {
	f := newStickyFixture(t, "a", "b")
	_, _, res := fetchWith(t, f.c, f.url)
	valid := setCookie(res, "sy").Value
	raw, err := base64.RawURLEncoding.DecodeString(valid)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	otherRoute := newSticky(&config.Sticky{Cookie: "sy"}, "", "/other", []Branch{{Pool: f.pool, Weight: 1}})
	foreign := otherRoute.index(0).byState[f.pool.View().Members[0].State].value

	for _, tc := range []struct{ name, value string }{
		{"garbage", "garbage"},
		{"empty", ""},
		{"right length, not base64", strings.Repeat("!", stickyValueLen)},
		{"random bytes", base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdefghijklmn"))},
		{"tampered MAC", base64.RawURLEncoding.EncodeToString(flipped)},
		{"another route's value", foreign},
		{"too long", valid + "AA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for range 4 {
				status, body, res := fetchWith(t, f.c, f.url, &http.Cookie{Name: "sy", Value: tc.value})
				if status != 200 {
					t.Fatalf("status %d", status)
				}
				if ck := setCookie(res, "sy"); ck == nil || ck.Value == tc.value {
					t.Fatalf("forged value kept: new cookie %v", ck)
				}
				seen[body] = true
			}
			if len(seen) != 2 {
				t.Fatalf("forged cookie pinned the client: answers %v", seen)
			}
		})
	}
}

// TestStickyRetryMovesCookie: when the pinned endpoint fails and a retry answers elsewhere,
// the cookie names the endpoint that answered.
func TestStickyRetryMovesCookie(t *testing.T) {
	failing := backend(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	good := namedBackend(t, "good")
	pool := poolOf(t, "p", nil, failing, good)
	rt := trafficRoute(t, &config.Route{Prefix: "/", Sticky: &config.Sticky{Cookie: "sy"}}, RouteOptions{Pool: pool})
	pinFailing := stickyValueOf(rt.sticky, 0, failing)
	srv, _ := startGateway(t, nil, rt)
	status, body, res := fetchWith(t, srv.Client(), srv.URL+"/", &http.Cookie{Name: "sy", Value: pinFailing})
	ck := setCookie(res, "sy")
	want := stickyValueOf(rt.sticky, 0, good)
	if status != 200 || body != "good" || ck == nil || ck.Value != want {
		t.Fatalf("got %d %q cookie %v, want 200 from good with its cookie", status, body, ck)
	}
}

// TestStickySplit: the cookie pins the branch and the endpoint; when the endpoint left, the
// client stays in its branch.
func TestStickySplit(t *testing.T) {
	a := poolOf(t, "a", nil, namedBackend(t, "a1"), namedBackend(t, "a2"))
	bKeys := []string{namedBackend(t, "b1"), namedBackend(t, "b2"), namedBackend(t, "b3")}
	b := poolOf(t, "b", nil, bKeys...)
	rt := trafficRoute(t, &config.Route{Prefix: "/s", Sticky: &config.Sticky{Cookie: "sy", Secret: "s3cret"}},
		RouteOptions{Branches: []Branch{{Pool: a, Weight: 1}, {Pool: b, Weight: 1}}})
	srv, _ := startGateway(t, nil, rt)
	url := srv.URL + "/s/"
	var bCookie *http.Cookie
	var bFirst string
	for client := range 6 {
		_, first, res := fetchWith(t, srv.Client(), url)
		ck := setCookie(res, "sy")
		if ck == nil {
			t.Fatalf("client %d: no cookie", client)
		}
		for i := range 100 {
			if _, body, _ := fetchWith(t, srv.Client(), url, ck); body != first {
				t.Fatalf("client %d request %d went to %q, pinned to %q", client, i, body, first)
			}
		}
		if first[0] == 'b' {
			bCookie, bFirst = ck, first
		}
	}
	if bCookie == nil {
		t.Fatal("no client landed on branch b")
	}
	var rest []string
	for i, k := range bKeys {
		if "b"+string(rune('1'+i)) != bFirst {
			rest = append(rest, k)
		}
	}
	setEndpoints(b, rest...)
	for i := range 20 {
		if _, body, _ := fetchWith(t, srv.Client(), url, bCookie); body[0] != 'b' || body == bFirst {
			t.Fatalf("request %d after %s left went to %q, want another endpoint of branch b", i, bFirst, body)
		}
	}
}

func TestStickyCookieAttributes(t *testing.T) {
	pool := poolOf(t, "p", nil, "127.0.0.1:1")
	for _, tc := range []struct {
		name   string
		sticky config.Sticky
		prefix string
		want   string
	}{
		{"session", config.Sticky{Cookie: "sy"}, "/api", "Path=/api; HttpOnly; SameSite=Lax"},
		{"ttl", config.Sticky{Cookie: "sy", TTL: 90 * time.Second}, "/", "Path=/; Max-Age=90; HttpOnly; SameSite=Lax"},
		{"unsafe prefix", config.Sticky{Cookie: "sy"}, "/a;b", "Path=/; HttpOnly; SameSite=Lax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSticky(&tc.sticky, "", tc.prefix, []Branch{{Pool: pool, Weight: 1}})
			c := s.index(0).byState[pool.View().Members[0].State]
			if !strings.HasPrefix(c.header[0], "sy="+c.value+"; ") || !strings.HasSuffix(c.header[0], tc.want) {
				t.Errorf("header %q, want sy=VALUE; %s", c.header[0], tc.want)
			}
			if c.secure[0] != strings.Replace(c.header[0], "HttpOnly", "HttpOnly; Secure", 1) {
				t.Errorf("secure header %q", c.secure[0])
			}
			if len(c.value) != stickyValueLen {
				t.Errorf("value %q has length %d", c.value, len(c.value))
			}
		})
	}
}

// TestStickyKey: the same secret gives every replica the same values; the derived key
// differs per route, and a secret differs from it.
func TestStickyKey(t *testing.T) {
	pool := poolOf(t, "p", nil, "127.0.0.1:1")
	value := func(sc config.Sticky, host, prefix string) string {
		s := newSticky(&sc, host, prefix, []Branch{{Pool: pool, Weight: 1}})
		return s.index(0).byState[pool.View().Members[0].State].value
	}
	if value(config.Sticky{Cookie: "a", Secret: "k"}, "", "/x") != value(config.Sticky{Cookie: "a", Secret: "k"}, "", "/x") {
		t.Error("same secret, different values")
	}
	if value(config.Sticky{Cookie: "a"}, "", "/x") != value(config.Sticky{Cookie: "a"}, "", "/x") {
		t.Error("same route without secret, different values")
	}
	if value(config.Sticky{Cookie: "a"}, "", "/x") == value(config.Sticky{Cookie: "a"}, "h", "/x") {
		t.Error("derived keys of two routes agree")
	}
	if value(config.Sticky{Cookie: "a", Secret: "k"}, "", "/x") == value(config.Sticky{Cookie: "a"}, "", "/x") {
		t.Error("secret ignored")
	}
}

func TestCookieValue(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		value string
		ok    bool
	}{
		{nil, "", false},
		{[]string{"sy=abc"}, "abc", true},
		{[]string{"a=1; sy=abc; b=2"}, "abc", true},
		{[]string{"a=1", "sy=abc"}, "abc", true},
		{[]string{`sy="abc"`}, "abc", true},
		{[]string{"xsy=abc; sya=1"}, "", false},
		{[]string{"sy"}, "", false},
		{[]string{"  sy = abc ;"}, "abc", true},
		{[]string{";;;"}, "", false},
	} {
		v, ok := cookieValue(tc.lines, "sy")
		if v != tc.value || ok != tc.ok {
			t.Errorf("cookieValue(%q) = %q, %v; want %q, %v", tc.lines, v, ok, tc.value, tc.ok)
		}
	}
}

// BenchmarkStickyResolve is the request path of a valid sticky cookie: parse, check its
// tag, look the endpoint up in the view's index, pin it.
func BenchmarkStickyResolve(b *testing.B) {
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "10.0.0." + string(rune('0'+i%10)) + ":" + string(rune('0'+i/10)) + "80"
	}
	pool := poolOf(b, "p", nil, keys...)
	rt := trafficRoute(b, &config.Route{Prefix: "/", Sticky: &config.Sticky{Cookie: "sy"}}, RouteOptions{Pool: pool})
	value := rt.sticky.index(0).byState[pool.View().Members[17].State].value
	r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
	r.Header["Cookie"] = []string{"theme=dark; sy=" + value + "; lang=en"}
	b.ReportAllocs()
	for b.Loop() {
		var tr traffic
		tr.choose(rt, r)
		if tr.pinned == nil {
			b.Fatal("not pinned")
		}
	}
}

// switchHealth is a health fake whose endpoints can be marked unavailable.
type switchHealth struct {
	testkit.HealthStub
	down *atomic.Bool
}

func (h switchHealth) Available() bool         { return !h.down.Load() }
func (h switchHealth) Admit() bool             { return !h.down.Load() }
func (h switchHealth) Report(upstream.Outcome) {}

type switchPolicy map[string]*atomic.Bool

func (p switchPolicy) NewHealth(key string) upstream.Health {
	return switchHealth{HealthStub: testkit.HealthStub{EndpointKey: key}, down: p[key]}
}
func (switchPolicy) SetMembers([]upstream.Health) {}

// TestStickyUnavailableEndpoint: a pinned endpoint the health layer sets aside is not
// used; the client moves (new cookie) and comes back only by a new pick.
func TestStickyUnavailableEndpoint(t *testing.T) {
	a, b := namedBackend(t, "a"), namedBackend(t, "b")
	policy := switchPolicy{a: new(atomic.Bool), b: new(atomic.Bool)}
	pool := poolOf(t, "p", policy, a, b)
	rt := trafficRoute(t, &config.Route{Prefix: "/", Sticky: &config.Sticky{Cookie: "sy"}}, RouteOptions{Pool: pool})
	srv, _ := startGateway(t, nil, rt)
	pinA := &http.Cookie{Name: "sy", Value: stickyValueOf(rt.sticky, 0, a)}
	if _, body, res := fetchWith(t, srv.Client(), srv.URL+"/", pinA); body != "a" || setCookie(res, "sy") != nil {
		t.Fatalf("pinned to a: answered by %q, cookie %v", body, setCookie(res, "sy"))
	}
	policy[a].Store(true)
	for i := range 5 {
		_, body, res := fetchWith(t, srv.Client(), srv.URL+"/", pinA)
		ck := setCookie(res, "sy")
		if body != "b" || ck == nil || ck.Value != stickyValueOf(rt.sticky, 0, b) {
			t.Fatalf("request %d with a down: answered by %q, cookie %v", i, body, ck)
		}
	}
	policy[a].Store(false)
	if _, body, _ := fetchWith(t, srv.Client(), srv.URL+"/", pinA); body != "a" {
		t.Fatalf("a is back: the old cookie pins it again, answered by %q", body)
	}
}

// FuzzStickyResolve: no Cookie header makes resolve panic, and none pins an endpoint unless
// it carries the exact value the route issued for that endpoint.
func FuzzStickyResolve(f *testing.F) {
	a := poolOf(f, "a", nil, "10.0.0.1:80", "10.0.0.2:80")
	b := poolOf(f, "b", nil, "10.0.1.1:80")
	s := newSticky(&config.Sticky{Cookie: "sy"}, "", "/", []Branch{{Pool: a, Weight: 1}, {Pool: b, Weight: 1}})
	valid := stickyValueOf(s, 1, "10.0.1.1:80")
	for _, seed := range []string{
		"sy=" + valid, "sy=" + valid[:31] + "A", "a=b; sy=\"" + valid + "\"", ";;sy=;", "sy=" + strings.Repeat("_", 32),
		"sy=" + stickyValueOf(s, 0, "10.0.0.2:80") + "; sy=x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		var tr traffic
		chose := s.resolve(&tr, r)
		if !chose {
			if tr.pool != nil || tr.pinned != nil {
				t.Fatalf("%q: no branch chosen but pool %v pinned %v", header, tr.pool, tr.pinned)
			}
			return
		}
		if tr.pool != s.branches[tr.branch].Pool {
			t.Fatalf("%q: branch %d with another branch's pool", header, tr.branch)
		}
		if tr.pinned != nil && tr.stickyValue != stickyValueOf(s, tr.branch, tr.pinned.Key) {
			t.Fatalf("%q pinned %s of branch %d", header, tr.pinned.Key, tr.branch)
		}
	})
}

// TestStickyConcurrentUpdates: pinned clients stay on their endpoint while the registry keeps
// changing the rest of the pool (each new view's index is built once, under requests).
func TestStickyConcurrentUpdates(t *testing.T) {
	a, b, c := namedBackend(t, "a"), namedBackend(t, "b"), namedBackend(t, "c")
	pool := poolOf(t, "p", nil, a, b)
	rt := trafficRoute(t, &config.Route{Prefix: "/", Sticky: &config.Sticky{Cookie: "sy"}}, RouteOptions{Pool: pool})
	srv, _ := startGateway(t, nil, rt)
	pin := &http.Cookie{Name: "sy", Value: stickyValueOf(rt.sticky, 0, a)}
	done := make(chan struct{})
	updated := make(chan struct{})
	go func() {
		defer close(updated)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if i%2 == 0 {
				setEndpoints(pool, b, a, c)
			} else {
				setEndpoints(pool, a, b)
			}
		}
	}()
	errs := make(chan string, 4)
	for range 4 {
		go func() {
			for range 100 {
				// Not fetchWith: t.Fatal may not run outside the test's goroutine.
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
				req.AddCookie(pin)
				res, err := srv.Client().Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if string(body) != "a" {
					errs <- string(body)
					return
				}
			}
			errs <- ""
		}()
	}
	for range 4 {
		if got := <-errs; got != "" {
			t.Errorf("pinned client answered by %q", got)
		}
	}
	close(done)
	<-updated
}
