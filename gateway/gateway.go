// Package gateway turns a loaded config into the running gateway: one upstream pool per
// distinct (registry, service, query, policy) with its discovery watch and health checks,
// compiled routes with their rate limiters, and the proxy's route table. Apply swaps all of
// it atomically; pools whose key survives a reload keep their endpoints' state and watch.
package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/ratelimit"
	"github.com/switchyard/switchyard/upstream"
	"github.com/switchyard/switchyard/upstream/consul"
)

// Registries are the discoverers routes can use; nil fields are registries not configured.
type Registries struct {
	Etcd      upstream.Discoverer
	Consul    *consul.Discoverer // per-route queries (tags, datacenter, passing_only) via For
	ZooKeeper upstream.Discoverer
}

// Options configure a Gateway.
type Options struct {
	Registries Registries
	Handler    *proxy.Handler
	// HealthClient sends active health checks (the proxy's transport in an http.Client).
	HealthClient *http.Client
	Registerer   prometheus.Registerer // nil: metrics are not exported
	Logger       *slog.Logger
}

// Gateway owns the pools and watchers behind the proxy's route table.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	ctx     context.Context // watchers live until it ends
	metrics *gatewayMetrics

	mu       sync.Mutex // serialises Apply
	cfg      *config.Config
	pools    map[string]*poolEntry
	limiters map[string]*limiterEntry
	routes   []*proxy.Route
	wg       sync.WaitGroup
}

type poolEntry struct {
	pool   *upstream.Pool
	cancel context.CancelFunc
	done   chan struct{}
	route  *config.Route // the first route that asked for it, for admin output
}

type limiterEntry struct {
	key string
	lim proxy.Limiter
}

// New returns a gateway whose watchers run until ctx ends; call Apply to load a config and
// Wait after ctx ends to join the watchers.
func New(ctx context.Context, o Options) *Gateway {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Gateway{
		opts:     o,
		log:      o.Logger,
		ctx:      ctx,
		metrics:  newGatewayMetrics(o.Registerer, o.Handler.Metrics()),
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
	g.mu.Lock()
	defer g.mu.Unlock()

	nextPools := make(map[string]*poolEntry)
	var fresh []*poolEntry
	nextLimiters := make(map[string]*limiterEntry)
	routes := make([]*proxy.Route, 0, len(cfg.Routes))
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		key := poolKey(rc)
		pe := nextPools[key]
		if pe == nil {
			pe = g.pools[key]
			if pe == nil {
				var err error
				pe, err = g.newPool(rc)
				if err != nil {
					return fmt.Errorf("%s:%d: routes[%d]: %w", cfg.Path, rc.Line, i, err)
				}
				fresh = append(fresh, pe)
			}
			nextPools[key] = pe
		}
		var lim proxy.Limiter
		if rc.RateLimit != nil {
			name := routeName(rc)
			lkeyJSON, _ := json.Marshal(rc.RateLimit)
			lkey := string(lkeyJSON)
			if le := g.limiters[name]; le != nil && le.key == lkey {
				lim = le.lim // unchanged: keep its buckets across the reload
			} else {
				l, err := ratelimit.New(name, rc.RateLimit, g.metrics.ratelimit)
				if err != nil {
					return fmt.Errorf("%s:%d: routes[%d].rate_limit: %w", cfg.Path, rc.Line, i, err)
				}
				if l != nil {
					lim = l.WithHeaders()
				}
			}
			nextLimiters[name] = &limiterEntry{key: lkey, lim: lim}
		}
		routes = append(routes, proxy.NewRoute(rc, proxy.RouteOptions{
			Pool: pe.pool, Limiter: lim, Metrics: g.metrics.proxy,
		}))
	}

	for _, pe := range fresh {
		g.start(pe)
	}
	g.opts.Handler.SetTable(proxy.NewTable(routes, proxy.NewTrust(cfg.TrustedNets)))
	for key, pe := range g.pools {
		if _, ok := nextPools[key]; !ok {
			pe.cancel()
			<-pe.done
		}
	}
	g.pools, g.limiters, g.routes, g.cfg = nextPools, nextLimiters, routes, cfg
	g.metrics.routes.Set(float64(len(routes)))
	return nil
}

// Wait blocks until every watcher has stopped (after the context given to New ended).
func (g *Gateway) Wait() { g.wg.Wait() }

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

func (g *Gateway) newPool(rc *config.Route) (*poolEntry, error) {
	builder, err := lb.New(rc.LB)
	if err != nil {
		return nil, err
	}
	// NewRoutePolicy returns nil when passive health, breaker and active checks are all off;
	// keep the interface nil then, not a typed nil.
	var health upstream.HealthPolicy
	if hp := breaker.NewRoutePolicy(poolName(rc), &rc.Policy, g.metrics.breaker, g.log); hp != nil {
		health = hp
	}
	pool := upstream.NewPool(poolName(rc), builder, upstream.PoolOptions{Health: health})
	pe := &poolEntry{pool: pool, done: make(chan struct{}), route: rc}
	if rc.Registry() == config.RegistryStatic {
		snap, err := staticSnapshot(rc.Upstreams)
		if err != nil {
			return nil, err
		}
		pool.Update(snap)
		return pe, nil
	}
	if _, err := g.discoverer(rc); err != nil {
		return nil, err
	}
	return pe, nil
}

// start runs a new pool's discovery watch and active health checks.
func (g *Gateway) start(pe *poolEntry) {
	ctx, cancel := context.WithCancel(g.ctx)
	pe.cancel = cancel
	rc := pe.route
	var jobs sync.WaitGroup
	if rc.Registry() != config.RegistryStatic {
		d, _ := g.discoverer(rc) // checked in newPool
		jobs.Add(1)
		go func() {
			defer jobs.Done()
			_ = d.Watch(ctx, rc.Service, pe.pool.Update)
		}()
	}
	if rc.HealthCheck != nil {
		checker := breaker.NewActiveChecker(pe.pool, rc.HealthCheck, g.opts.HealthClient, g.log, g.metrics.breaker)
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

func (g *Gateway) discoverer(rc *config.Route) (upstream.Discoverer, error) {
	r := g.opts.Registries
	switch rc.Registry() {
	case config.RegistryEtcd:
		if r.Etcd != nil {
			return r.Etcd, nil
		}
	case config.RegistryConsul:
		if r.Consul != nil {
			passing := rc.PassingOnly == nil || *rc.PassingOnly
			return r.Consul.For(consul.Query{Tags: rc.Tags, Datacenter: rc.Datacenter, PassingOnly: passing}), nil
		}
	case config.RegistryZooKeeper:
		if r.ZooKeeper != nil {
			return r.ZooKeeper, nil
		}
	}
	return nil, fmt.Errorf("registry %q is not running (discovery changes need a restart)", rc.Registry())
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
	}{rc.Registry(), rc.Service, rc.Datacenter, rc.LB, rc.Tags, rc.PassingOnly == nil || *rc.PassingOnly,
		rc.Upstreams, rc.PassiveHealth, rc.Breaker, rc.HealthCheck})
	return string(b)
}

// poolName is a pool's human name: its service, or the route for static upstreams.
func poolName(rc *config.Route) string {
	if rc.Service != "" {
		return rc.Service
	}
	return "static:" + routeName(rc)
}

func routeName(rc *config.Route) string {
	if rc.Host != "" {
		return rc.Host + rc.Prefix
	}
	return rc.Prefix
}
