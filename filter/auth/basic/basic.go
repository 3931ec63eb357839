// Package basic is the basic auth mechanism: `Authorization: Basic base64(user:password)`
// (RFC 7617) checked against the bcrypt hashes of an htpasswd file.
//
// bcrypt is slow on purpose (50 to 100 ms of a core at cost 10), which makes every check a
// denial-of-service lever. Four defences:
//
//   - Successful checks are cached for cache_ttl (default 5 m), at most 10,000 of them,
//     keyed by HMAC-SHA256(a random per-mechanism key, user "\x00" password) and bound to
//     the stored hash, so a returning client costs a few hundred nanoseconds and a changed
//     password invalidates its entry at once. Failures are never cached.
//   - At most GOMAXPROCS bcrypt comparisons run at once in the whole process. A check that
//     finds no free slot within 100 ms (or before its request ends) is answered 503 with
//     reason "busy": a flood of wrong passwords then gets quick refusals and cannot take
//     every core, while cached clients keep getting in.
//   - Concurrent checks of the same credentials share one comparison, so a client's burst
//     of parallel requests (or a flood repeating one password) costs one slot, not many.
//   - An unknown user costs one comparison against a dummy hash of the file's most common
//     cost, through the same slots, so response times do not tell which users exist.
//
// Decisions: no Authorization header or another scheme: Skipped ("missing"); several
// Authorization headers, bad base64, no colon, control characters, a wrong password or an
// unknown user: Invalid ("invalid"); no bcrypt slot: Unavailable ("busy"); a right password
// for a user not in allow: Forbidden ("forbidden"), decided only after the password is
// verified so that allow lists cannot be probed; otherwise Admitted ("ok") with the user
// name as identity, user_header set to it and, with strip, Authorization removed.
package basic

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// maxCost is the highest bcrypt cost accepted (config refuses higher ones first): one check
// at cost 14 already takes about a second of a core.
const maxCost = config.MaxBcryptCost

// bcryptAlphabet is the base64 alphabet bcrypt writes salts and digests in.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Mechanism checks Basic credentials against one users file. It is safe for concurrent
// use.
//
// It holds the loaded users map itself, not a copy: config gives every route that names
// one file the same map, and a 100,000-user file copied per route (20 routes inheriting
// it from defaults) cost hundreds of megabytes and seconds of every load. The map is only
// read, by this and every other route's mechanism, so nobody may change it after New.
type Mechanism struct {
	users      map[string][]byte // user name -> bcrypt hash; shared, read-only
	allow      map[string]bool   // nil: every user of the file
	dummyHash  []byte            // compared against for unknown users
	userHeader string            // canonical; "" for none
	strip      bool
	challenge  string
	cache      *verifiedCache
	slots      compareSlots
	wait       time.Duration
	// compare is bcrypt.CompareHashAndPassword; tests count calls through it.
	compare  func(hash, password []byte) error
	scratch  sync.Pool // of *scratch
	inFlight checksInFlight
}

// scratch is one request's working memory, pooled so that a cache hit allocates nothing:
// the decoded credentials and a keyed HMAC reused through Reset.
type scratch struct {
	credentials credentialBuffer
	mac         hash.Hash
	sum         [sha256.Size]byte
}

// nul separates user and password in the cache key.
var nul = []byte{0}

