package jwt

import (
	"crypto/sha256"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// verifiedCacheSize bounds the tokens one mechanism remembers as verified. At about 200
// bytes an entry, 10,000 is 2 MB per route with jwt, and covers the active tokens of a busy
// API (clients reuse a token for its lifetime, minutes to an hour).
const verifiedCacheSize = 10_000

// verifiedTokens remembers tokens that were admitted, so a client that sends the same token
// again costs a SHA-256 and a lookup instead of a signature check (an RS256 verification is
// about 60 us of CPU, most of what JWT auth costs per request; Envoy's jwt_authn has the
// same cache). Only admitted tokens are kept: a forged or refused token is verified every
// time it is sent, so the cache never turns a refusal into an admission.
//
// An entry holds only while the key set is the one that verified it (a refresh that drops
// the signing key, after a rotation, ends it) and until the token's exp plus the leeway, the
// instant the parser would start refusing it. Claims that can only become valid with time
// (nbf, iat) were valid when it was verified and stay so. The key is the SHA-256 of the whole
// token, so only the exact same bytes hit.
type verifiedTokens struct {
	cache  *lru.Cache[[sha256.Size]byte, *verifiedToken]
	leeway time.Duration
	now    func() time.Time
}

// verifiedToken is what an admitted token gives each request that presents it again.
type verifiedToken struct {
	keys         *keySnapshot // the key set it was verified with
	expires      time.Time    // exp + leeway
	subject      string
	headerValues []headerValueOf // claims_to_headers values, in claimHeaders order
}

// headerValueOf is one claims_to_headers value; ok is false when the claim gave none.
type headerValueOf struct {
	value string
	ok    bool
}

func newVerifiedTokens(leeway time.Duration) *verifiedTokens {
	cache, err := lru.New[[sha256.Size]byte, *verifiedToken](verifiedCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &verifiedTokens{cache: cache, leeway: leeway, now: time.Now}
}

// lookup returns the entry of token if it still holds with keys in force.
func (c *verifiedTokens) lookup(key [sha256.Size]byte, keys *keySnapshot) *verifiedToken {
	v, ok := c.cache.Get(key)
	if !ok {
		return nil
	}
	if v.keys != keys || !c.now().Before(v.expires) {
		c.cache.Remove(key)
		return nil
	}
	return v
}

// remember keeps an admitted token verified with keys; claims must hold an exp (the parser
// requires one).
func (c *verifiedTokens) remember(key [sha256.Size]byte, keys *keySnapshot, claims jwtv5.MapClaims, subject string, values []headerValueOf) {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return
	}
	c.cache.Add(key, &verifiedToken{keys: keys, expires: exp.Add(c.leeway), subject: subject, headerValues: values})
}
