// Package gateway turns a loaded config into the running gateway: one upstream pool per
// distinct (registry, service, query, policy) with its discovery watch and health checks,
// compiled routes with their rate limiters, and the proxy's route table. Apply swaps all of
// it atomically; pools whose key survives a reload keep their endpoints' state and watch.
package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/breaker/grpcprobe"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth/jwt"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/ratelimit"
	"github.com/switchyard/switchyard/upstream"
)

// Registries are the discoverers routes can use, by registry name as routes' `discovery:`
// names them (config.RegistryEtcd, ...). A registry that is not configured is absent. The
// static registry (routes with `upstreams:`) is upstream.Static unless the map overrides it.
type Registries map[string]upstream.Discoverer

// Options configure a Gateway.
type Options struct {
	Registries Registries
	Handler    *proxy.Handler
	// HealthClient sends active health checks (the proxy's transport in an http.Client).
	HealthClient *http.Client
	Registerer   prometheus.Registerer // nil: metrics are not exported
	Logger       *slog.Logger
	// WarmTimeout bounds how long Apply waits for new pools' first snapshots before it swaps
	// the route table; default DefaultWarmTimeout.
	WarmTimeout time.Duration
}

// DefaultWarmTimeout is how long Apply waits for a new pool's first registry answer (Envoy's
// cluster warming): long enough for any registry that is up (they answer in milliseconds),
// short enough that a registry that is down delays a reload or a start by only that much;
// its routes then answer 503 until the registry answers, and /readyz names the pool.
const DefaultWarmTimeout = time.Second

// Gateway owns the pools and watchers behind the proxy's route table.
type Gateway struct {
	opts Options
	log  *slog.Logger
	// configState is what ConfigInfo reports: the config's source, what was applied and
	// what was rejected last (its own mutex; Reload and CountReload write it).
	configState configState
	ctx         context.Context // watchers live until it ends
	metrics     *gatewayMetrics
	keySets     *jwt.KeySets // JWKS key sets, shared by routes and kept across reloads
	// keySetsInUse are the sets the table in force reads (written by Apply only): a failed
	// Apply prunes back to them.
	keySetsInUse []*jwt.KeySet

	// applyMu serialises Apply, through its warm-up wait; only Apply writes the fields below.
	applyMu sync.Mutex
	// mu guards the fields below for readers (readiness, admin), so they never wait behind
	// a warm-up: Apply takes it only to swap them.
	mu       sync.Mutex
	cfg      *config.Config
	pools    map[string]*poolEntry
	limiters map[string]*limiterEntry
	auths    map[string]*authEntry // by route name
	routes   []*proxy.Route
	wg       sync.WaitGroup
}

type poolEntry struct {
	pool      *upstream.Pool
	cancel    context.CancelFunc
	done      chan struct{}
	route     *config.Route // the first route that asked for it: its health check and admin info
	discovery upstream.Discoverer
	target    upstream.Target
	warm      chan struct{} // closed by the first snapshot
}

type limiterEntry struct {
	key string
	lim *ratelimit.Limiter
}

// New returns a gateway whose watchers run until ctx ends; call Apply to load a config and
// Wait after ctx ends to join the watchers.
func New(ctx context.Context, o Options) *Gateway {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	regs := make(Registries, len(o.Registries)+1)
	regs[config.RegistryStatic] = upstream.Static{}
	for name, d := range o.Registries {
		if d != nil {
			regs[name] = d
		}
	}
	o.Registries = regs
	return &Gateway{
		opts:     o,
		log:      o.Logger,
		ctx:      ctx,
		metrics:  newGatewayMetrics(o.Registerer, o.Handler.Metrics()),
		keySets:  jwt.NewKeySets(ctx, o.Logger, o.Registerer),
		pools:    make(map[string]*poolEntry),
		limiters: make(map[string]*limiterEntry),
	}
}