// New builds the mechanism from a loaded basic block (cfg.Users filled, defaults applied).
// Entries that are not bcrypt ($2a$, $2b$, $2y$, cost 4 to config.MaxBcryptCost), user
// names that cannot be sent in Basic credentials, and allow names not in the file are
// errors. The mechanism keeps cfg.Users (see Mechanism): what New builds per route is only
// the allow set, the cache with its HMAC key, and the dummy hash.
func New(cfg *config.BasicAuth) (*Mechanism, error) {
	if cfg == nil {
		return nil, errors.New("basic: no configuration")
	}
	var errs []error
	if cfg.UserHeader != "" {
		if err := auth.CheckIdentityHeader(cfg.UserHeader); err != nil {
			errs = append(errs, fmt.Errorf("basic: user_header %w", err))
		}
		// The filter removes identity headers from each request before any mechanism
		// runs: this one would remove the credentials themselves.
		if textproto.CanonicalMIMEHeaderKey(cfg.UserHeader) == "Authorization" {
			errs = append(errs, errors.New("basic: user_header cannot be Authorization, which carries the credentials"))
		}
	}
	if cfg.CacheTTL <= 0 {
		errs = append(errs, fmt.Errorf("basic: cache_ttl %v must be positive", cfg.CacheTTL))
	}
	var allow map[string]bool
	if len(cfg.Allow) > 0 {
		allow = make(map[string]bool, len(cfg.Allow))
	}
	for _, name := range cfg.Allow {
		allow[name] = true
		if _, ok := cfg.Users[name]; !ok {
			errs = append(errs, fmt.Errorf("basic: allow names %q, which is not in the users file", name))
		}
	}
	// One pass over the shared map that allocates nothing for a good entry: config has
	// checked each one already, so this is a second line of defence, not a copy.
	var costs [maxCost + 1]int
	var bad []string // user names of refused entries, sorted below
	for name, h := range cfg.Users {
		cost, ok := entryCost(name, h)
		if !ok {
			bad = append(bad, name)
			continue
		}
		costs[cost]++
	}
	// In name order, so that the errors come out the same way every time.
	slices.Sort(bad)
	for _, name := range bad {
		errs = append(errs, checkEntry(name, cfg.Users[name]))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m := &Mechanism{
		users:      cfg.Users,
		allow:      allow,
		dummyHash:  dummyHash(commonCost(costs[:])),
		userHeader: textproto.CanonicalMIMEHeaderKey(cfg.UserHeader),
		strip:      cfg.Strip,
		challenge:  "Basic realm=" + auth.Quote(cfg.Realm) + `, charset="UTF-8"`,
		cache:      newVerifiedCache(cacheSize, cfg.CacheTTL),
		slots:      processSlots,
		wait:       slotWait,
		compare:    bcrypt.CompareHashAndPassword,
	}
	// Per mechanism, not per process: each route's cache has its own key.
	var macKey [32]byte
	_, _ = rand.Read(macKey[:]) // never fails (crypto/rand, Go 1.24+)
	m.scratch.New = func() any { return &scratch{mac: hmac.New(sha256.New, macKey[:])} }
	return m, nil
}

// entryCost returns the cost of a usable htpasswd entry without allocating, so that a
// 100,000-user file costs New one quick pass; false for an entry checkEntry explains.
func entryCost(name string, h []byte) (int, bool) {
	if name == "" || len(h) != 60 || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$' {
		return 0, false
	}
	if v := h[2]; v != 'a' && v != 'b' && v != 'y' {
		return 0, false
	}
	if h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' {
		return 0, false
	}
	cost := int(h[4]-'0')*10 + int(h[5]-'0')
	if cost < bcrypt.MinCost || cost > maxCost {
		return 0, false
	}
	for i := range len(name) {
		if c := name[i]; c == ':' || c < 0x20 || c == 0x7f {
			return 0, false
		}
	}
	for _, c := range h[7:] {
		if !inBcryptAlphabet(c) {
			return 0, false
		}
	}
	return cost, true
}

// inBcryptAlphabet reports whether c is one of bcryptAlphabet's characters.
func inBcryptAlphabet(c byte) bool {
	return c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// checkEntry says why entryCost refuses an entry, for New's error.
func checkEntry(name string, h []byte) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r == ':' || r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("basic: user name %q cannot be sent in Basic credentials", name)
	}
	s := string(h)
	if !strings.HasPrefix(s, "$2a$") && !strings.HasPrefix(s, "$2b$") && !strings.HasPrefix(s, "$2y$") {
		return fmt.Errorf("basic: user %q: not a bcrypt hash ($2a$, $2b$ or $2y$)", name)
	}
	// $2a$NN$ then 53 characters of bcrypt's base64 (salt and digest): anything else
	// would fail every comparison.
	if len(h) != 60 || h[6] != '$' || strings.Trim(s[7:], bcryptAlphabet) != "" ||
		strings.Trim(s[4:6], "0123456789") != "" {
		return fmt.Errorf("basic: user %q: not a well-formed bcrypt hash ($2a$NN$ and 53 characters of ./A-Za-z0-9)", name)
	}
	return fmt.Errorf("basic: user %q: bcrypt cost %s is not between %d and %d (each check above it would take seconds of CPU)",
		name, s[4:6], bcrypt.MinCost, maxCost)
}

