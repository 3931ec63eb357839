// Package ratelimit limits a route's request rate with token buckets (golang.org/x/time/rate):
// one bucket for the whole route, or one per client IP or per value of a request header.
// Per-key buckets live in a bounded LRU (hashicorp/golang-lru) with idle eviction, so a flood
// of distinct clients cannot grow memory past MaxKeys buckets. With store: redis the buckets
// live in Redis instead, shared by every gateway using it (redis.go); the local buckets are
// then the on_error: local fallback.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/config"
)

const (
	// maxShards splits the per-key map so concurrent clients rarely wait on one mutex.
	maxShards = 16
	// sweepPerCall bounds the idle entries one Allow evicts, keeping its cost constant.
	sweepPerCall = 2
)

type keyKind uint8

const (
	keyRoute keyKind = iota
	keyClientIP
	keyHeader
	keyIdentity // the identity auth admitted (filter.Request.Identity)
)

// Decision is the outcome of one Allow: whether the request may proceed, and the numbers
// for the RateLimit-* response headers.
type Decision struct {
	Allowed bool
	// Limit is the bucket size (burst): the most requests the client may send at once.
	Limit int
	// Remaining is the whole tokens left after this request.
	Remaining int
	// Reset is how long until the bucket is full again.
	Reset time.Duration
	// RetryAfter is, on a deny, how long until one request would be allowed.
	RetryAfter time.Duration
}

// SetHeaders writes RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (delta seconds,
// as in the IETF draft-ietf-httpapi-ratelimit-headers) and, on a deny, Retry-After in whole
// seconds rounded up (RFC 9110 10.2.3), never 0 so clients do not retry at once. A zero
// Decision (no limit configured) writes nothing.
func (d Decision) SetHeaders(h http.Header) {
	if d.Limit == 0 {
		return
	}
	// One backing array for all values and canonical keys written directly: this runs on
	// every response of a limited route, and Header.Set would re-canonicalize each key
	// ("RateLimit-Limit" is not canonical MIME form) and allocate a slice per header.
	vals := make([]string, 4)
	vals[0] = strconv.Itoa(d.Limit)
	vals[1] = strconv.Itoa(d.Remaining)
	vals[2] = strconv.FormatInt(ceilSeconds(d.Reset), 10)
	h["Ratelimit-Limit"] = vals[0:1:1]
	h["Ratelimit-Remaining"] = vals[1:2:2]
	h["Ratelimit-Reset"] = vals[2:3:3]
	if !d.Allowed {
		vals[3] = strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10)
		h["Retry-After"] = vals[3:4:4]
	}
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Limiter is one route's rate limit. A nil *Limiter allows everything.
type Limiter struct {
	kind    keyKind
	header  string // canonical header name for keyHeader
	limit   rate.Limit
	burst   int
	idleTTL int64
	one     *rate.Limiter // keyRoute: the single bucket, no map and no lock of ours
	shards  []shard
	mask    uint64
	seed    maphash.Seed
	limited prometheus.Counter // nil: not counted
	remote  *remote            // store: redis; nil: local buckets only (they are also its on_error: local fallback)
	// now is the clock; tests drive it explicitly so refill is not timing-dependent.
	now func() time.Time
}

// shard is one slice of the per-key map. Keys are 64-bit seeded hashes of the client IP or
// header value, so memory per entry is fixed however long a header an attacker sends; with
// a per-process random seed, collisions can be neither predicted nor forced.
type shard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[uint64, *entry]
	_   [40]byte // keep neighbouring shards' mutexes off one cache line
}

type entry struct {
	lim  *rate.Limiter
	last int64 // unix nanos of the last request, for idle eviction; guarded by the shard
}

// New returns the limiter for route, or nil (no limit) when cfg is nil or disabled. Fields
// cfg leaves at zero take config's defaults (config.WithDefaults). It validates cfg: RPS
// must be a positive finite number, Burst not negative, Key one of route, client_ip or
// header:NAME, MaxKeys and IdleTTL not negative (zero takes the default). m may be nil.
// A limit with store: redis uses the process's DefaultStore; it is an error when none is set.
func New(route string, cfg *config.RateLimit, m *Metrics) (*Limiter, error) {
	return NewWithStore(route, cfg, m, DefaultStore())
}

