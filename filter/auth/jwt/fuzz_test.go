package jwt

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	jwtv5 "github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// FuzzAuthenticate feeds hostile bytes through token extraction and Authenticate for each
// token source. Properties: no panic; a known result and reason; admitted only with a token
// the test's keys signed (sub alice), with the identity header set and the token stripped;
// a refused request is left exactly as it came.
func FuzzAuthenticate(f *testing.F) {
	rs, ec, ed := rsaSigner(f), ecSigner(f), edSigner(f)
	set := staticKeySet(f, jwksJSON(f, rs, ec, ed))
	sources := []string{"header:Authorization", "header:X-Token", "query:access_token", "cookie:session"}
	mechanisms := make([]*Mechanism, len(sources))
	for i, from := range sources {
		cfg := testConfig("http://127.0.0.1:1/jwks")
		cfg.From, cfg.Strip = from, true
		cfg.ClaimsToHeaders = map[string]string{"sub": "X-User-Id", "roles": "X-Roles"}
		mechanisms[i] = mustNew(f, cfg, set)
	}
	for _, s := range []signer{rs, ec, ed} {
		tok := s.sign(f, validClaims())
		f.Add(byte(0), "Bearer "+tok)
		f.Add(byte(1), tok)
		f.Add(byte(2), "a=1&access_token="+tok)
		f.Add(byte(3), "a=1; session="+tok)
	}
	reasons := []string{"missing", "invalid", "expired", "unknown_key", "wrong_audience", "wrong_issuer", "forbidden", "ok"}
	f.Fuzz(func(t *testing.T, source byte, value string) {
		i := int(source) % len(sources)
		m := mechanisms[i]
		r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
		switch i {
		case 0:
			r.Header["Authorization"] = []string{value}
		case 1:
			r.Header["X-Token"] = []string{value}
		case 2:
			r.URL.RawQuery = value
		case 3:
			r.Header["Cookie"] = []string{value}
		}
		before := r.Header.Clone()
		rawQuery := r.URL.RawQuery

		d := m.Authenticate(nil, r, &filter.Request{})

		if !slices.Contains(reasons, d.Reason) {
			t.Fatalf("reason %q", d.Reason)
		}
		switch d.Result {
		case auth.Admitted:
			if d.Identity != "alice" || r.Header.Get("X-User-Id") != "alice" {
				t.Fatalf("admitted %q with X-User-Id %q", d.Identity, r.Header.Get("X-User-Id"))
			}
			if _, n := m.source.extract(r); n != carriedNone {
				t.Fatalf("token left in the request after strip: %v %q", r.Header, r.URL.RawQuery)
			}
		case auth.Skipped, auth.Invalid, auth.Forbidden:
			if !maps.EqualFunc(before, r.Header, slices.Equal) || r.URL.RawQuery != rawQuery {
				t.Fatalf("refused request changed: %v -> %v, %q -> %q", before, r.Header, rawQuery, r.URL.RawQuery)
			}
		default:
			t.Fatalf("result %d", d.Result)
		}
	})
}

// FuzzParseKeys feeds hostile JWKS documents to the key parser, which runs on whatever the
// JWKS URL answers. Properties: no panic; a set is either refused or holds 1 to maxKeys
// keys, each of which yields only a key that fits the alg asked for.
func FuzzParseKeys(f *testing.F) {
	rs, ec, ed := rsaSigner(f), ecSigner(f), edSigner(f)
	f.Add(jwksJSON(f, rs, ec, ed))
	f.Add(jwksJSON(f, ec))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"o","x":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AAAAAAAAAAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}],"x5c":["!"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		snap, err := parseKeys(body)
		if err != nil {
			return
		}
		if snap.keys < 1 || snap.keys > maxKeys {
			t.Fatalf("%d keys", snap.keys)
		}
		for _, alg := range []string{"RS256", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
			token := &jwtv5.Token{Method: jwtv5.GetSigningMethod(alg), Header: map[string]any{"alg": alg}}
			key, err := snap.keyfunc(token)
			if err != nil {
				continue
			}
			for _, k := range key.(jwtv5.VerificationKeySet).Keys {
				if !keyFits(alg, k) {
					t.Fatalf("%s got a %T", alg, k)
				}
			}
		}
	})
}
