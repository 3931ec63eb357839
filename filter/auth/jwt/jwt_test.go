package jwt

import (
	"context"
	"crypto/x509"
	"encoding/base64"
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
		{"no jwks_url", func(c *config.JWTAuth) { c.JWKSURL = "" }, set, "jwks_url"},
		{"jwks_url not http", func(c *config.JWTAuth) { c.JWKSURL = "file:///etc/jwks.json" }, set, "jwks_url"},
		{"jwks_url without host", func(c *config.JWTAuth) { c.JWKSURL = "https:///jwks" }, set, "jwks_url"},
		{"negative leeway", func(c *config.JWTAuth) { c.Leeway = -time.Second }, set, "leeway"},
		{"from without name", func(c *config.JWTAuth) { c.From = "header:" }, set, "header:NAME"},
		{"from unknown source", func(c *config.JWTAuth) { c.From = "body:token" }, set, "not header, query or cookie"},
		{"from bad header", func(c *config.JWTAuth) { c.From = "header:X Token" }, set, "not a header name"},
		{"from bad cookie", func(c *config.JWTAuth) { c.From = "cookie:a;b" }, set, "not a cookie name"},
		{"claim to a framing header", func(c *config.JWTAuth) { c.ClaimsToHeaders = map[string]string{"sub": "content-length"} }, set, "frames the request"},
		{"claim to the token header", func(c *config.JWTAuth) { c.ClaimsToHeaders = map[string]string{"sub": "Authorization"} }, set, "Authorization is the token's own header"},
		{"empty required value", func(c *config.JWTAuth) { c.RequiredClaims = map[string]string{"scope": ""} }, set, "required_claims"},
		{"empty required claim", func(c *config.JWTAuth) { c.RequiredClaims = map[string]string{"": "x"} }, set, "required_claims"},
		{"empty claim to header", func(c *config.JWTAuth) { c.ClaimsToHeaders = map[string]string{"": "X-A"} }, set, "empty claim name"},
		{"bad claim header", func(c *config.JWTAuth) { c.ClaimsToHeaders = map[string]string{"sub": "X-User\r\nId"} }, set, "not a valid header name"},
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
		{"critical header extension", func() string {
			tok := jwtv5.NewWithClaims(jwtv5.SigningMethodRS256, valid)
			tok.Header["kid"], tok.Header["crit"], tok.Header["exp-ext"] = rs.kid, []string{"exp-ext"}, 1
			s, err := tok.SignedString(rsaKey)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), auth.Invalid, "invalid"},
		{"key named by the token (jwk header) is ignored", func() string {
			attacker := rsaSigner2(t)
			tok := jwtv5.NewWithClaims(jwtv5.SigningMethodRS256, valid)
			tok.Header["kid"] = rs.kid
			tok.Header["jwk"] = map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(rsaKey2.N.Bytes()), "e": "AQAB"}
			s, err := tok.SignedString(attacker.private)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), auth.Invalid, "invalid"},
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
