package gateway

import (
	"fmt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy"
)

// poolSet collects the pools one Apply uses: a pool whose key the running config already
// has is kept (with its endpoints' state and watch), others are made and started later.
type poolSet struct {
	g     *Gateway
	next  map[string]*poolEntry
	fresh []*poolEntry
}

// get returns the pool for rc (a route, or backendRoute's copy of one), named name when it
// is new.
func (s *poolSet) get(rc *config.Route, name string) (*poolEntry, error) {
	key := poolKey(rc)
	if pe := s.next[key]; pe != nil {
		return pe, nil
	}
	pe := s.g.pools[key]
	if pe == nil {
		var err error
		if pe, err = s.g.newPool(rc, name); err != nil {
			return nil, err
		}
		s.fresh = append(s.fresh, pe)
	}
	s.next[key] = pe
	return pe, nil
}

// routeOptions returns the pools a route sends traffic to: its own pool, or one per split
// branch, and its mirror's pool. Branch and mirror pools are route pools in every respect
// (shared by key, warmed, counted by readiness, stopped when no route uses them).
func (s *poolSet) routeOptions(rc *config.Route, name string) (proxy.RouteOptions, error) {
	var o proxy.RouteOptions
	if len(rc.Split) == 0 {
		pe, err := s.get(rc, poolName(rc, name))
		if err != nil {
			return o, err
		}
		o.Pool = pe.pool
	}
	for i := range rc.Split {
		b := &rc.Split[i].Backend
		pe, err := s.get(backendRoute(rc, b), backendPoolName(name, b, fmt.Sprintf("#%d", i)))
		if err != nil {
			return o, fmt.Errorf("split[%d]: %w", i, err)
		}
		o.Branches = append(o.Branches, proxy.Branch{Pool: pe.pool, Weight: rc.Split[i].Weight})
	}
	if rc.Mirror != nil {
		b := &rc.Mirror.Backend
		pe, err := s.get(backendRoute(rc, b), backendPoolName(name, b, "#mirror"))
		if err != nil {
			return o, fmt.Errorf("mirror: %w", err)
		}
		o.MirrorPool = pe.pool
	}
	return o, nil
}

// backendRoute is rc with its backend replaced by b (a split branch or a mirror), so that
// pool's key, registry query and policy are made exactly as a route's.
func backendRoute(rc *config.Route, b *config.Backend) *config.Route {
	c := *rc
	c.Service, c.Upstreams, c.Discovery, c.Tags, c.Datacenter = b.Service, b.Upstreams, b.Discovery, b.Tags, b.Datacenter
	c.Split, c.Sticky, c.Mirror = nil, nil, nil
	return &c
}

// backendPoolName names a branch's or mirror's pool: its service, or
// "static:<route name><suffix>" for static upstreams.
func backendPoolName(route string, b *config.Backend, suffix string) string {
	if b.Service != "" {
		return b.Service
	}
	return "static:" + route + suffix
}

// closeRoutes stops the background work of routes no longer in the table.
func closeRoutes(routes []*proxy.Route) {
	for _, r := range routes {
		r.Close()
	}
}

// backendInfo fills the split and mirror pools of a route's admin description.
func backendInfo(ri *RouteInfo, rc *config.Route) {
	if len(rc.Split) > 0 {
		ri.Pool = ""
	}
	for i := range rc.Split {
		b := &rc.Split[i]
		ri.Split = append(ri.Split, BranchInfo{Pool: backendPoolName(ri.Name, &b.Backend, fmt.Sprintf("#%d", i)), Weight: b.Weight})
	}
	if rc.Mirror != nil {
		ri.Mirror = backendPoolName(ri.Name, &rc.Mirror.Backend, "#mirror")
	}
}
