package apikey

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

const (
	billingKey = "sk_live_9f2c1e4b7a6d5c3e8f1a2b3c4d5e6f70"
	reportsKey = "sk_live_reports_0123456789abcdef0123"
)

func entry(name, k string) config.APIKey {
	return config.APIKey{Name: name, SHA256: sha256.Sum256([]byte(k))}
}

// testConfig is an api_key block as the loader leaves it: keys read, defaults applied.
func testConfig() *config.APIKeyAuth {
	return &config.APIKeyAuth{
		Header: "X-Api-Key",
		Keys:   []config.APIKey{entry("billing", billingKey), entry("reports", reportsKey)},
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*config.APIKeyAuth)
		want   []string
	}{
		{"empty header", func(c *config.APIKeyAuth) { c.Header = "" }, []string{`header ""`}},
		{"bad header", func(c *config.APIKeyAuth) { c.Header = "X Api" }, []string{`header "X Api"`}},
		{"bad name header", func(c *config.APIKeyAuth) { c.NameHeader = "X:Name" }, []string{`name_header "X:Name" is not a valid header name`}},
		{"host as name header", func(c *config.APIKeyAuth) { c.NameHeader = "host" }, []string{`name_header "host" frames the request`}},
		{"name header is the key header", func(c *config.APIKeyAuth) { c.NameHeader = "x-api-key" }, []string{"is the key header"}},
		{"duplicate name", func(c *config.APIKeyAuth) { c.Keys = append(c.Keys, entry("billing", "other")) }, []string{`"billing" is listed twice`}},
		{"duplicate hash", func(c *config.APIKeyAuth) { c.Keys = append(c.Keys, entry("copy", billingKey)) }, []string{`"billing" and "copy"`}},
		{"empty key", func(c *config.APIKeyAuth) { c.Keys = append(c.Keys, entry("blank", "")) }, []string{`"blank" is the sha256 of an empty key`}},
		{"nameless key", func(c *config.APIKeyAuth) { c.Keys = append(c.Keys, entry("", "k")) }, []string{"has no name"}},
		{"allow unknown", func(c *config.APIKeyAuth) { c.Allow = []string{"billing", "ghost"} }, []string{`"ghost"`}},
		{"all at once", func(c *config.APIKeyAuth) { c.NameHeader = "X-Api-Key"; c.Allow = []string{"ghost"} }, []string{"is the key header", `"ghost"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.modify(cfg)
			m, err := New(cfg)
			if err == nil || m != nil {
				t.Fatalf("New = %v, %v; want an error", m, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if m, err := New(nil); err == nil || m != nil {
		t.Errorf("New(nil) = %v, %v; want an error", m, err)
	}
}

func TestAuthenticate(t *testing.T) {
	billingHash := sha256.Sum256([]byte(billingKey))
	nearMiss := billingKey[:len(billingKey)-1] + "1"
	tests := []struct {
		name       string
		modify     func(*config.APIKeyAuth)
		values     []string // X-Api-Key values sent; nil: none
		want       auth.Decision
		wantHeader http.Header // headers after Authenticate (besides the key, checked by keyKept)
		keyKept    bool
	}{
		{name: "no header", values: nil, want: auth.Decision{Result: auth.Skipped, Reason: "missing"}},
		{name: "empty header", values: []string{""}, want: auth.Decision{Result: auth.Skipped, Reason: "missing"}, keyKept: true},
		{name: "two values", values: []string{billingKey, billingKey}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
		{name: "valid key", values: []string{billingKey}, want: auth.Decision{Result: auth.Admitted, Identity: "billing", Reason: "ok"}, keyKept: true},
		{name: "other valid key", values: []string{reportsKey}, want: auth.Decision{Result: auth.Admitted, Identity: "reports", Reason: "ok"}, keyKept: true},
		{
			name: "name header and strip", values: []string{billingKey},
			modify:     func(c *config.APIKeyAuth) { c.NameHeader = "x-key-name"; c.Strip = true },
			want:       auth.Decision{Result: auth.Admitted, Identity: "billing", Reason: "ok"},
			wantHeader: http.Header{"X-Key-Name": {"billing"}},
		},
		{
			name: "allowed", values: []string{reportsKey},
			modify: func(c *config.APIKeyAuth) { c.Allow = []string{"reports"} },
			want:   auth.Decision{Result: auth.Admitted, Identity: "reports", Reason: "ok"}, keyKept: true,
		},
		{
			name: "valid but not allowed: forbidden, request untouched", values: []string{billingKey},
			modify: func(c *config.APIKeyAuth) { c.Allow = []string{"reports"}; c.NameHeader = "X-Key-Name"; c.Strip = true },
			want:   auth.Decision{Result: auth.Forbidden, Identity: "billing", Reason: "forbidden"}, keyKept: true,
		},
		{name: "unknown key", values: []string{"sk_live_guess"}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
		// Lookup goes through the hash: the stored hash itself, in any spelling, is no key.
		{name: "stored hash as hex", values: []string{hex.EncodeToString(billingHash[:])}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
		{name: "stored hash as raw bytes", values: []string{string(billingHash[:])}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
		{name: "last byte changed", values: []string{nearMiss}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
		{name: "prefix of a key", values: []string{billingKey[:len(billingKey)-1]}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
		{name: "key with a suffix", values: []string{billingKey + "x"}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
		{name: "key in another case", values: []string{strings.ToUpper(billingKey)}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, keyKept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.modify != nil {
				tt.modify(cfg)
			}
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, v := range tt.values {
				r.Header.Add("X-Api-Key", v)
			}
			r.Header.Set("Accept", "*/*")
			got := m.Authenticate(httptest.NewRecorder(), r, &filter.Request{})
			if got != tt.want {
				t.Fatalf("decision %+v, want %+v", got, tt.want)
			}
			want := http.Header{"Accept": {"*/*"}}
			for k, v := range tt.wantHeader {
				want[k] = v
			}
			if tt.keyKept {
				want["X-Api-Key"] = tt.values
			}
			if !headersEqual(r.Header, want) {
				t.Errorf("headers after Authenticate %v, want %v", r.Header, want)
			}
		})
	}
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestChallengeAndHeaders(t *testing.T) {
	cfg := testConfig()
	cfg.Header = "x-token"
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != config.AuthAPIKey {
		t.Errorf("Name = %q", m.Name())
	}
	for _, d := range []auth.Decision{{Result: auth.Skipped}, {Result: auth.Invalid}} {
		if got := m.Challenge(d); got != `APIKey header="X-Token"` {
			t.Errorf("Challenge(%v) = %q", d, got)
		}
	}
	if h := m.IdentityHeaders(); h != nil {
		t.Errorf("IdentityHeaders without name_header = %q", h)
	}
	cfg.NameHeader = "x-key-name"
	if m, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if h := m.IdentityHeaders(); !slices.Equal(h, []string{"X-Key-Name"}) {
		t.Errorf("IdentityHeaders = %q", h)
	}
}

func TestEmptyKeysFileAdmitsNobody(t *testing.T) {
	m, err := New(&config.APIKeyAuth{Header: "X-Api-Key"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Api-Key", billingKey)
	if d := m.Authenticate(nil, r, nil); d.Result != auth.Invalid {
		t.Errorf("decision %+v, want invalid", d)
	}
}

func TestAdmitDoesNotAllocate(t *testing.T) {
	m, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Api-Key", billingKey)
	if allocs := testing.AllocsPerRun(100, func() { m.Authenticate(nil, r, nil) }); allocs != 0 {
		t.Errorf("an admitted key allocates %v times per request", allocs)
	}
}

// FuzzAuthenticate: whatever the header holds, only the exact key is admitted.
func FuzzAuthenticate(f *testing.F) {
	m, err := New(testConfig())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{billingKey, billingKey[:len(billingKey)-1], billingKey + "\x00", "", strings.ToUpper(billingKey)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["X-Api-Key"] = []string{value}
		d := m.Authenticate(nil, r, nil)
		admitted := value == billingKey || value == reportsKey
		if (d.Result == auth.Admitted) != admitted {
			t.Fatalf("%q: %+v", value, d)
		}
	})
}