// NewWithStore is New with an explicit Redis store for store: redis (nil: none).
func NewWithStore(route string, cfg *config.RateLimit, m *Metrics, store *Store) (*Limiter, error) {
	if cfg == nil || (cfg.Enabled != nil && !*cfg.Enabled) {
		return nil, nil
	}
	cfg = config.WithDefaults(cfg)
	if !(cfg.RPS > 0) || math.IsInf(cfg.RPS, 0) {
		return nil, fmt.Errorf("rate_limit.rps: %v is not a positive number", cfg.RPS)
	}
	if cfg.Burst < 0 {
		return nil, fmt.Errorf("rate_limit.burst: %d is negative", cfg.Burst)
	}
	if cfg.IdleTTL < 0 {
		return nil, fmt.Errorf("rate_limit.idle_ttl: %v is negative", cfg.IdleTTL)
	}
	l := &Limiter{
		limit:   rate.Limit(cfg.RPS),
		burst:   cfg.Burst,
		idleTTL: int64(cfg.IdleTTL),
		seed:    maphash.MakeSeed(),
		now:     time.Now,
	}
	switch k := cfg.Key; {
	case k == config.RateLimitKeyRoute:
		l.kind = keyRoute
	case k == config.RateLimitKeyClientIP:
		l.kind = keyClientIP
	case strings.HasPrefix(k, config.RateLimitKeyHeaderPrefix):
		name := strings.TrimSpace(strings.TrimPrefix(k, config.RateLimitKeyHeaderPrefix))
		if name == "" || strings.ContainsAny(name, " \t:") {
			return nil, fmt.Errorf("rate_limit.key: %q has no valid header name", k)
		}
		l.kind, l.header = keyHeader, textproto.CanonicalMIMEHeaderKey(name)
	case k == config.RateLimitKeyIdentity:
		l.kind = keyIdentity
	default:
		return nil, fmt.Errorf("rate_limit.key: %q is not route, client_ip, header:NAME or identity", k)
	}
	if l.kind == keyRoute {
		l.one = rate.NewLimiter(l.limit, l.burst)
	} else if err := l.initShards(cfg.MaxKeys); err != nil {
		return nil, err
	}
	if m != nil {
		l.limited = m.limited.WithLabelValues(route)
	}
	switch cfg.Store {
	case "", config.RateLimitStoreLocal:
	case config.RateLimitStoreRedis:
		if store == nil {
			return nil, errNoStore
		}
		l.remote = newRemote(route, store, cfg.RPS, cfg.Burst, m)
	default:
		return nil, fmt.Errorf("rate_limit.store: %q is not local or redis", cfg.Store)
	}
	return l, nil
}

func (l *Limiter) initShards(maxKeys int) error {
	n := 1
	for n < maxShards && maxKeys/(n*2) >= 1 {
		n *= 2
	}
	// Each shard holds maxKeys/n (floor), so all shards together never exceed maxKeys.
	l.shards = make([]shard, n)
	l.mask = uint64(n - 1)
	for i := range l.shards {
		c, err := simplelru.NewLRU[uint64, *entry](maxKeys/n, nil)
		if err != nil {
			return errors.New("rate_limit.max_keys: " + err.Error())
		}
		l.shards[i].lru = c
	}
	return nil
}

// Allow takes one token for r from its bucket. clientIP is the client address as the proxy
// resolved it through trusted_proxies. Requests without the keyed header share one bucket.
// A limit keyed on identity needs the filter chain's view of the request: use
// ServeRequest, or AllowIdentity.
func (l *Limiter) Allow(r *http.Request, clientIP string) Decision {
	return l.AllowIdentity(r, clientIP, "")
}

// AllowIdentity is Allow with the identity auth admitted (filter.Request.Identity), for a
// limit keyed on identity; requests without one share a bucket, as requests without the
// keyed header do.
func (l *Limiter) AllowIdentity(r *http.Request, clientIP, identity string) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	var value string
	switch l.kind {
	case keyClientIP:
		value = clientIP
	case keyHeader:
		value = r.Header.Get(l.header)
	case keyIdentity:
		value = identity
	}
	if l.remote != nil {
		return l.allowRedis(r, value)
	}
	return l.allowLocal(r, value)
}

// allowLocal decides on this process's bucket for value.
func (l *Limiter) allowLocal(_ *http.Request, value string) Decision {
	now := l.now()
	lim := l.one
	if l.kind != keyRoute {
		lim = l.bucket(value, now)
	}
	allowed := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	d := Decision{Allowed: allowed, Limit: l.burst, Remaining: max(0, int(tokens))}
	if missing := float64(l.burst) - tokens; missing > 0 {
		d.Reset = seconds(missing / float64(l.limit))
	}
	if !allowed {
		d.RetryAfter = seconds((1 - tokens) / float64(l.limit))
		if l.limited != nil {
			l.limited.Inc()
		}
	}
	return d
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// bucket finds or creates key's limiter. The shard lock covers only the map; the token
// bucket has its own lock, so a bucket evicted while a request uses it is harmless.
func (l *Limiter) bucket(key string, now time.Time) *rate.Limiter {
	hash := maphash.String(l.seed, key)
	s := &l.shards[hash&l.mask]
	ns := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	// LRU order is idle order, so idle entries are all at the tail: evicting a few per call
	// keeps the map free of them without a sweeper goroutine.
	for range sweepPerCall {
		_, e, ok := s.lru.GetOldest()
		if !ok || ns-e.last < l.idleTTL {
			break
		}
		s.lru.RemoveOldest()
	}
	if e, ok := s.lru.Get(hash); ok {
		e.last = ns
		return e.lim
	}
	e := &entry{lim: rate.NewLimiter(l.limit, l.burst), last: ns}
	s.lru.Add(hash, e)
	return e.lim
}

// Len is the number of per-key buckets held; for tests and the admin API.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// Metrics counts rate-limited requests. A nil *Metrics counts nothing.
type Metrics struct {
	limited     *prometheus.CounterVec
	redisErrors *prometheus.CounterVec
}

// NewMetrics creates the counter and registers it with reg (if non-nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{limited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_ratelimit_limited_total",
		Help: "Requests refused by a route's rate limit, by route.",
	}, []string{"route"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_ratelimit_redis_errors_total",
			Help: "Rate-limit decisions Redis failed or timed out on (store: redis), by route and the on_error action taken (local, allow, deny).",
		}, []string{"route", "action"}),
	}
	if reg != nil {
		reg.MustRegister(m.limited, m.redisErrors)
	}
	return m
}
