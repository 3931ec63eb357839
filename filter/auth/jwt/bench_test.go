package jwt

import (
	"testing"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// BenchmarkAuthenticate is the success path with a cached key, one claims_to_headers
// header: "verify" is a token seen for the first time (extraction, parse, signature check,
// claims; the signature dominates), "cached" the same token again (a SHA-256 and a lookup
// in the verified-token cache).
func BenchmarkAuthenticate(b *testing.B) {
	rs, ec, ed := rsaSigner(b), ecSigner(b), edSigner(b)
	set := staticKeySet(b, jwksJSON(b, rs, ec, ed))
	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.ClaimsToHeaders = map[string]string{"sub": "X-User-Id"}
	m := mustNew(b, cfg, set)
	for _, s := range []signer{rs, ec, ed} {
		for _, cached := range []bool{false, true} {
			name := s.alg + "/verify"
			if cached {
				name = s.alg + "/cached"
			}
			b.Run(name, func(b *testing.B) {
				r := bearer(s.sign(b, validClaims()))
				q := &filter.Request{}
				b.ReportAllocs()
				for b.Loop() {
					if !cached {
						m.verified.cache.Purge()
					}
					if d := m.Authenticate(nil, r, q); d.Result != auth.Admitted {
						b.Fatalf("%+v", d)
					}
				}
			})
		}
	}
}

// BenchmarkRefused is the cost of refusing garbage, a bad signature and an unknown kid, the
// shapes of a flood of forged tokens.
func BenchmarkRefused(b *testing.B) {
	rs := rsaSigner(b)
	set := staticKeySet(b, jwksJSON(b, rs))
	m := mustNew(b, testConfig("http://127.0.0.1:1/jwks"), set)
	good := rs.sign(b, validClaims())
	for _, tc := range []struct{ name, token string }{
		{"garbage", "not.a.token"},
		{"bad_signature", good[:len(good)-4] + "AAAA"},
		// Once the refresh limit is spent, an unknown kid costs a parse and a lookup.
		{"unknown_kid", func() string { s := rs; s.kid = "unknown"; return s.sign(b, validClaims()) }()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := bearer(tc.token)
			b.ReportAllocs()
			for b.Loop() {
				if d := m.Authenticate(nil, r, &filter.Request{}); d.Result != auth.Invalid {
					b.Fatalf("%+v", d)
				}
			}
		})
	}
}
