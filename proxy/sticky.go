package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// Sticky cookie values are base64url (no padding) of 24 bytes: an 8-byte tag naming the
// split branch, then 16 bytes of HMAC-SHA256(key, branch, endpoint key). Both are MACs, so a
// client cannot name a branch or an endpoint it was never given; the value carries no
// address. The key is sticky.secret when set, so every replica of a fleet computes the same
// values; otherwise it is derived from a random key made once per process (kept across
// reloads) and the route's host and prefix: unforgeable, but a client that moves to another
// replica is pinned afresh there. A key anyone could compute (one derived from the route
// alone) would let a client forge a branch tag and reach a drained branch, or test guessed
// endpoint addresses against the values it is given.
const (
	stickyTagLen   = 8
	stickyMACLen   = 16
	stickyValueLen = 32 // base64url of stickyTagLen+stickyMACLen bytes
)

// sticky pins clients of one route to the branch and endpoint they got, by cookie.
type sticky struct {
	cookie   string
	path     string
	maxAge   int
	key      []byte
	tags     [][stickyTagLen]byte // per branch
	branches []Branch
	indexes  []stickyCache // per branch
}

// stickyCache holds the lookup index of one branch's current pool view, rebuilt lazily once
// per view (the first request that sees a new view builds it; others wait for it).
type stickyCache struct {
	mu    sync.Mutex
	index atomic.Pointer[stickyIndex]
}

// stickyIndex maps cookie values to members of one pool view, and members to the cookie
// that names them (with its Set-Cookie line precomputed, so setting one costs no formatting).
type stickyIndex struct {
	view    *upstream.View
	byMAC   map[[stickyMACLen]byte]int // index in view.Members
	byState map[*upstream.EndpointState]*stickyCookie
}

// stickyCookie is one member's cookie value and its Set-Cookie field values.
type stickyCookie struct {
	value  string
	header []string // without Secure
	secure []string // with Secure, for requests that came over TLS
}

// newSticky compiles a route's sticky block over its branches (a route without a split has
// one branch, its pool); nil when sc is nil.
func newSticky(sc *config.Sticky, host, prefix string, branches []Branch) *sticky {
	if sc == nil || len(branches) == 0 {
		return nil
	}
	s := &sticky{
		cookie:   sc.Cookie,
		path:     prefix,
		maxAge:   int(sc.TTL.Seconds()),
		branches: branches,
		indexes:  make([]stickyCache, len(branches)),
		tags:     make([][stickyTagLen]byte, len(branches)),
	}
	if sc.Secret != "" {
		s.key = []byte(sc.Secret)
	} else {
		m := hmac.New(sha256.New, processStickyKey())
		m.Write([]byte("switchyard sticky\x00" + host + "\x00" + prefix))
		s.key = m.Sum(nil)
	}
	for i := range branches {
		copy(s.tags[i][:], s.mac("branch", i, ""))
	}
	return s
}

// mac is HMAC-SHA256 over a purpose, the branch index and the endpoint key.
func (s *sticky) mac(purpose string, branch int, endpoint string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(branch))
	m.Write(b[:])
	m.Write([]byte(endpoint))
	return m.Sum(nil)
}

// index returns the lookup index of branch b's current view, or nil before its first
// snapshot.
func (s *sticky) index(b int) *stickyIndex {
	v := s.branches[b].Pool.View()
	if v == nil {
		return nil
	}
	c := &s.indexes[b]
	if idx := c.index.Load(); idx != nil && idx.view == v {
		return idx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if idx := c.index.Load(); idx != nil && idx.view == v {
		return idx
	}
	idx := s.build(b, v)
	c.index.Store(idx)
	return idx
}

// build makes the index of view v of branch b.
func (s *sticky) build(b int, v *upstream.View) *stickyIndex {
	idx := &stickyIndex{
		view:    v,
		byMAC:   make(map[[stickyMACLen]byte]int, len(v.Members)),
		byState: make(map[*upstream.EndpointState]*stickyCookie, len(v.Members)),
	}
	path := s.path
	if !validCookiePath(path) {
		path = "/"
	}
	for i := range v.Members {
		m := &v.Members[i]
		var raw [stickyTagLen + stickyMACLen]byte
		copy(raw[:stickyTagLen], s.tags[b][:])
		copy(raw[stickyTagLen:], s.mac("endpoint", b, m.Key))
		var mac [stickyMACLen]byte
		copy(mac[:], raw[stickyTagLen:])
		idx.byMAC[mac] = i
		value := base64.RawURLEncoding.EncodeToString(raw[:])
		c := http.Cookie{Name: s.cookie, Value: value, Path: path, MaxAge: s.maxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode}
		plain := c.String()
		c.Secure = true
		idx.byState[m.State] = &stickyCookie{value: value, header: []string{plain}, secure: []string{c.String()}}
	}
	return idx
}

// validCookiePath reports whether a route prefix can be a cookie's Path as it is.
func validCookiePath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c >= 0x7f || c == ';' {
			return false
		}
	}
	return p != ""
}

