package gateway

import (
	"fmt"
	"net/url"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/ratelimit"
	"github.com/switchyard/switchyard/upstream"
)

// targetOf is what a route's pool asks its registry to watch: the service and its query, or
// the route's fixed upstreams: list as endpoints for the static registry.
func targetOf(rc *config.Route) (upstream.Target, error) {
	t := upstream.Target{
		Service:        rc.Service,
		Tags:           slices.Clone(rc.Tags),
		Datacenter:     rc.Datacenter,
		IncludeWarning: rc.PassingOnly != nil && !*rc.PassingOnly,
	}
	for _, u := range rc.Upstreams {
		pu, err := url.Parse(u.URL)
		if err != nil {
			return upstream.Target{}, fmt.Errorf("upstream %q: %w", u.URL, err)
		}
		ep, err := upstream.ParseEntry([]byte(pu.Scheme + "://" + pu.Host))
		if err != nil {
			return upstream.Target{}, fmt.Errorf("upstream %q: %w", u.URL, err)
		}
		ep.Weight = u.Weight
		t.Endpoints = append(t.Endpoints, ep)
	}
	return t, nil
}

// gatewayMetrics groups every collector the gateway's parts register.
type gatewayMetrics struct {
	proxy     *proxy.Metrics
	breaker   *breaker.Metrics
	ratelimit *ratelimit.Metrics
	auth      *auth.Metrics
	routes    prometheus.Gauge
	reloads   *prometheus.CounterVec
	revision  prometheus.Gauge
}

func newGatewayMetrics(reg prometheus.Registerer, pm *proxy.Metrics) *gatewayMetrics {
	m := &gatewayMetrics{
		proxy:     pm,
		breaker:   breaker.NewMetrics(reg),
		ratelimit: ratelimit.NewMetrics(reg),
		auth:      auth.NewMetrics(reg),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_routes_loaded",
			Help: "Routes in the table in force.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_config_reloads_total",
			Help: "Config reloads by result (ok, failed); a failed reload keeps the old config serving.",
		}, []string{"result"}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_config_revision",
			Help: "etcd mod revision of the config in force; 0 for a config file.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.routes, m.reloads, m.revision)
	}
	return m
}
