package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard/switchyard/config"
)

// KeyPrefix starts every key a redis-stored limit writes (redis_rate adds its own "rate:"
// in front). After it come the route name's length, the route name and the key value, so
// two routes never share a bucket by accident (traefik#13706), whatever their names contain.
const KeyPrefix = "switchyard:rl:"

// maxKeyValue is the longest key value (client IP or header) written into a Redis key as
// it is; longer ones are replaced by their SHA-256, so an attacker's long header costs
// Redis a fixed-size key.
const maxKeyValue = 128

// Store is the shared Redis behind rate limits with store: redis: one client per process,
// its per-call timeout and what a request gets when Redis fails. A nil *Store is no store.
type Store struct {
	lim     *redis_rate.Limiter
	timeout time.Duration
	onError string
}

// NewStore wraps rdb (one client per process, built from cfg) for rate limits. Fields cfg
// leaves at zero take config's defaults. rdb's own timeouts should be cfg.Timeout too; the
// Store bounds every call with a context deadline of cfg.Timeout regardless.
func NewStore(rdb redis.UniversalClient, cfg *config.Redis) *Store {
	s := &Store{lim: redis_rate.NewLimiter(rdb), timeout: config.DefaultRedisTimeout, onError: config.DefaultRedisOnError}
	if cfg != nil {
		if cfg.Timeout > 0 {
			s.timeout = cfg.Timeout
		}
		if cfg.OnError != "" {
			s.onError = cfg.OnError
		}
	}
	return s
}

var defaultStore atomic.Pointer[Store]

// SetDefaultStore makes s the store New gives limits with store: redis (cmd/switchyard sets
// it once from the config's redis block, before the first Apply). nil unsets it.
func SetDefaultStore(s *Store) { defaultStore.Store(s) }

// DefaultStore returns the store SetDefaultStore set, or nil.
func DefaultStore() *Store { return defaultStore.Load() }

// remote is a Limiter's Redis side.
type remote struct {
	store  *Store
	prefix string // KeyPrefix + len(route) + ":" + route + ":"
	limit  redis_rate.Limit
	errors *prometheus.CounterVec // by on_error action; nil: not counted
	route  string
}

// redisLimit expresses rps as redis_rate's integer Rate per Period (only their ratio
// matters to GCRA): whole rps per second, else thousandths of a request per 1000s.
func redisLimit(rps float64, burst int) redis_rate.Limit {
	if rps == math.Trunc(rps) && rps <= math.MaxInt32 {
		return redis_rate.Limit{Rate: int(rps), Burst: burst, Period: time.Second}
	}
	return redis_rate.Limit{Rate: max(1, int(math.Round(rps*1000))), Burst: burst, Period: 1000 * time.Second}
}

func newRemote(route string, s *Store, limit float64, burst int, m *Metrics) *remote {
	rm := &remote{
		store:  s,
		prefix: KeyPrefix + strconv.Itoa(len(route)) + ":" + route + ":",
		limit:  redisLimit(limit, burst),
		route:  route,
	}
	if m != nil {
		rm.errors = m.redisErrors
	}
	return rm
}

// Key is the Redis key (without redis_rate's "rate:") of value's bucket on route.
func (rm *remote) key(value string) string {
	if len(value) > maxKeyValue {
		sum := sha256.Sum256([]byte(value))
		value = "sha256:" + hex.EncodeToString(sum[:])
	}
	return rm.prefix + value
}

// allow asks Redis; on an error or timeout it returns ok false and the caller applies
// on_error. The call never outlives the store's timeout or the request's context.
func (rm *remote) allow(ctx context.Context, value string) (Decision, bool) {
	ctx, cancel := context.WithTimeout(ctx, rm.store.timeout)
	defer cancel()
	res, err := rm.store.lim.Allow(ctx, rm.key(value), rm.limit)
	if err != nil {
		return Decision{}, false
	}
	d := Decision{Allowed: res.Allowed > 0, Limit: rm.limit.Burst, Remaining: max(0, res.Remaining), Reset: max(0, res.ResetAfter)}
	if !d.Allowed {
		d.RetryAfter = max(0, res.RetryAfter)
	}
	return d, true
}

func (rm *remote) countError(action string) {
	if rm.errors != nil {
		rm.errors.WithLabelValues(rm.route, action).Inc()
	}
}

// allowRedis decides r on a redis-stored limit, applying on_error when Redis fails.
func (l *Limiter) allowRedis(r *http.Request, value string) Decision {
	ctx := context.Background()
	if r != nil {
		ctx = r.Context()
	}
	d, ok := l.remote.allow(ctx, value)
	if ok {
		if !d.Allowed && l.limited != nil {
			l.limited.Inc()
		}
		return d
	}
	if ctx.Err() != nil {
		// The client left while Redis was asked: not a Redis failure, and no answer
		// reaches anyone; admit without counting (the proxy drops the request anyway).
		return Decision{Allowed: true}
	}
	switch l.remote.store.onError {
	case config.RedisOnErrorAllow:
		l.remote.countError(config.RedisOnErrorAllow)
		return Decision{Allowed: true}
	case config.RedisOnErrorDeny:
		l.remote.countError(config.RedisOnErrorDeny)
		if l.limited != nil {
			l.limited.Inc()
		}
		return Decision{Limit: l.burst, RetryAfter: time.Second}
	default:
		l.remote.countError(config.RedisOnErrorLocal)
		return l.allowLocal(r, value)
	}
}

var errNoStore = errors.New("rate_limit.store: redis needs the top-level redis block (no Redis client in this process; a redis block added by a reload takes effect on restart)")
