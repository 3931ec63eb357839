package forward

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

// seen is what the auth service received in one subrequest.
type seen struct {
	method, path, host string
	header             http.Header
	body               string
	contentLength      int64
}

// authService starts an auth service on loopback answering with answer, and records what
// each subrequest carried.
func authService(t *testing.T, answer http.HandlerFunc) (service string, requests func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.Host, r.Header.Clone(), string(body), r.ContentLength})
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestSubrequestCarriesOnlyListedFields(t *testing.T) {
	service, requests := authService(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	tests := []struct {
		name    string
		listed  []string
		prepare func(r *http.Request)
		want    http.Header
	}{
		{
			name:   "defaults",
			listed: []string{"Authorization", "Cookie"},
			want: http.Header{
				"Authorization":      {"Bearer t0ken"},
				"Cookie":             {"session=abc", "theme=dark"},
				"X-Forwarded-Method": {"POST"},
				"X-Forwarded-Proto":  {"http"},
				"X-Forwarded-Host":   {"shop.example"},
				"X-Forwarded-Uri":    {"/a%2Fb/c?x=1&y=%20z"},
				"X-Forwarded-For":    {"192.0.2.10"},
				"X-Request-Id":       {"req-42"},
			},
		},
		{
			name:   "a listed field the client did not send",
			listed: []string{"X-Api-Key"},
			prepare: func(r *http.Request) {
				r.TLS = &tls.ConnectionState{}
				r.Method = http.MethodDelete
			},
			want: http.Header{
				"X-Forwarded-Method": {"DELETE"},
				"X-Forwarded-Proto":  {"https"},
				"X-Forwarded-Host":   {"shop.example"},
				"X-Forwarded-Uri":    {"/a%2Fb/c?x=1&y=%20z"},
				"X-Forwarded-For":    {"192.0.2.10"},
				"X-Request-Id":       {"req-42"},
			},
		},
		{
			name:   "user agent only when listed; a value with a control character is left out",
			listed: []string{"User-Agent", "Authorization", "Cookie"},
			prepare: func(r *http.Request) {
				r.Header.Set("User-Agent", "curl/8")
				r.Header["Cookie"] = []string{"ok=1", "bad=\x00"}
				r.Header.Set("X-Forwarded-For", "10.9.9.9") // the client's own: never passed on
			},
			want: http.Header{
				"User-Agent":         {"curl/8"},
				"Authorization":      {"Bearer t0ken"},
				"X-Forwarded-Method": {"POST"},
				"X-Forwarded-Proto":  {"http"},
				"X-Forwarded-Host":   {"shop.example"},
				"X-Forwarded-Uri":    {"/a%2Fb/c?x=1&y=%20z"},
				"X-Forwarded-For":    {"192.0.2.10"},
				"X-Request-Id":       {"req-42"},
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMechanism(t, &config.ForwardAuth{URL: service + "/check?from=gw", Timeout: 10 * time.Second, RequestHeaders: tt.listed})
			r, q := clientRequest("/a%2Fb/c?x=1&y=%20z")
			if tt.prepare != nil {
				tt.prepare(r)
			}
			var w untouched
			if d := m.Authenticate(&w, r, q); d.Result != auth.Admitted {
				t.Fatalf("decision %+v, want Admitted", d)
			}
			w.check(t)
			all := requests()
			if len(all) != i+1 {
				t.Fatalf("auth service saw %d subrequests, want %d", len(all), i+1)
			}
			got := all[i]
			if got.method != http.MethodGet || got.path != "/check" || got.body != "" || got.contentLength != 0 {
				t.Errorf("subrequest %s %s with %d-byte body %q, want GET /check without a body", got.method, got.path, got.contentLength, got.body)
			}
			if !strings.HasPrefix(service, "http://"+got.host) {
				t.Errorf("subrequest Host %q, want the auth service's", got.host)
			}
			if !reflect.DeepEqual(got.header, tt.want) {
				t.Errorf("auth service saw\n%v\nwant\n%v", got.header, tt.want)
			}
		})
	}
}

// TestURIAsForwarded: X-Forwarded-Uri is the path the gateway routes and forwards
// (q.Path, dot-segments resolved) with the client's query, so the auth service judges the
// path the upstream receives; without q.Path, the request target as sent.
func TestURIAsForwarded(t *testing.T) {
	service, requests := authService(t, func(w http.ResponseWriter, r *http.Request) {})
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second})
	tests := []struct {
		name   string
		target string // request line target
		path   string // q.Path: the canonical path the proxy matched
		want   string
	}{
		{"dot-segments resolved", "/public/%2e%2e/admin?q=%zz&a=b", "/admin", "/admin?q=%zz&a=b"},
		{"plain dot-segments", "/public/../admin", "/admin", "/admin"},
		{"escapes kept", "/p%41th/x%2Fy", "/p%41th/x%2Fy", "/p%41th/x%2Fy"},
		{"empty query kept", "/a?", "/a", "/a?"},
		{"no canonical path: origin form", "/p%41th/%2e%2e/x?q=%zz&a=b", "", "/p%41th/%2e%2e/x?q=%zz&a=b"},
		{"no canonical path: absolute form", "http://shop.example/abs/p?q=1", "", "/abs/p?q=1"},
		{"root", "/", "/", "/"},
		{"asterisk", "*", "", "*"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, q := clientRequest("/")
			q.Path = tt.path
			r.RequestURI = tt.target
			u, err := url.ParseRequestURI(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			r.URL = u
			if d := m.Authenticate(&untouched{}, r, q); d.Result != auth.Admitted {
				t.Fatalf("decision %+v", d)
			}
			if got := requests()[i].header.Get("X-Forwarded-Uri"); got != tt.want {
				t.Fatalf("X-Forwarded-Uri %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAdmit(t *testing.T) {
	tests := []struct {
		name     string
		identity string // identity_header
		answer   func(h http.Header)
		status   int
		want     auth.Decision
		upstream http.Header // the forwarded request's identity fields afterwards
	}{
		{
			name:     "200 copies the listed fields",
			identity: "X-User-Id",
			answer: func(h http.Header) {
				h.Set("X-User-Id", "alice")
				h.Add("X-Groups", "admin")
				h.Add("X-Groups", "ops")
				h.Set("X-Other", "not listed")
			},
			status:   http.StatusOK,
			want:     auth.Decision{Result: auth.Admitted, Identity: "alice", Reason: "ok"},
			upstream: http.Header{"X-User-Id": {"alice"}, "X-Groups": {"admin", "ops"}},
		},
		{
			name:     "a listed field the service did not send is removed",
			identity: "X-User-Id",
			answer:   func(h http.Header) { h.Set("X-User-Id", "bob") },
			status:   http.StatusNoContent,
			want:     auth.Decision{Result: auth.Admitted, Identity: "bob", Reason: "ok"},
			upstream: http.Header{"X-User-Id": {"bob"}},
		},
		{
			name:     "no identity header configured",
			answer:   func(h http.Header) { h.Set("X-User-Id", "carol") },
			status:   299,
			want:     auth.Decision{Result: auth.Admitted, Reason: "ok"},
			upstream: http.Header{"X-User-Id": {"carol"}},
		},
		{
			name:     "identity header absent",
			identity: "X-User-Id",
			answer:   func(h http.Header) {},
			status:   http.StatusOK,
			want:     auth.Decision{Result: auth.Admitted, Reason: "ok"},
			upstream: http.Header{},
		},
		{
			name:     "identity at the length cap",
			identity: "X-User-Id",
			answer:   func(h http.Header) { h.Set("X-User-Id", strings.Repeat("u", MaxIdentityLength)) },
			status:   http.StatusOK,
			want:     auth.Decision{Result: auth.Admitted, Identity: strings.Repeat("u", MaxIdentityLength), Reason: "ok"},
			upstream: http.Header{"X-User-Id": {strings.Repeat("u", MaxIdentityLength)}},
		},
		{
			name:     "identity over the length cap fails closed",
			identity: "X-User-Id",
			answer:   func(h http.Header) { h.Set("X-User-Id", strings.Repeat("u", MaxIdentityLength+1)) },
			status:   http.StatusOK,
			want:     auth.Decision{Result: auth.Unavailable, Reason: "unavailable"},
		},
		{
			name:     "two identities fail closed",
			identity: "X-User-Id",
			answer:   func(h http.Header) { h.Add("X-User-Id", "alice"); h.Add("X-User-Id", "root") },
			status:   http.StatusOK,
			want:     auth.Decision{Result: auth.Unavailable, Reason: "unavailable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			service, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
				tt.answer(w.Header())
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "welcome")
			})
			m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second,
				ResponseHeaders: []string{"X-User-Id", "X-Groups"}, IdentityHeader: tt.identity})
			r, q := clientRequest("/")
			r.Header.Set("X-User-Id", "forged")
			r.Header.Set("X-Groups", "forged")
			before := r.Header.Clone()
			var w untouched
			d := m.Authenticate(&w, r, q)
			w.check(t)
			if d != tt.want {
				t.Fatalf("decision %+v, want %+v", d, tt.want)
			}
			if tt.want.Result != auth.Admitted {
				if !reflect.DeepEqual(r.Header, before) {
					t.Fatalf("a request that was not admitted was edited: %v", r.Header)
				}
				return
			}
			for _, name := range []string{"X-User-Id", "X-Groups"} {
				if got, want := r.Header[name], tt.upstream[name]; !reflect.DeepEqual(got, want) {
					t.Errorf("forwarded %s = %q, want %q", name, got, want)
				}
			}
			if r.Header.Get("X-Other") != "" || r.Header.Get("X-Secret") != "never-to-auth" {
				t.Errorf("fields that are not listed changed: %v", r.Header)
			}
		})
	}
}

