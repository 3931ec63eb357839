package auth_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
	"github.com/switchyard/switchyard/filter/auth/apikey"
	"github.com/switchyard/switchyard/filter/auth/basic"
)

const (
	billingKey = "sk_live_3b5d7f9a1c2e4f6a8b0c1d2e3f4a5b6c"
	guestKey   = "sk_live_guest_000000000000000000000000"
)

// routeFilter builds a route's filter from real api_key and basic mechanisms, as the
// gateway will: api_key first, then basic.
func routeFilter(t testing.TB, m *auth.Metrics) *auth.Filter {
	t.Helper()
	keys, err := apikey.New(&config.APIKeyAuth{
		Header:     "X-Api-Key",
		Allow:      []string{"billing"},
		NameHeader: "X-Key-Name",
		Strip:      true,
		Keys: []config.APIKey{
			{Name: "billing", SHA256: sha256.Sum256([]byte(billingKey))},
			{Name: "guest", SHA256: sha256.Sum256([]byte(guestKey))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := basic.New(&config.BasicAuth{
		Realm:      "users",
		UserHeader: "X-Remote-User",
		CacheTTL:   time.Minute,
		Users:      map[string][]byte{"alice": hash},
	})
	if err != nil {
		t.Fatal(err)
	}
	return auth.New("users", []auth.Mechanism{keys, users}, m, nil)
}

// echo is what the test upstream saw.
type echo struct {
	Identity string
	Header   http.Header
}

// TestThroughListener runs the filter in front of an echoing handler on a loopback
// listener, so what crosses the wire (challenges, spoofed headers) is what is checked.
func TestThroughListener(t *testing.T) {
	f := routeFilter(t, auth.NewMetrics(prometheus.NewRegistry()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := &filter.Request{RequestID: "rid-1", Route: "users"}
		if !f.ServeRequest(w, r, q) {
			return
		}
		_ = json.NewEncoder(w).Encode(echo{Identity: q.Identity, Header: r.Header})
	}))
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	alice := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))

	tests := []struct {
		name         string
		header       http.Header
		wantStatus   int
		wantIdentity string
		wantUpstream http.Header // headers that must reach the upstream as given
		wantGone     []string    // headers that must not reach it
		wantAuth     []string    // WWW-Authenticate on a refusal
	}{
		{
			name:       "no credentials",
			wantStatus: 401,
			wantAuth:   []string{`APIKey header="X-Api-Key"`, `Basic realm="users", charset="UTF-8"`},
		},
		{
			name:         "api key, spoofed identity headers dropped, key stripped",
			header:       http.Header{"X-Api-Key": {billingKey}, "X-Key-Name": {"root"}, "X-Remote-User": {"root"}, "X_Remote_User": {"root"}},
			wantStatus:   200,
			wantIdentity: "api_key:billing",
			wantUpstream: http.Header{"X-Key-Name": {"billing"}},
			wantGone:     []string{"X-Api-Key", "X-Remote-User", "X_Remote_User"},
		},
		{
			name:         "basic after a missing key",
			header:       http.Header{"Authorization": {alice}, "X-Key-Name": {"billing"}},
			wantStatus:   200,
			wantIdentity: "basic:alice",
			wantUpstream: http.Header{"X-Remote-User": {"alice"}, "Authorization": {alice}},
			wantGone:     []string{"X-Key-Name"},
		},
		{
			name:       "key not allowed on the route: 403 even with valid basic",
			header:     http.Header{"X-Api-Key": {guestKey}, "Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:nope"))}},
			wantStatus: 403,
		},
		{
			name:         "a key not allowed does not stop a valid basic login",
			header:       http.Header{"X-Api-Key": {guestKey}, "Authorization": {alice}},
			wantStatus:   200,
			wantIdentity: "basic:alice",
			wantUpstream: http.Header{"X-Remote-User": {"alice"}},
		},
		{
			name:       "two Authorization headers: 401",
			header:     http.Header{"Authorization": {alice, alice}},
			wantStatus: 401,
			wantAuth:   []string{`APIKey header="X-Api-Key"`, `Basic realm="users", charset="UTF-8"`},
		},
		{
			name:       "two keys, one valid: 401",
			header:     http.Header{"X-Api-Key": {billingKey, "other"}},
			wantStatus: 401,
			wantAuth:   []string{`APIKey header="X-Api-Key"`, `Basic realm="users", charset="UTF-8"`},
		},
		{
			name:       "wrong key and wrong password: 401",
			header:     http.Header{"X-Api-Key": {billingKey + "x"}, "Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:nope"))}},
			wantStatus: 401,
			wantAuth:   []string{`APIKey header="X-Api-Key"`, `Basic realm="users", charset="UTF-8"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v // as spelled: X_Remote_User must go out with its underscores
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if got := resp.Header.Values("Www-Authenticate"); !slices.Equal(got, tt.wantAuth) {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantAuth)
			}
			if resp.StatusCode != 200 {
				var e struct {
					RequestID string `json:"request_id"`
				}
				if err := json.Unmarshal(body, &e); err != nil || e.RequestID != "rid-1" {
					t.Errorf("error body %s: want JSON with request_id rid-1 (%v)", body, err)
				}
				return
			}
			var seen echo
			if err := json.Unmarshal(body, &seen); err != nil {
				t.Fatalf("upstream body %s: %v", body, err)
			}
			if seen.Identity != tt.wantIdentity {
				t.Errorf("identity %q, want %q", seen.Identity, tt.wantIdentity)
			}
			for k, v := range tt.wantUpstream {
				if !slices.Equal(seen.Header[k], v) {
					t.Errorf("upstream %s = %q, want %q", k, seen.Header[k], v)
				}
			}
			for _, k := range tt.wantGone {
				if v, ok := seen.Header[k]; ok {
					t.Errorf("upstream got %s: %q", k, v)
				}
			}
		})
	}
}

// BenchmarkSuccessPath is the whole filter on the success path of each mechanism: an API
// key (first mechanism), and basic with a cached check (after the API key mechanism
// skipped). Both mechanisms set an identity header here (name_header, user_header): that
// header's value is the one allocation per request.
func BenchmarkSuccessPath(b *testing.B) {
	f := routeFilter(b, auth.NewMetrics(prometheus.NewRegistry()))
	cases := []struct {
		name   string
		header http.Header
	}{
		{"api_key", http.Header{"X-Api-Key": {billingKey}}},
		{"basic_cached", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept", "*/*")
			r.Header.Set("User-Agent", "bench")
			w := httptest.NewRecorder()
			q := &filter.Request{}
			b.ReportAllocs()
			for b.Loop() {
				// The mechanisms strip and set headers: put back the credential each time.
				for k, v := range c.header {
					r.Header[k] = v
				}
				*q = filter.Request{}
				if !f.ServeRequest(w, r, q) {
					b.Fatalf("refused: %d", w.Code)
				}
			}
		})
	}
}
