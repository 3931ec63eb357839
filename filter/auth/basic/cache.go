package basic

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// cacheSize bounds the verified-credentials cache: far more users than an htpasswd file
// holds, about 2 MB at most.
const cacheSize = 10_000

// cacheKey is HMAC-SHA256(per-mechanism random key, user "\x00" password). Neither
// credential is kept in memory, and without the HMAC key nobody (a heap dump included) can
// test a password guess against an entry. User names with control characters are refused
// before this point, so "\x00" separates the two unambiguously.
type cacheKey [32]byte

// verified is what the cache remembers of a successful bcrypt check.
type verified struct {
	// name is the user's name, the identity a hit returns without allocating it again.
	name string
	// hash is the stored bcrypt hash the password was checked against: an entry only
	// counts while the user's hash is still this one, so a changed htpasswd entry (a new
	// password) invalidates it even before it expires.
	hash    string
	expires time.Time
}

// verifiedCache remembers successful checks for ttl, least recently used evicted first.
// It starts no goroutine: expiry is checked on lookup (hashicorp's expirable LRU runs a
// cleanup goroutine that never exits).
type verifiedCache struct {
	entries *lru.Cache[cacheKey, verified]
	ttl     time.Duration
	now     func() time.Time // time.Now; tests replace it
}

func newVerifiedCache(size int, ttl time.Duration) *verifiedCache {
	entries, err := lru.New[cacheKey, verified](size)
	if err != nil {
		// Only a size <= 0 fails, and every caller passes a positive constant.
		panic(err)
	}
	return &verifiedCache{entries: entries, ttl: ttl, now: time.Now}
}

// has returns the user name remembered for key when key was verified against hash within
// the last ttl.
func (c *verifiedCache) has(key cacheKey, hash []byte) (string, bool) {
	v, ok := c.entries.Get(key)
	if !ok {
		return "", false
	}
	if v.hash != string(hash) || !c.now().Before(v.expires) { // the conversion does not allocate
		c.entries.Remove(key)
		return "", false
	}
	return v.name, true
}

// add remembers that key, the credentials of user name, was verified against hash now.
func (c *verifiedCache) add(key cacheKey, name string, hash []byte) {
	c.entries.Add(key, verified{name: name, hash: string(hash), expires: c.now().Add(c.ttl)})
}