// resolve reads the request's sticky cookie and, when it is valid, sets the request's
// branch (and pool) to the one it names and pins the endpoint it names if that endpoint is
// still in the branch's pool. It reports whether it chose the branch; on false (no cookie,
// a forged or stale value, a branch no longer in the split) the caller picks normally.
func (s *sticky) resolve(tr *traffic, r *http.Request) bool {
	value, ok := cookieValue(r.Header["Cookie"], s.cookie)
	if !ok || len(value) != stickyValueLen {
		return false
	}
	var src [stickyValueLen]byte
	copy(src[:], value)
	var raw [stickyTagLen + stickyMACLen]byte
	if n, err := base64.RawURLEncoding.Decode(raw[:], src[:]); err != nil || n != len(raw) {
		return false
	}
	b := -1
	for i := range s.tags {
		if hmac.Equal(s.tags[i][:], raw[:stickyTagLen]) {
			b = i
			break
		}
	}
	if b < 0 {
		return false
	}
	tr.branch, tr.pool = b, s.branches[b].Pool
	tr.stickyValue = value
	idx := s.index(b)
	if idx == nil {
		return true
	}
	var mac [stickyMACLen]byte
	copy(mac[:], raw[stickyTagLen:])
	if i, ok := idx.byMAC[mac]; ok {
		tr.pinned = &idx.view.Members[i]
	}
	return true
}

// stick sets the cookie naming member m of the request's branch on the response, unless
// the request already carried that value.
func (s *sticky) stick(x *exchange, tr *traffic, m *upstream.Member) {
	idx := s.index(tr.branch)
	if idx == nil {
		return
	}
	c := idx.byState[m.State]
	if c == nil || c.value == tr.stickyValue {
		return // the endpoint left the pool meanwhile, or the client has this cookie
	}
	h := x.w.Header()
	lines := c.header
	if x.r.TLS != nil || isHTTPS(x.header["X-Forwarded-Proto"]) {
		// Over TLS here, or at a trusted proxy in front (setForwarded kept its
		// X-Forwarded-Proto only then): the browser must not send the cookie in clear.
		lines = c.secure
	}
	if old := h["Set-Cookie"]; len(old) > 0 {
		h["Set-Cookie"] = append(old[:len(old):len(old)], lines[0])
		return
	}
	h["Set-Cookie"] = lines[:1:1] // capped: an append by anyone later copies
}

// cookieValue finds cookie name in Cookie header lines without allocating. Values in
// double quotes are returned without them.
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			k, v, ok := strings.Cut(part, "=")
			if !ok || strings.TrimRight(k, " \t") != name {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// traffic is where one request goes: the pool its attempts pick from and, with a sticky
// cookie, the endpoint tried first.
type traffic struct {
	pool        *upstream.Pool   // the route's, or its chosen split branch's; nil: 503
	branch      int              // the split branch (0 without a split)
	pinned      *upstream.Member // the sticky cookie's endpoint, tried first
	stickyValue string           // the request's valid sticky cookie value, or ""
}

// choose settles the request's branch and pool before the first attempt: the sticky
// cookie's branch when it names one, else the split's next branch, else the route's pool.
// The branch is final: retries stay in it, and a branch whose pool has no endpoint answers
// 503 rather than moving the request to another branch.
func (tr *traffic) choose(rt *Route, r *http.Request) {
	tr.pool = rt.Pool
	if rt.sticky != nil && rt.sticky.resolve(tr, r) {
		return
	}
	if rt.split != nil {
		tr.branch = rt.split.pick()
		tr.pool = nil
		if tr.branch >= 0 {
			tr.pool = rt.split.branches[tr.branch].Pool
		}
	}
}

// pick chooses an attempt's endpoint: the sticky cookie's endpoint on the first attempt if
// the health layer admits it, else one from the chosen pool by its balancer.
func (tr *traffic) pick(r *http.Request, ex upstream.Excluded) (*upstream.Member, error) {
	if m := tr.pinned; m != nil {
		tr.pinned = nil
		if !ex.Has(m.State) && m.State.Available() && m.State.TryAcquire() {
			return m, nil
		}
	}
	if tr.pool == nil {
		return nil, upstream.ErrNoEndpoint
	}
	return tr.pool.Pick(r, ex)
}

// processStickyKey is the random key sticky cookies are derived from when a route sets no
// secret: made once per process, so reloads keep clients pinned.
var processStickyKey = sync.OnceValue(func() []byte {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return key
})

// isHTTPS reports whether an X-Forwarded-Proto value the gateway forwards says https.
func isHTTPS(proto []string) bool { return len(proto) == 1 && proto[0] == "https" }
