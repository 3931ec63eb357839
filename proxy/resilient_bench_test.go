package proxy

import (
	"github.com/switchyard/switchyard/filter"
	"testing"

	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/ratelimit"
	"github.com/switchyard/switchyard/upstream"
)

// resilientRoute builds spec's route with the real resilience layer on: outlier detection,
// circuit breaker (config defaults), retry budget and a rate limit high enough never to bite.
func resilientRoute(b *testing.B, spec routeSpec) *Route {
	cfg, err := config.Parse("bench.yaml", []byte(`
discovery: {}
routes:
  - prefix: /api
    upstreams: ["http://127.0.0.1:9"]
    rate_limit: { rps: 1e9, burst: 1000000 }
`))
	if err != nil {
		b.Fatal(err)
	}
	rc := &cfg.Routes[0]
	builder, _ := lb.New(config.LBRoundRobin)
	pool := upstream.NewPool("bench", builder, upstream.PoolOptions{Health: breaker.NewRoutePolicy("bench", &rc.Policy, nil, nil)})
	eps := make([]upstream.Endpoint, len(spec.backends))
	for i, k := range spec.backends {
		eps[i] = upstream.Endpoint{Key: k}
	}
	pool.Update(upstream.NewSnapshot(eps))
	lim, err := ratelimit.New("bench", rc.RateLimit, nil)
	if err != nil {
		b.Fatal(err)
	}
	var filters *filter.Chain
	if lim != nil {
		filters = &filter.Chain{Request: []filter.RequestFilter{lim}}
	}
	return NewRoute(rc, RouteOptions{Pool: pool, Filters: filters})
}
