package cors

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
)

func mustNew(t testing.TB, c *config.CORS) *Filter {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewOff(t *testing.T) {
	off := false
	for _, c := range []*config.CORS{nil, {Enabled: &off, AllowOrigins: []string{"*"}}} {
		if f, err := New(c); f != nil || err != nil {
			t.Fatalf("New(%+v) = %v, %v; want nil, nil", c, f, err)
		}
	}
	// A nil filter (off) neither answers preflights nor wraps responses.
	var f *Filter
	r := httptest.NewRequest(http.MethodOptions, "/", nil)
	r.Header = http.Header{"Origin": {"https://a.test"}, requestMethodField: {"PUT"}}
	w := httptest.NewRecorder()
	if !f.ServeRequest(w, r, &filter.Request{}) || len(w.Header()) != 0 {
		t.Fatal("a nil filter answered a preflight")
	}
	if got, done := f.WrapResponse(w, r, &filter.Request{}); got != http.ResponseWriter(w) || done != nil {
		t.Fatal("a nil filter wrapped the writer")
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cors config.CORS
		want []string
	}{
		{"no origins", config.CORS{}, []string{"allow_origins is empty"}},
		{"not an origin", config.CORS{AllowOrigins: []string{"app.example.com"}}, []string{`"app.example.com" is not an origin`}},
		{"path", config.CORS{AllowOrigins: []string{"https://app.example.com/x"}}, []string{"no path"}},
		{"user", config.CORS{AllowOrigins: []string{"https://u@app.example.com"}}, []string{"no user"}},
		{"port", config.CORS{AllowOrigins: []string{"https://app.example.com:x"}}, []string{"invalid port"}},
		{"scheme", config.CORS{AllowOrigins: []string{"1http://a.com"}}, []string{"invalid scheme"}},
		{"inner wildcard", config.CORS{AllowOrigins: []string{"https://app.*.com"}}, []string{"one leading"}},
		{"wildcard without dot", config.CORS{AllowOrigins: []string{"https://*example.com"}}, []string{"one leading"}},
		{"two wildcards", config.CORS{AllowOrigins: []string{"https://*.*.com"}}, []string{"one leading"}},
		{"bare wildcard host", config.CORS{AllowOrigins: []string{"https://*"}}, []string{"one leading"}},
		{"credentials with any", config.CORS{AllowOrigins: []string{"*"}, AllowCredentials: true}, []string{"allow_credentials"}},
		{"credentials with a wildcard", config.CORS{AllowOrigins: []string{"https://*.example.com"}, AllowCredentials: true}, []string{"allow_credentials"}},
		{"method", config.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"GE T"}}, []string{`"GE T" is not a method`}},
		{"header", config.CORS{AllowOrigins: []string{"*"}, AllowHeaders: []string{"X\r\nY"}}, []string{"allow_headers"}},
		{"expose", config.CORS{AllowOrigins: []string{"*"}, ExposeHeaders: []string{"a b"}}, []string{"expose_headers"}},
		{"all at once", config.CORS{AllowOrigins: []string{"x", "y"}, AllowHeaders: []string{"a b"}}, []string{`"x"`, `"y"`, "allow_headers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(&tt.cors)
			if err == nil || f != nil {
				t.Fatalf("New = %v, %v; want an error", f, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestOriginMatching(t *testing.T) {
	f := mustNew(t, &config.CORS{AllowOrigins: []string{
		"https://app.example.com",
		"HTTPS://Upper.Example.COM:443", // normalized: lower case, default port dropped
		"http://plain.test:80",
		"https://*.example.org",
		"http://*.dev.test:8080",
		"null",
		"http://[::1]:3000",
	}})
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://upper.example.com", true},
		{"http://plain.test", true},
		{"http://[::1]:3000", true},
		{"null", true},
		{"https://app.example.com:443", false}, // browsers never send the default port
		{"http://app.example.com", false},      // scheme differs
		{"https://app.example.com.evil.com", false},
		{"https://APP.example.com", false}, // browsers serialize lower case
		{"https://a.example.org", true},
		{"https://a.b.c.example.org", true},
		{"https://example.org", false},
		{"https://.example.org", false},
		{"https://a..example.org", false},
		{"https://evil.com/.example.org", false},
		{"https://user@a.example.org", false},
		{"https://a.example.org:443", false},
		{"https://a.example.org:8443", false},
		{"http://a.example.org", false},
		{"https://evilexample.org", false},
		{"https://a_b.example.org", false},
		{"http://x.dev.test:8080", true},
		{"http://x.dev.test", false},
		{"http://x.dev.test:8081", false},
		{"http://:8080.dev.test:8080", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			got := f.allowOriginValue([]string{tt.origin})
			if (got != nil) != tt.want {
				t.Fatalf("allowOriginValue(%q) = %v, want allowed %v", tt.origin, got, tt.want)
			}
			if got != nil && !reflect.DeepEqual(got, []string{tt.origin}) {
				t.Fatalf("Allow-Origin = %v, want the origin", got)
			}
		})
	}
	if f.allowOriginValue([]string{"https://app.example.com", "https://app.example.com"}) != nil {
		t.Fatal("two Origin fields were allowed")
	}

	anyOrigin := mustNew(t, &config.CORS{AllowOrigins: []string{"*"}})
	if got := anyOrigin.allowOriginValue([]string{"https://anything.test"}); !reflect.DeepEqual(got, []string{"*"}) {
		t.Fatalf(`"*" list: Allow-Origin %v, want "*"`, got)
	}
	if anyOrigin.allowOriginValue([]string{"null"}) != nil {
		t.Fatal(`"*" matched the "null" origin`)
	}
	anyAndNull := mustNew(t, &config.CORS{AllowOrigins: []string{"*", "null"}})
	if got := anyAndNull.allowOriginValue([]string{"null"}); !reflect.DeepEqual(got, []string{"null"}) {
		t.Fatalf(`"null" listed: Allow-Origin %v, want "null"`, got)
	}
}

const preflightVary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

func TestPreflight(t *testing.T) {
	base := config.CORS{
		AllowOrigins:  []string{"https://app.example.com", "https://*.example.org"},
		AllowMethods:  []string{"GET", "PUT", "DELETE"},
		AllowHeaders:  []string{"X-Token", "x-trace"},
		ExposeHeaders: []string{"X-Ignored-In-Preflight"},
	}
	withCredentials := base
	withCredentials.AllowOrigins = []string{"https://app.example.com"} // no wildcard with credentials
	withCredentials.AllowCredentials = true
	withCredentials.MaxAge = 10 * time.Minute
	anyOrigin := base
	anyOrigin.AllowOrigins = []string{"*"}
	anyOrigin.MaxAge = 300 * time.Millisecond
	anyHeader := base
	anyHeader.AllowHeaders = []string{"*"}

	tests := []struct {
		name    string
		cors    config.CORS
		header  http.Header // Origin is https://app.example.com unless set
		status  int         // 204 allowed, 403 refused
		allowed http.Header // the Access-Control-Allow-*/Max-Age fields expected on a 204
	}{
		{
			name:    "allowed",
			cors:    base,
			header:  http.Header{requestMethodField: {"PUT"}, requestHeadersField: {"x-token,X-TRACE"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"}, allowHeadersField: {"x-token,X-TRACE"}},
		},
		{
			name:    "no requested headers",
			cors:    base,
			header:  http.Header{requestMethodField: {"DELETE"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"}},
		},
		{
			name:    "only allowed requested headers are listed",
			cors:    base,
			header:  http.Header{requestMethodField: {"PUT"}, requestHeadersField: {"x-other, x-token", "content-type,x-secret"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"}, allowHeadersField: {"x-token, content-type"}},
		},
		{
			name:    "no requested header allowed",
			cors:    base,
			header:  http.Header{requestMethodField: {"PUT"}, requestHeadersField: {"x-other"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"}},
		},
		{
			name:    "safelisted method not in allow_methods",
			cors:    base,
			header:  http.Header{requestMethodField: {"POST"}, requestHeadersField: {"x-token"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"}, allowHeadersField: {"x-token"}},
		},
		{
			name:    "wildcard origin",
			cors:    base,
			header:  http.Header{"Origin": {"https://eu.api.example.org"}, requestMethodField: {"GET"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"https://eu.api.example.org"}, allowMethodsField: {"GET, PUT, DELETE"}},
		},
		{
			name:   "credentials and max age",
			cors:   withCredentials,
			header: http.Header{requestMethodField: {"GET"}},
			status: 204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"},
				allowCredentialsField: {"true"}, maxAgeField: {"600"}},
		},
		{
			name:    "any origin, sub-second max age rounds up",
			cors:    anyOrigin,
			header:  http.Header{"Origin": {"https://elsewhere.test"}, requestMethodField: {"GET"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"*"}, allowMethodsField: {"GET, PUT, DELETE"}, maxAgeField: {"1"}},
		},
		{
			name:    "any header echoes the request's names",
			cors:    anyHeader,
			header:  http.Header{requestMethodField: {"PUT"}, requestHeadersField: {"x-a,x-b"}},
			status:  204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"}, allowHeadersField: {"x-a,x-b"}},
		},
		{
			name:   "any header never echoes what is not a name",
			cors:   anyHeader,
			header: http.Header{requestMethodField: {"PUT"}, requestHeadersField: {"x-a,x b\x7f,x-c"}},
			status: 204,
			allowed: http.Header{allowOriginField: {"https://app.example.com"}, allowMethodsField: {"GET, PUT, DELETE"},
				allowHeadersField: {"x-a, x-c"}},
		},
		{name: "origin refused", cors: base, header: http.Header{"Origin": {"https://evil.test"}, requestMethodField: {"GET"}}, status: 403},
		{name: "method refused", cors: base, header: http.Header{requestMethodField: {"PATCH"}}, status: 403},
		{name: "method compared case-sensitively", cors: base, header: http.Header{requestMethodField: {"put"}}, status: 403},
		{name: "two methods", cors: base, header: http.Header{requestMethodField: {"GET", "PUT"}}, status: 403},
		{name: "two origins", cors: base, header: http.Header{"Origin": {"https://app.example.com", "https://app.example.com"}, requestMethodField: {"GET"}}, status: 403},
		{name: "null not listed", cors: anyOrigin, header: http.Header{"Origin": {"null"}, requestMethodField: {"GET"}}, status: 403},
		{
			name:   "too many requested headers",
			cors:   anyHeader,
			header: http.Header{requestMethodField: {"GET"}, requestHeadersField: {strings.Repeat("x-a,", maxRequestedHeaders+1)}},
			status: 403,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustNew(t, &tt.cors)
			r := httptest.NewRequest(http.MethodOptions, "http://127.0.0.1/api", nil)
			r.Header = tt.header.Clone()
			if _, ok := r.Header["Origin"]; !ok {
				r.Header["Origin"] = []string{"https://app.example.com"}
			}
			w := httptest.NewRecorder()
			q := &filter.Request{RequestID: "r1"}
			if f.ServeRequest(w, r, q) {
				t.Fatal("a preflight went on to the upstream")
			}
			if w.Code != tt.status || q.Status != tt.status {
				t.Fatalf("status %d, q.Status %d; want %d", w.Code, q.Status, tt.status)
			}
			h := w.Result().Header
			if got := h.Get("Vary"); got != preflightVary {
				t.Errorf("Vary %q, want %q", got, preflightVary)
			}
			got := http.Header{}
			for k, v := range h {
				if strings.HasPrefix(k, "Access-Control-") {
					got[k] = v
				}
			}
			if tt.status == 403 {
				if len(got) != 0 {
					t.Errorf("a refused preflight carries %v", got)
				}
				if !strings.Contains(w.Body.String(), `"status":403`) {
					t.Errorf("body %q is not the gateway's error", w.Body)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.allowed) {
				t.Errorf("CORS fields\n got %v\nwant %v", got, tt.allowed)
			}
		})
	}
}

// TestNotPreflight: OPTIONS without Access-Control-Request-Method (or without Origin) is an
// ordinary request and goes to the upstream.
func TestNotPreflight(t *testing.T) {
	f := mustNew(t, &config.CORS{AllowOrigins: []string{"*"}})
	for _, h := range []http.Header{
		{"Origin": {"https://a.test"}},
		{requestMethodField: {"GET"}},
		{},
	} {
		r := httptest.NewRequest(http.MethodOptions, "/", nil)
		r.Header = h
		w := httptest.NewRecorder()
		q := &filter.Request{}
		if !f.ServeRequest(w, r, q) || q.Status != 0 || len(w.Header()) != 0 {
			t.Errorf("%v: answered as a preflight", h)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header = http.Header{"Origin": {"https://a.test"}, requestMethodField: {"GET"}}
	if !f.ServeRequest(httptest.NewRecorder(), r, &filter.Request{}) {
		t.Error("a GET was answered as a preflight")
	}
}

// FuzzWildcardMatch holds the hand-written matcher to its definition, written as a regular
// expression: one or more DNS labels, then the suffix, with the pattern's scheme and port.
func FuzzWildcardMatch(f *testing.F) {
	for _, s := range []string{"https://a.example.org", "https://.example.org", "https://a..example.org",
		"https://a.example.org:8443", "https://x/.example.org", "http://a.example.org", "https://-.example.org",
		"https://a.b.example.org", "https://example.org", "https://A.example.org"} {
		f.Add(s)
	}
	patterns := []struct {
		origin string
		re     *regexp.Regexp
	}{
		{"https://*.example.org", regexp.MustCompile(`^https://([a-z0-9-]+\.)*[a-z0-9-]+\.example\.org$`)},
		{"http://*.dev.test:8080", regexp.MustCompile(`^http://([a-z0-9-]+\.)*[a-z0-9-]+\.dev\.test:8080$`)},
	}
	var wildcards []wildcardOrigin
	for _, p := range patterns {
		w, err := parseWildcard(p.origin)
		if err != nil {
			f.Fatal(err)
		}
		wildcards = append(wildcards, w)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		for i, p := range patterns {
			if got, want := wildcards[i].match(origin), p.re.MatchString(origin); got != want {
				t.Fatalf("%s matching %q = %v, the definition says %v", p.origin, origin, got, want)
			}
		}
	})
}
