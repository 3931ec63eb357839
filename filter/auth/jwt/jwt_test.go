package jwt

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

func mustNew(t testing.TB, cfg *config.JWTAuth, set *KeySet) *Mechanism {
	t.Helper()
	m, err := New(cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewRefusesBadConfig(t *testing.T) {
	set := staticKeySet(t, jwksJSON(t, rsaSigner(t)))
	for _, tc := range []struct {
		name string
		edit func(c *config.JWTAuth)
		set  *KeySet
		want string
	}{
		{"no key set", func(c *config.JWTAuth) {}, nil, "key set"},
		{"no algorithms", func(c *config.JWTAuth) { c.Algorithms = nil }, set, "no algorithms"},
		{"none", func(c *config.JWTAuth) { c.Algorithms = []string{"none"} }, set, `"none"`},
		{"HS256", func(c *config.JWTAuth) { c.Algorithms = []string{"RS256", "HS256"} }, set, `"HS256"`},
		{"unknown algorithm", func(c *config.JWTAuth) { c.Algorithms = []string{"RS999"} }, set, `"RS999"`},
		{"negative leeway", func(c *config.JWTAuth) { c.Leeway = -time.Second }, set, "leeway"},
		{"from without name", func(c *config.JWTAuth) { c.From = "header:" }, set, "header:NAME"},
		{"from unknown source", func(c *config.JWTAuth) { c.From = "body:token" }, set, "not header, query or cookie"},
		{"from bad header", func(c *config.JWTAuth) { c.From = "header:X Token" }, set, "not a header name"},
		{"from bad cookie", func(c *config.JWTAuth) { c.From = "cookie:a;b" }, set, "not a cookie name"},
		{"bad claim header", func(c *config.JWTAuth) { c.ClaimsToHeaders = map[string]string{"sub": "X-User\r\nId"} }, set, "not a header name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1/jwks")
			tc.edit(cfg)
			_, err := New(cfg, tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := New(nil, set); err == nil {
		t.Fatal("New(nil config) succeeded")
	}
}

// hmacToken signs claims with HS256 and secret, under kid: the alg confusion attack.
func hmacToken(t testing.TB, kid string, secret []byte, claims jwtv5.MapClaims) string {
	t.Helper()
	tok := jwtv5.NewWithClaims(jwtv5.SigningMethodHS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedToken is an alg none token (golang-jwt signs none only when asked to).
func unsignedToken(t testing.TB, kid string, claims jwtv5.MapClaims) string {
	t.Helper()
	tok := jwtv5.NewWithClaims(jwtv5.SigningMethodNone, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(jwtv5.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuthenticateAttacks is the table of tokens that must be refused, with the reason the
// metrics get, beside the tokens that must pass.
func TestAuthenticateAttacks(t *testing.T) {
	rs, ec, ed := rsaSigner(t), ecSigner(t), edSigner(t)
	// ps is the RSA key signing PS256 while its JWK says RS256.
	ps := rs
	ps.alg, ps.method = "PS256", jwtv5.SigningMethodPS256
	// A key published without alg, usable by any allowed alg of its type.
	noAlg := rsaSigner2(t)
	noAlg.kid, noAlg.jwkAlg = "rsa-no-alg", ""
	jwks := jwksJSON(t, rs, ec, ed, noAlg)
	set := staticKeySet(t, jwks)

	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.Algorithms = append(cfg.Algorithms, "PS256")
	m := mustNew(t, cfg, set)

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	now := time.Now()
	valid := validClaims()

	// tampered swaps the payload of a good token for another one, keeping the signature.
	tampered := func() string {
		good := strings.Split(rs.sign(t, valid), ".")
		other := strings.Split(rs.sign(t, with(valid, "sub", "mallory")), ".")
		return good[0] + "." + other[1] + "." + good[2]
	}()
	// kidSwap is signed by the RSA key but names the EC key's kid.
	kidSwap := func() string {
		s := rs
		s.kid = ec.kid
		return s.sign(t, valid)
	}()
	noKid := func() string {
		tok := jwtv5.NewWithClaims(jwtv5.SigningMethodES256, valid)
		s, err := tok.SignedString(ecKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()

	for _, tc := range []struct {
		name   string
		token  string
		result auth.Result
		reason string
	}{
		{"RS256", rs.sign(t, valid), auth.Admitted, "ok"},
		{"ES256", ec.sign(t, valid), auth.Admitted, "ok"},
		{"EdDSA", ed.sign(t, valid), auth.Admitted, "ok"},
		{"key published without alg", noAlg.sign(t, valid), auth.Admitted, "ok"},
		{"no kid, tried against the keys of its alg", noKid, auth.Admitted, "ok"},
		{"aud array holding one audience", rs.sign(t, with(valid, "aud", []string{"other", "admin-api"})), auth.Admitted, "ok"},
		{"expired within leeway", rs.sign(t, with(valid, "exp", now.Add(-10*time.Second).Unix())), auth.Admitted, "ok"},
		{"nbf within leeway", rs.sign(t, with(valid, "nbf", now.Add(10*time.Second).Unix())), auth.Admitted, "ok"},
		{"no sub", rs.sign(t, with(valid, "sub", nil)), auth.Admitted, "ok"},

		{"alg none", unsignedToken(t, rs.kid, valid), auth.Invalid, "invalid"},
		{"alg none without kid", unsignedToken(t, "", valid), auth.Invalid, "invalid"},
		{"HS256 with the RSA public key PEM as secret", hmacToken(t, rs.kid, pubPEM, valid), auth.Invalid, "invalid"},
		{"HS256 with the RSA public key DER as secret", hmacToken(t, rs.kid, pubDER, valid), auth.Invalid, "invalid"},
		{"HS256 with the RSA modulus as secret", hmacToken(t, rs.kid, rsaKey.N.Bytes(), valid), auth.Invalid, "invalid"},
		{"PS256 signed with a JWK whose alg is RS256", ps.sign(t, valid), auth.Invalid, "invalid"},
		{"signed by one key, kid of another", kidSwap, auth.Invalid, "invalid"},
		{"tampered payload", tampered, auth.Invalid, "invalid"},
		{"unknown kid", func() string { s := rs; s.kid = "nope"; return s.sign(t, valid) }(), auth.Invalid, "unknown_key"},
		{"expired", rs.sign(t, with(valid, "exp", now.Add(-time.Minute).Unix())), auth.Invalid, "expired"},
		{"no exp", rs.sign(t, with(valid, "exp", nil)), auth.Invalid, "invalid"},
		{"exp not a number", rs.sign(t, with(valid, "exp", "tomorrow")), auth.Invalid, "invalid"},
		{"nbf in the future", rs.sign(t, with(valid, "nbf", now.Add(time.Minute).Unix())), auth.Invalid, "invalid"},
		{"iat in the future", rs.sign(t, with(valid, "iat", now.Add(time.Minute).Unix())), auth.Invalid, "invalid"},
		{"wrong issuer", rs.sign(t, with(valid, "iss", "https://evil.test/")), auth.Invalid, "wrong_issuer"},
		{"no issuer", rs.sign(t, with(valid, "iss", nil)), auth.Invalid, "wrong_issuer"},
		{"wrong audience", rs.sign(t, with(valid, "aud", "billing-api")), auth.Invalid, "wrong_audience"},
		{"no audience", rs.sign(t, with(valid, "aud", nil)), auth.Invalid, "wrong_audience"},
		{"empty audience array", rs.sign(t, with(valid, "aud", []string{})), auth.Invalid, "wrong_audience"},
		{"empty issuer", rs.sign(t, with(valid, "iss", "")), auth.Invalid, "wrong_issuer"},
		{"audience array without ours", rs.sign(t, with(valid, "aud", []string{"a", "b"})), auth.Invalid, "wrong_audience"},
		{"sub not a string", rs.sign(t, with(valid, "sub", 42)), auth.Invalid, "invalid"},
		{"sub with a newline", rs.sign(t, with(valid, "sub", "alice\nadmin")), auth.Invalid, "invalid"},
		{"sub too long", rs.sign(t, with(valid, "sub", strings.Repeat("a", maxSubjectBytes+1))), auth.Invalid, "invalid"},
		{"oversized", rs.sign(t, with(valid, "pad", strings.Repeat("x", maxTokenBytes))), auth.Invalid, "invalid"},
		{"empty", "", auth.Invalid, "invalid"},
		{"garbage", "not.a.token", auth.Invalid, "invalid"},
		{"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", auth.Invalid, "invalid"},
		{"four segments", rs.sign(t, valid) + ".x", auth.Invalid, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bearer(tc.token)
			d := m.Authenticate(httptest.NewRecorder(), r, &filter.Request{})
			if d.Result != tc.result || d.Reason != tc.reason {
				t.Fatalf("Authenticate = %+v, want result %d reason %q", d, tc.result, tc.reason)
			}
			if d.Result == auth.Admitted {
				if sub, _ := validClaims()["sub"].(string); d.Identity != sub && tc.name != "no sub" {
					t.Fatalf("Identity = %q, want %q", d.Identity, sub)
				}
			}
			if d.Result != auth.Admitted && d.Identity != "" {
				t.Fatalf("refused with identity %q", d.Identity)
			}
		})
	}
}

// TestAlgorithmAllowList: a key the JWKS holds is still refused when its alg is not in the
// route's list.
func TestAlgorithmAllowList(t *testing.T) {
	rs, ec := rsaSigner(t), ecSigner(t)
	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.Algorithms = []string{"ES256"}
	m := mustNew(t, cfg, staticKeySet(t, jwksJSON(t, rs, ec)))
	if d := m.Authenticate(nil, bearer(rs.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Invalid {
		t.Fatalf("RS256 token on an ES256-only route: %+v", d)
	}
	if d := m.Authenticate(nil, bearer(ec.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("ES256 token: %+v", d)
	}
}

// TestNoIssuerNoAudience: without issuer and audiences configured, neither is checked.
func TestNoIssuerNoAudience(t *testing.T) {
	rs := rsaSigner(t)
	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.Issuer, cfg.Audiences = "", nil
	m := mustNew(t, cfg, staticKeySet(t, jwksJSON(t, rs)))
	tok := rs.sign(t, with(validClaims(), "iss", "anyone", "aud", nil))
	if d := m.Authenticate(nil, bearer(tok), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("got %+v", d)
	}
}

func TestTokenSources(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	tok := rs.sign(t, validClaims())
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))
	for _, tc := range []struct {
		name   string
		from   string
		edit   func(r *http.Request)
		result auth.Result
	}{
		{"bearer", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, auth.Admitted},
		{"bearer lower case", "header:authorization", func(r *http.Request) { r.Header.Set("Authorization", "bearer  "+tok) }, auth.Admitted},
		{"bearer upper case", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "BEARER "+tok) }, auth.Admitted},
		{"basic on the same header is skipped", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", basic) }, auth.Skipped},
		{"scheme only", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer") }, auth.Invalid},
		{"scheme and spaces", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer   ") }, auth.Invalid},
		{"bearer prefix of another scheme", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearerx "+tok) }, auth.Skipped},
		{"missing", "header:Authorization", func(r *http.Request) {}, auth.Skipped},
		{"raw header", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", tok) }, auth.Admitted},
		{"raw header with Bearer is not a token", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", "Bearer "+tok) }, auth.Invalid},
		{"raw header empty", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", " ") }, auth.Skipped},
		{"query", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "a=1&access_token=" + tok + "&b=2" }, auth.Admitted},
		{"query escaped key", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access%5Ftoken=" + tok }, auth.Admitted},
		{"query missing", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "a=1" }, auth.Skipped},
		{"query empty", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access_token=" }, auth.Skipped},
		{"query bad escape", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access_token=%zz" }, auth.Invalid},
		{"cookie", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "a=1; session="+tok+"; b=2") }, auth.Admitted},
		{"cookie quoted", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", `session="`+tok+`"`) }, auth.Admitted},
		{"cookie on a second line", "cookie:session", func(r *http.Request) { r.Header["Cookie"] = []string{"a=1", "session=" + tok} }, auth.Admitted},
		{"cookie missing", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "sessionx="+tok) }, auth.Skipped},
		{"cookie garbage", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "session=garbage") }, auth.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1/jwks")
			cfg.From = tc.from
			m := mustNew(t, cfg, set)
			r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
			tc.edit(r)
			d := m.Authenticate(nil, r, &filter.Request{})
			if d.Result != tc.result {
				t.Fatalf("Authenticate = %+v, want result %d", d, tc.result)
			}
			if d.Result == auth.Skipped && d.Reason != "missing" {
				t.Fatalf("skipped with reason %q", d.Reason)
			}
		})
	}
}

func TestStrip(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	tok := rs.sign(t, validClaims())
	for _, tc := range []struct {
		name  string
		from  string
		edit  func(r *http.Request)
		check func(t *testing.T, r *http.Request)
	}{
		{"bearer", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) },
			func(t *testing.T, r *http.Request) {
				if _, ok := r.Header["Authorization"]; ok {
					t.Fatal("Authorization kept")
				}
			}},
		{"raw header", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", tok); r.Header.Set("X-Other", "1") },
			func(t *testing.T, r *http.Request) {
				if r.Header.Get("X-Token") != "" || r.Header.Get("X-Other") != "1" {
					t.Fatalf("headers after strip: %v", r.Header)
				}
			}},
		{"query", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "z=1&access_token=" + tok + "&a=%20b&access_token=x" },
			func(t *testing.T, r *http.Request) {
				if r.URL.RawQuery != "z=1&a=%20b" {
					t.Fatalf("RawQuery = %q", r.URL.RawQuery)
				}
			}},
		{"query only parameter", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok },
			func(t *testing.T, r *http.Request) {
				if r.URL.RawQuery != "" {
					t.Fatalf("RawQuery = %q", r.URL.RawQuery)
				}
			}},
		{"cookie", "cookie:session", func(r *http.Request) { r.Header["Cookie"] = []string{"a=1; session=" + tok + "; b=2", "session=" + tok} },
			func(t *testing.T, r *http.Request) {
				if got := r.Header["Cookie"]; len(got) != 1 || got[0] != "a=1; b=2" {
					t.Fatalf("Cookie = %q", got)
				}
			}},
		{"only cookie", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "session="+tok) },
			func(t *testing.T, r *http.Request) {
				if _, ok := r.Header["Cookie"]; ok {
					t.Fatalf("Cookie = %q", r.Header["Cookie"])
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1/jwks")
			cfg.From, cfg.Strip = tc.from, true
			m := mustNew(t, cfg, set)
			r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
			tc.edit(r)
			if d := m.Authenticate(nil, r, &filter.Request{}); d.Result != auth.Admitted {
				t.Fatalf("Authenticate = %+v", d)
			}
			tc.check(t, r)
		})
	}
	// Without strip, and when refusing, the request is left alone.
	cfg := testConfig("http://127.0.0.1:1/jwks")
	m := mustNew(t, cfg, set)
	for _, token := range []string{tok, "garbage"} {
		r := bearer(token)
		m.Authenticate(nil, r, &filter.Request{})
		if r.Header.Get("Authorization") != "Bearer "+token {
			t.Fatalf("token %q: Authorization changed to %q", token, r.Header.Get("Authorization"))
		}
	}
	cfg.Strip = true
	m = mustNew(t, cfg, set)
	r := bearer("garbage")
	m.Authenticate(nil, r, &filter.Request{})
	if r.Header.Get("Authorization") == "" {
		t.Fatal("a refused token was stripped")
	}
}

func TestClaimsToHeaders(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.ClaimsToHeaders = map[string]string{
		"sub": "x-user-id", "id": "X-Id", "admin": "X-Admin", "roles": "X-Roles", "org": "X-Org",
		"crlf": "X-Crlf", "nul": "X-Nul", "tab": "X-Tab", "absent": "X-Absent", "nested": "X-Nested",
		"empty": "X-Empty", "null": "X-Null", "ratio": "X-Ratio",
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
	)
	claims["null"] = nil
	r := bearer(rs.sign(t, claims))
	if d := m.Authenticate(nil, r, &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("Authenticate = %+v", d)
	}
	want := map[string]string{
		"X-User-Id": "alice", "X-Id": "12345678901234567890", "X-Admin": "true", "X-Roles": "read,write,3",
		"X-Ratio": "0.5",
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

func TestChallengeAndName(t *testing.T) {
	m := mustNew(t, testConfig("http://127.0.0.1:1/jwks"), staticKeySet(t, jwksJSON(t, rsaSigner(t))))
	if m.Name() != "jwt" {
		t.Fatalf("Name = %q", m.Name())
	}
	for _, tc := range []struct {
		d    auth.Decision
		want string
	}{
		{auth.Decision{Result: auth.Skipped}, `Bearer realm="switchyard"`},
		{auth.Decision{Result: auth.Invalid, Reason: "expired"}, `Bearer realm="switchyard", error="invalid_token"`},
		{auth.Decision{Result: auth.Unavailable}, `Bearer realm="switchyard"`},
	} {
		if got := m.Challenge(tc.d); got != tc.want {
			t.Errorf("Challenge(%+v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if m.IdentityHeaders() != nil {
		t.Fatalf("IdentityHeaders = %v, want none", m.IdentityHeaders())
	}
}

// TestUnavailableBeforeFirstLoad: while no key set has loaded, a token gets 503's result,
// not 401's, and a request whose context ends while the first fetch runs stops waiting.
func TestUnavailableBeforeFirstLoad(t *testing.T) {
	js := newJWKSServer(t, nil)
	js.serve(http.StatusInternalServerError, []byte("down"))
	sets := newKeySets(t)
	cfg := testConfig(js.URL)
	set := sets.Get(cfg)
	m := mustNew(t, cfg, set)
	tok := rsaSigner(t).sign(t, validClaims())
	waitLoaded(t, set)
	d := m.Authenticate(nil, bearer(tok), &filter.Request{})
	if d.Result != auth.Unavailable || d.Reason != "unavailable" {
		t.Fatalf("Authenticate = %+v, want Unavailable", d)
	}
	// No token, no opinion: still Skipped.
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/", nil)
	if d := m.Authenticate(nil, r, &filter.Request{}); d.Result != auth.Skipped {
		t.Fatalf("no token: %+v", d)
	}

	// A first fetch held by the server: the request waits only as long as its context.
	js2 := newJWKSServer(t, jwksJSON(t, rsaSigner(t)))
	release := js2.hold()
	defer release()
	cfg2 := testConfig(js2.URL)
	set2 := sets.Get(cfg2) // returns while the fetch is held: Get does not wait for it
	m2 := mustNew(t, cfg2, set2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := m2.Authenticate(nil, bearer(tok).WithContext(ctx), &filter.Request{}); d.Result != auth.Unavailable {
		t.Fatalf("during the first fetch: %+v", d)
	}
	release()
	// Once it lands, a request that came in during it is admitted.
	if d := m2.Authenticate(nil, bearer(tok), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("after the first fetch: %+v", d)
	}
}