// commonCost is the cost most entries use (the higher on a tie), given counts indexed by
// cost, and bcrypt's default for an empty file: the cost an unknown user's dummy
// comparison pays.
func commonCost(counts []int) int {
	best, count := bcrypt.DefaultCost, 0
	for cost, n := range counts {
		if n > 0 && (n > count || n == count && cost > best) {
			best, count = cost, n
		}
	}
	return best
}

// Name returns config.AuthBasic.
func (m *Mechanism) Name() string { return config.AuthBasic }

// Authenticate checks the request's Basic credentials.
func (m *Mechanism) Authenticate(_ http.ResponseWriter, r *http.Request, _ *filter.Request) auth.Decision {
	values := r.Header["Authorization"]
	switch {
	case len(values) == 0:
		return auth.Decision{Result: auth.Skipped, Reason: "missing"}
	case len(values) > 1:
		return auth.Decision{Result: auth.Invalid, Reason: "invalid"}
	}
	s := m.scratch.Get().(*scratch)
	defer m.scratch.Put(s)
	name, password, parsed := parseAuthorization(values[0], &s.credentials)
	switch parsed {
	case notBasic:
		return auth.Decision{Result: auth.Skipped, Reason: "missing"}
	case malformed:
		return auth.Decision{Result: auth.Invalid, Reason: "invalid"}
	}
	hash, known := m.users[string(name)]
	key := s.cacheKey(name, password)
	identity, cached := "", false
	if known {
		identity, cached = m.cache.has(key, hash)
	}
	if !cached {
		switch m.verify(r.Context(), key, name, hash, known, password) {
		case busy:
			return auth.Decision{Result: auth.Unavailable, Reason: "busy"}
		case mismatched:
			return auth.Decision{Result: auth.Invalid, Reason: "invalid"}
		}
		identity = string(name) // after a bcrypt run, one allocation does not show
	}
	if m.allow != nil && !m.allow[identity] {
		return auth.Decision{Result: auth.Forbidden, Identity: identity, Reason: "forbidden"}
	}
	if m.userHeader != "" {
		r.Header[m.userHeader] = []string{identity}
	}
	if m.strip {
		delete(r.Header, "Authorization")
	}
	return auth.Decision{Result: auth.Admitted, Identity: identity, Reason: "ok"}
}

// verify runs the bcrypt comparison of password against the user's hash (the dummy hash
// when the user is not known, which never matches), in a compare slot, coalesced with
// identical checks in flight, and caches a match.
func (m *Mechanism) verify(ctx context.Context, key cacheKey, name, hash []byte, known bool, password []byte) verdict {
	return m.inFlight.do(ctx, key, func() verdict {
		if !known {
			hash = m.dummyHash
		}
		if !m.slots.acquire(ctx, m.wait) {
			return busy
		}
		err := m.compare(hash, password)
		m.slots.release()
		if !known || err != nil {
			return mismatched
		}
		m.cache.add(key, string(name), hash)
		return matched
	})
}

// cacheKey is the HMAC of user "\x00" password under the mechanism's key.
func (s *scratch) cacheKey(name, password []byte) cacheKey {
	s.mac.Reset()
	s.mac.Write(name)
	s.mac.Write(nul)
	s.mac.Write(password)
	s.mac.Sum(s.sum[:0])
	return s.sum
}

// Challenge returns `Basic realm="<realm>", charset="UTF-8"` whatever the decision.
func (m *Mechanism) Challenge(auth.Decision) string { return m.challenge }

// IdentityHeaders returns user_header when it is set.
func (m *Mechanism) IdentityHeaders() []string {
	if m.userHeader == "" {
		return nil
	}
	return []string{m.userHeader}
}