// waitFor fails t when done is not closed within 10 s: a bound on a wait, never an
// assertion on speed.
func waitFor(t *testing.T, what string, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10s", what)
	}
}

func TestRequestWithoutHeaderOrFilterRequest(t *testing.T) {
	service, requests := authService(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-User-Id", "dora") })
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second,
		RequestHeaders: []string{"Cookie"}, ResponseHeaders: []string{"X-User-Id"}, IdentityHeader: "X-User-Id"})
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/p", RawQuery: "q=1"}}
	r = r.WithContext(t.Context())
	d := m.Authenticate(&untouched{}, r, nil)
	if d != (auth.Decision{Result: auth.Admitted, Identity: "dora", Reason: "ok"}) || r.Header.Get("X-User-Id") != "dora" {
		t.Fatalf("decision %+v, forwarded header %v", d, r.Header)
	}
	want := http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Uri": {"/p?q=1"}}
	if got := requests()[0].header; !reflect.DeepEqual(got, want) {
		t.Fatalf("auth service saw %v, want %v", got, want)
	}
}

// TestConcurrentRequestsKeepTheirOwnAnswers runs many requests at once through one
// mechanism (shared subrequest template, pooled connections): each gets the identity its own
// credential maps to.
func TestConcurrentRequestsKeepTheirOwnAnswers(t *testing.T) {
	service, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == r.Header.Get("X-Forwarded-Uri")[1:] && token != "" {
			w.Header().Set("X-User-Id", "user-"+token)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second,
		RequestHeaders: []string{"Authorization"}, ResponseHeaders: []string{"X-User-Id"}, IdentityHeader: "X-User-Id"})
	var wg sync.WaitGroup
	for worker := range 16 {
		wg.Go(func() {
			for i := range 20 {
				token := strconv.Itoa(worker*100 + i)
				r, q := clientRequest("/" + token)
				r.Header.Set("Authorization", "Bearer "+token)
				d := m.Authenticate(&untouched{}, r, q)
				if d.Result != auth.Admitted || d.Identity != "user-"+token || r.Header.Get("X-User-Id") != "user-"+token {
					t.Errorf("token %s: decision %+v, forwarded X-User-Id %q", token, d, r.Header.Get("X-User-Id"))
					return
				}
			}
		})
	}
	wg.Wait()
}
