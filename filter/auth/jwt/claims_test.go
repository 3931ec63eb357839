package jwt

import (
	"encoding/json"
	"testing"

	jwtv5 "github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

func TestClaimsToHeaders(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.ClaimsToHeaders = map[string]string{
		"sub": "x-user-id", "id": "X-Id", "admin": "X-Admin", "roles": "X-Roles", "org": "X-Org",
		"crlf": "X-Crlf", "nul": "X-Nul", "tab": "X-Tab", "absent": "X-Absent", "nested": "X-Nested",
		"empty": "X-Empty", "null": "X-Null", "ratio": "X-Ratio", "groups": "X-Groups", "title": "X-Title",
	}
	m := mustNew(t, cfg, set)
	claims := with(validClaims(),
		"id", json.Number("12345678901234567890"), // beyond float64's exact integers: must reach the header as sent
		"admin", true,
		"roles", []any{"read", "write", 3},
		"org", map[string]any{"id": 1},
		"crlf", "a\r\nX-Injected: 1",
		"nul", "a\x00b",
		"tab", "a\tb",
		"nested", []any{"a", []any{"b"}},
		"empty", "",
		"ratio", 0.5,
		"groups", []any{"eng", "admins,ops"}, // joined, would read as three groups upstream
		"title", "Head of R&D, Europe", // a single string keeps its comma: one value
	)
	claims["null"] = nil
	r := bearer(rs.sign(t, claims))
	if d := m.Authenticate(nil, r, &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("Authenticate = %+v", d)
	}
	want := map[string]string{
		"X-User-Id": "alice", "X-Id": "12345678901234567890", "X-Admin": "true", "X-Roles": "read,write,3",
		"X-Ratio": "0.5", "X-Title": "Head of R&D, Europe",
	}
	for _, h := range m.IdentityHeaders() {
		got, ok := r.Header[h]
		w, wantSet := want[h]
		switch {
		case wantSet && (!ok || len(got) != 1 || got[0] != w):
			t.Errorf("%s = %q, want %q", h, got, w)
		case !wantSet && ok:
			t.Errorf("%s = %q, want it unset", h, got)
		}
	}
	if len(m.IdentityHeaders()) != len(cfg.ClaimsToHeaders) {
		t.Fatalf("IdentityHeaders = %v", m.IdentityHeaders())
	}
	if r.Header.Get("X-Injected") != "" {
		t.Fatal("a claim injected a header")
	}
}

func TestRequiredClaims(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.RequiredClaims = map[string]string{"scope": "users:read"}
	cfg.ClaimsToHeaders = map[string]string{"sub": "X-User-Id"}
	scoped := mustNew(t, cfg, set)
	cfg = testConfig("http://127.0.0.1:1/jwks")
	cfg.RequiredClaims = map[string]string{"roles": "admin", "email_verified": "true", "tenant": "42"}
	several := mustNew(t, cfg, set)
	for _, tc := range []struct {
		name   string
		m      *Mechanism
		claims jwtv5.MapClaims
		result auth.Result
	}{
		{"scope equal", scoped, with(validClaims(), "scope", "users:read"), auth.Admitted},
		{"scope among words", scoped, with(validClaims(), "scope", "openid users:read  users:write"), auth.Admitted},
		{"scope prefix is not a word", scoped, with(validClaims(), "scope", "users:readwrite"), auth.Forbidden},
		{"scope as array", scoped, with(validClaims(), "scope", []string{"openid", "users:read"}), auth.Admitted},
		{"scope absent", scoped, validClaims(), auth.Forbidden},
		{"scope object", scoped, with(validClaims(), "scope", map[string]any{"users:read": true}), auth.Forbidden},
		{"all held", several, with(validClaims(), "roles", []string{"user", "admin"}, "email_verified", true, "tenant", 42), auth.Admitted},
		{"one missing", several, with(validClaims(), "roles", []string{"user", "admin"}, "email_verified", false, "tenant", 42), auth.Forbidden},
		{"array without it", several, with(validClaims(), "roles", []string{"user"}, "email_verified", true, "tenant", 42), auth.Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bearer(rs.sign(t, tc.claims))
			d := tc.m.Authenticate(nil, r, &filter.Request{})
			if d.Result != tc.result {
				t.Fatalf("Authenticate = %+v, want %d", d, tc.result)
			}
			if d.Identity != "alice" {
				t.Fatalf("Identity = %q, want alice", d.Identity)
			}
			if d.Result == auth.Forbidden {
				if d.Reason != "forbidden" || r.Header.Get("X-User-Id") != "" {
					t.Fatalf("forbidden: reason %q, X-User-Id %q", d.Reason, r.Header.Get("X-User-Id"))
				}
			}
		})
	}
}
