package gateway

import (
	"slices"
	"time"

	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/config"
)

// RouteInfo describes one route for the admin API.
type RouteInfo struct {
	Name        string            `json:"name"`
	Prefix      string            `json:"prefix"`
	Host        string            `json:"host,omitempty"`
	Registry    string            `json:"registry"`
	Service     string            `json:"service,omitempty"`
	Upstreams   []config.Upstream `json:"upstreams,omitempty"`
	Pool        string            `json:"pool"`
	LB          string            `json:"lb"`
	StripPrefix bool              `json:"strip_prefix"`
	Timeout     string            `json:"timeout"`
	Retries     int               `json:"retries"`
	RateLimit   *config.RateLimit `json:"rate_limit,omitempty"`
	Line        int               `json:"line"`
}

// EndpointInfo describes one endpoint of a pool.
type EndpointInfo struct {
	Key       string            `json:"key"`
	Scheme    string            `json:"scheme"`
	Weight    int               `json:"weight"`
	Meta      map[string]string `json:"meta,omitempty"`
	InFlight  int64             `json:"in_flight"`
	Available bool              `json:"available"`
	Health    *breaker.Status   `json:"health,omitempty"`
}

// PoolInfo describes one upstream pool.
type PoolInfo struct {
	Name      string         `json:"name"`
	Registry  string         `json:"registry"`
	Ready     bool           `json:"ready"`
	Version   uint64         `json:"version"`
	UpdatedAt *time.Time     `json:"updated_at,omitempty"`
	Endpoints []EndpointInfo `json:"endpoints"`
}

// Routes describes the routes in force, in config order.
func (g *Gateway) Routes() []RouteInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg == nil {
		return []RouteInfo{}
	}
	out := make([]RouteInfo, 0, len(g.cfg.Routes))
	for i := range g.cfg.Routes {
		rc := &g.cfg.Routes[i]
		out = append(out, RouteInfo{
			Name: routeName(rc), Prefix: rc.Prefix, Host: rc.Host, Registry: rc.Registry(),
			Service: rc.Service, Upstreams: rc.Upstreams, Pool: poolName(rc), LB: rc.LB,
			StripPrefix: rc.StripPrefix, Timeout: rc.Timeout.String(), Retries: g.routes[i].Retries,
			RateLimit: rc.RateLimit, Line: rc.Line,
		})
	}
	return out
}

// Upstreams describes every pool and each endpoint's state, sorted by pool name.
func (g *Gateway) Upstreams() []PoolInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]PoolInfo, 0, len(g.pools))
	for _, pe := range g.pools {
		pi := PoolInfo{Name: pe.pool.Name(), Registry: pe.route.Registry(), Endpoints: []EndpointInfo{}}
		if v := pe.pool.View(); v != nil {
			pi.Ready = true
			pi.Version = v.Version
			t := v.UpdatedAt
			pi.UpdatedAt = &t
			for _, m := range v.Members {
				ei := EndpointInfo{
					Key: m.Key, Scheme: m.Scheme, Weight: m.Weight, Meta: m.Meta,
					InFlight: m.State.InFlight(), Available: m.State.Available(),
				}
				if h := m.State.Health(); h != nil {
					if st, ok := breaker.StatusOf(h); ok {
						ei.Health = &st
					}
				}
				pi.Endpoints = append(pi.Endpoints, ei)
			}
		}
		out = append(out, pi)
	}
	slices.SortFunc(out, func(a, b PoolInfo) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
