package jwt

import (
	"sync/atomic"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// countingKeySet is a static key set whose snapshot counts signature verifications (each
// parse that reaches a key asks the keyfunc once).
func countingKeySet(t *testing.T, signers ...signer) (*KeySet, *atomic.Int64) {
	t.Helper()
	set := staticKeySet(t, jwksJSON(t, signers...))
	var verifications atomic.Int64
	recount := func() {
		inner := set.current.Load()
		set.current.Store(&keySnapshot{keys: inner.keys, keyfunc: func(tok *jwtv5.Token) (any, error) {
			verifications.Add(1)
			return inner.keyfunc(tok)
		}})
	}
	recount()
	return set, &verifications
}

// TestVerifiedTokenCache: a token admitted once is admitted again without a signature check,
// with the same upstream edits, until its exp plus the leeway or until the key set changes;
// refused tokens are checked every time they come.
func TestVerifiedTokenCache(t *testing.T) {
	rs := rsaSigner(t)
	set, verifications := countingKeySet(t, rs)
	cfg := testConfig("http://127.0.0.1:1/jwks")
	cfg.ClaimsToHeaders = map[string]string{"sub": "X-User-Id"}
	cfg.RequiredClaims = map[string]string{"scope": "read"}
	cfg.Strip = true
	m := mustNew(t, cfg, set)
	good := rs.sign(t, with(validClaims(), "scope", "read write"))

	admit := func(what, token string, wantVerifications int64) {
		t.Helper()
		r := bearer(token)
		r.Header.Set("X-User-Id", "spoofed") // the filter scrubs it; the mechanism must overwrite anyway
		d := m.Authenticate(nil, r, &filter.Request{})
		if d.Result != auth.Admitted || d.Identity != "alice" {
			t.Fatalf("%s: %+v", what, d)
		}
		if got := r.Header.Values("X-User-Id"); len(got) != 1 || got[0] != "alice" || r.Header.Get("Authorization") != "" {
			t.Fatalf("%s: upstream X-User-Id %q Authorization %q", what, got, r.Header.Get("Authorization"))
		}
		if got := verifications.Load(); got != wantVerifications {
			t.Fatalf("%s: %d signature checks so far, want %d", what, got, wantVerifications)
		}
	}
	admit("first use", good, 1)
	admit("again: from the cache", good, 1)
	admit("and again", good, 1)

	// Past exp + leeway by the cache's clock: checked again (and admitted: the parser's
	// clock is the real one).
	real := m.verified.now
	m.verified.now = func() time.Time { return real().Add(time.Hour + 31*time.Second) }
	admit("after its exp by the cache's clock", good, 2)
	m.verified.now = real
	admit("cached again", good, 2)

	// A refreshed key set (same keys) ends every entry.
	snap := set.current.Load()
	set.current.Store(&keySnapshot{keys: snap.keys, keyfunc: snap.keyfunc})
	admit("after a key set refresh", good, 3)
	admit("cached under the new set", good, 3)

	refused := []struct {
		name   string
		token  string
		result auth.Result
	}{
		{"bad signature", good[:len(good)-4] + "AAAA", auth.Invalid},
		{"missing scope", rs.sign(t, validClaims()), auth.Forbidden},
	}
	for _, tc := range refused {
		for range 2 {
			before := verifications.Load()
			if d := m.Authenticate(nil, bearer(tc.token), &filter.Request{}); d.Result != tc.result {
				t.Fatalf("%s: %+v", tc.name, d)
			}
			if verifications.Load() != before+1 {
				t.Fatalf("%s: not checked again (a refusal must never be cached)", tc.name)
			}
		}
	}
}

// TestVerifiedTokenCacheBounded: the cache holds at most verifiedCacheSize tokens.
func TestVerifiedTokenCacheBounded(t *testing.T) {
	c := newVerifiedTokens(0)
	exp := jwtv5.MapClaims{"exp": float64(time.Now().Add(time.Hour).Unix())}
	for i := range verifiedCacheSize + 100 {
		var key [32]byte
		key[0], key[1], key[2] = byte(i), byte(i>>8), byte(i>>16)
		c.remember(key, nil, exp, "s", nil)
	}
	if n := c.cache.Len(); n != verifiedCacheSize {
		t.Fatalf("%d entries, want %d", n, verifiedCacheSize)
	}
}