// Config returns the config in force.
func (g *Gateway) Config() *config.Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// Apply makes cfg the config in force: it builds every route and pool first, and only if all
// of them build does it start new watchers, swap the route table, and stop the watchers no
// route uses any more. On error nothing changes.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()

	if old := g.cfg; old != nil && !reflect.DeepEqual(old.Redis, cfg.Redis) {
		// One Redis client per process (cmd/switchyard): limits with store: redis keep the old one.
		g.log.Warn("config reload: the redis block changed; it takes effect on restart", "file", cfg.Path)
	}
	pools := poolSet{g: g, next: make(map[string]*poolEntry)}
	nextLimiters := make(map[string]*limiterEntry)
	routes := make([]*proxy.Route, 0, len(cfg.Routes))
	names := routeNames(cfg.Routes)
	nextAuths := make(map[string]*authEntry)
	var keySets []*jwt.KeySet // the JWKS key sets the new table reads
	// fail undoes what this Apply built (mirror workers, new auth filters, JWKS key sets
	// only it asked for) and returns err: the table in force is untouched.
	fail := func(err error) error {
		closeRoutes(routes)
		closeAuths(nextAuths, g.auths)
		g.keySets.Prune(g.keySetsInUse)
		return err
	}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		ro, err := pools.routeOptions(rc, names[i])
		if err != nil {
			return fail(fmt.Errorf("%s:%d: routes[%d]: %w", cfg.Path, rc.Line, i, err))
		}
		var lim *ratelimit.Limiter
		if rc.RateLimit != nil {
			name := names[i]
			lkeyJSON, _ := json.Marshal(rc.RateLimit)
			lkey := string(lkeyJSON)
			if le := g.limiters[name]; le != nil && le.key == lkey {
				lim = le.lim // unchanged: keep its buckets across the reload
			} else {
				l, err := ratelimit.New(name, rc.RateLimit, g.metrics.ratelimit)
				if err != nil {
					return fail(fmt.Errorf("%s:%d: routes[%d].rate_limit: %w", cfg.Path, rc.Line, i, err))
				}
				lim = l
			}
			nextLimiters[name] = &limiterEntry{key: lkey, lim: lim}
		}
		var rateLimit filter.RequestFilter
		if lim != nil { // a nil *Limiter in the interface would not be nil
			rateLimit = lim
		}
		authentication, err := g.authFilter(names[i], rc)
		if err != nil {
			return fail(fmt.Errorf("%s:%d: routes[%d]: %w", cfg.Path, rc.Line, i, err))
		}
		var authenticate filter.RequestFilter
		if authentication != nil { // a nil *auth.Filter in the interface would not be nil
			nextAuths[names[i]] = authentication
			keySets = append(keySets, authentication.sets...)
			authenticate = authentication.filter
		}
		filters, err := routeFilters(rc, authenticate, rateLimit)
		if err != nil {
			return fail(fmt.Errorf("%s:%d: routes[%d]: %w", cfg.Path, rc.Line, i, err))
		}
		ro.Name, ro.Metrics, ro.Filters = names[i], g.metrics.proxy, filters
		routes = append(routes, proxy.NewRoute(rc, ro))
	}

	nextPools, fresh := pools.next, pools.fresh
	for _, pe := range fresh {
		g.start(pe)
	}
	g.warmUp(fresh)
	g.opts.Handler.SetTable(proxy.NewTable(routes, proxy.NewTrust(cfg.TrustedNets)))
	g.mu.Lock()
	old, oldRoutes, oldAuths := g.pools, g.routes, g.auths
	g.pools, g.limiters, g.auths, g.routes, g.cfg = nextPools, nextLimiters, nextAuths, routes, cfg
	g.mu.Unlock()
	closeRoutes(oldRoutes)
	closeAuths(oldAuths, nextAuths)
	g.keySetsInUse = keySets
	g.keySets.Prune(keySets) // after the swap: no request of the new table misses a set
	for key, pe := range old {
		if _, ok := nextPools[key]; !ok {
			pe.cancel()
			<-pe.done
		}
	}
	g.metrics.routes.Set(float64(len(routes)))
	return nil
}

// Wait blocks until every watcher has stopped (after the context given to New ended), then
// stops the routes' background work (mirror workers).
func (g *Gateway) Wait() {
	g.wg.Wait()
	g.mu.Lock()
	routes, auths := g.routes, g.auths
	g.mu.Unlock()
	closeRoutes(routes)
	closeAuths(auths, nil)
	g.keySets.Close()
}

// Ready reports whether every pool has received its first snapshot, and names those that
// have not.
func (g *Gateway) Ready() (bool, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var waiting []string
	for _, pe := range g.pools {
		if !pe.pool.Ready() {
			waiting = append(waiting, pe.pool.Name())
		}
	}
	slices.Sort(waiting)
	return g.cfg != nil && len(waiting) == 0, waiting
}

func (g *Gateway) newPool(rc *config.Route, name string) (*poolEntry, error) {
	builder, err := lb.New(rc.LB)
	if err != nil {
		return nil, err
	}
	// NewRoutePolicy returns nil when passive health, breaker and active checks are all off;
	// keep the interface nil then, not a typed nil.
	var health upstream.HealthPolicy
	if hp := breaker.NewRoutePolicy(name, &rc.Policy, g.metrics.breaker, g.log); hp != nil {
		health = hp
	}
	d := g.opts.Registries[rc.Registry()]
	if d == nil {
		return nil, fmt.Errorf("registry %q is not running (discovery changes need a restart)", rc.Registry())
	}
	target, err := targetOf(rc)
	if err != nil {
		return nil, err
	}
	pool := upstream.NewPool(name, builder, upstream.PoolOptions{Health: health})
	return &poolEntry{pool: pool, done: make(chan struct{}), route: rc, discovery: d, target: target,
		warm: make(chan struct{})}, nil
}

// warmUp waits until every new pool has its first snapshot, or WarmTimeout, so a route added
// by a reload (or a static route) does not answer 503 for the moment discovery takes.
func (g *Gateway) warmUp(fresh []*poolEntry) {
	if len(fresh) == 0 {
		return
	}
	wait := g.opts.WarmTimeout
	if wait <= 0 {
		wait = DefaultWarmTimeout
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for _, pe := range fresh {
		select {
		case <-pe.warm:
		case <-timer.C:
			g.log.Warn("registry has not answered yet; routes to these pools answer 503 until it does",
				"waited", wait, "pools", coldPools(fresh))
			return
		case <-g.ctx.Done():
			return
		}
	}
}

// coldPools names the pools without a first snapshot.
func coldPools(pes []*poolEntry) []string {
	var names []string
	for _, pe := range pes {
		select {
		case <-pe.warm:
		default:
			names = append(names, pe.pool.Name())
		}
	}
	return names
}

// start runs a new pool's discovery watch and active health checks.
func (g *Gateway) start(pe *poolEntry) {
	ctx, cancel := context.WithCancel(g.ctx)
	pe.cancel = cancel
	rc := pe.route
	var jobs sync.WaitGroup
	jobs.Add(1)
	go func() {
		defer jobs.Done()
		first := true
		_ = pe.discovery.Watch(ctx, pe.target, func(s upstream.Snapshot) {
			pe.pool.Update(s)
			if first { // update is never called concurrently with itself
				first = false
				close(pe.warm)
			}
		})
	}()
	if rc.HealthCheck != nil {
		protocol, _ := upstream.ParseProtocol(rc.UpstreamProtocol) // validated by config
		checker := breaker.NewActiveChecker(pe.pool, rc.HealthCheck, g.opts.HealthClient, g.log, g.metrics.breaker).WithProtocol(protocol)
		if rc.HealthCheck.GRPC {
			// Plugged in here, not in breaker, so breaker's users link no gRPC.
			checker.WithProbe(grpcprobe.New(rc.HealthCheck, g.opts.HealthClient))
		}
		jobs.Add(1)
		go func() {
			defer jobs.Done()
			checker.Run(ctx)
		}()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(pe.done)
		jobs.Wait()
	}()
}

// poolKey identifies what a pool is: routes with the same key share one pool (and so the
// endpoints' state); a reload that keeps the key keeps the pool. JSON, not %v, so pointer
// fields compare by value.
func poolKey(rc *config.Route) string {
	b, _ := json.Marshal(struct {
		Registry, Service, Datacenter, LB string
		Tags                              []string
		Passing                           bool
		Upstreams                         []config.Upstream
		Passive                           *config.PassiveHealth
		Breaker                           *config.Breaker
		Check                             *config.HealthCheck
		Protocol                          string // active checks speak it
	}{rc.Registry(), rc.Service, rc.Datacenter, rc.LB, rc.Tags, rc.PassingOnly == nil || *rc.PassingOnly,
		rc.Upstreams, rc.PassiveHealth, rc.Breaker, rc.HealthCheck, rc.UpstreamProtocol})
	return string(b)
}

// poolName is a pool's human name: its service, or "static:" and the route's name (see
// routeNames) for static upstreams.
func poolName(rc *config.Route, route string) string {
	if rc.Service != "" {
		return rc.Service
	}
	return "static:" + route
}

// routeNames names every route for metrics, logs, pools and rate-limit state: host+prefix,
// and for a route with match conditions host+prefix+"#" and a short hash of its conditions.
// Routes sharing host and prefix so get distinct names, and a name does not change when
// routes are reordered or added around it: a route keeps its metric series and its rate
// limiter's buckets across such a reload.
func routeNames(routes []config.Route) []string {
	names := make([]string, len(routes))
	for i := range routes {
		rc := &routes[i]
		names[i] = routeName(rc)
		if rc.Match != nil {
			sum := sha256.Sum256([]byte(rc.ConditionsKey()))
			names[i] += "#" + hex.EncodeToString(sum[:4])
		}
	}
	return names
}

func routeName(rc *config.Route) string {
	if rc.Host != "" {
		return rc.Host + rc.Prefix
	}
	return rc.Prefix
}
