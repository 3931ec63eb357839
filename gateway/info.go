package gateway

import (
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy"
)

// RouteInfo describes one route for the admin API.
type RouteInfo struct {
	Name        string            `json:"name"`
	Prefix      string            `json:"prefix"`
	Host        string            `json:"host,omitempty"`
	Registry    string            `json:"registry"`
	Service     string            `json:"service,omitempty"`
	Upstreams   []config.Upstream `json:"upstreams,omitempty"`
	Pool        string            `json:"pool,omitempty"`   // "" for a split route: see Split
	Split       []BranchInfo      `json:"split,omitempty"`  // a split route's branches
	Mirror      string            `json:"mirror,omitempty"` // the mirror's pool
	LB          string            `json:"lb"`
	StripPrefix bool              `json:"strip_prefix"`
	Timeout     string            `json:"timeout"`
	Retries     int               `json:"retries"`
	RateLimit   *config.RateLimit `json:"rate_limit,omitempty"`
	Line        int               `json:"line"`
}

// BranchInfo is one branch of a split route: its pool and weight.
type BranchInfo struct {
	Pool   string `json:"pool"`
	Weight int    `json:"weight"`
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
			Name: g.routes[i].Name, Prefix: rc.Prefix, Host: rc.Host, Registry: rc.Registry(),
			Service: rc.Service, Upstreams: rc.Upstreams, Pool: routePoolName(g.routes[i]), LB: rc.LB,
			StripPrefix: rc.StripPrefix, Timeout: rc.Timeout.String(), Retries: g.routes[i].Retries,
			RateLimit: rc.RateLimit, Line: rc.Line,
		})
		backendInfo(&out[len(out)-1], rc)
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

// maxRejectedErrors bounds the errors ConfigInfo keeps for a rejected document.
const maxRejectedErrors = 100

// ConfigInfo describes the config in force and the last one rejected, for /admin/config.
type ConfigInfo struct {
	// Source is where the config comes from: "file:PATH" or "etcd:KEY" (never credentials).
	Source string `json:"source"`
	// Revision is the etcd mod revision of the document in force; 0 for a file.
	Revision  int64      `json:"revision"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	// Digest is the SHA-256 of the document in force, "sha256:" and hex.
	Digest string `json:"digest,omitempty"`
	// LastKnownGood is set when the gateway started from its last-known-good copy.
	LastKnownGood *LastKnownGoodInfo `json:"last_known_good,omitempty"`
	// LastRejected is the last document that failed to load or apply.
	LastRejected *RejectedInfo `json:"last_rejected,omitempty"`
}

// LastKnownGoodInfo says the gateway started from its on-disk copy because etcd did not answer.
type LastKnownGoodInfo struct {
	Revision int64 `json:"revision"`
	// EtcdAnswered is true once a document has been read from etcd (applied or rejected).
	EtcdAnswered bool `json:"etcd_answered"`
	// Superseded is true once a document read from etcd has been applied.
	Superseded bool `json:"superseded"`
}

// RejectedInfo is a document that failed to load or apply; the previous config kept serving.
type RejectedInfo struct {
	Revision int64     `json:"revision,omitempty"` // etcd mod revision; 0 for a file
	At       time.Time `json:"at"`
	// Errors are its "file:line: field: message" errors, the first maxRejectedErrors of them;
	// Truncated says there were more.
	Errors    []string `json:"errors"`
	Truncated bool     `json:"truncated,omitempty"`
}

// ConfigSource tells the gateway where the config it was started with came from.
type ConfigSource struct {
	Name     string // "file:PATH" or "etcd:KEY"
	Revision int64  // etcd mod revision of the config in force; 0 for a file
	// FromLastKnownGood says the config in force was read from the last-known-good copy.
	FromLastKnownGood bool
}

// configState is what ConfigInfo reports; guarded by its own mutex.
type configState struct {
	mu       sync.Mutex
	source   string
	revision int64
	applied  time.Time
	lkg      *LastKnownGoodInfo
	rejected *RejectedInfo
}

// SetConfigSource records where the config in force came from (called once serving starts).
func (g *Gateway) SetConfigSource(s ConfigSource) {
	st := &g.configState
	st.mu.Lock()
	st.source, st.revision = s.Name, s.Revision
	st.lkg = nil
	if s.FromLastKnownGood {
		st.lkg = &LastKnownGoodInfo{Revision: s.Revision}
	}
	st.mu.Unlock()
	g.metrics.revision.Set(float64(s.Revision))
}

// applied records a config put in force, read from etcd at revision rev (0: a file).
func (g *Gateway) applied(rev int64, fromEtcd bool) {
	st := &g.configState
	st.mu.Lock()
	st.revision, st.applied = rev, time.Now()
	if fromEtcd && st.lkg != nil {
		st.lkg.EtcdAnswered, st.lkg.Superseded = true, true
	}
	st.mu.Unlock()
	g.metrics.revision.Set(float64(rev))
}

// rejected records a document that failed to load or apply.
func (g *Gateway) rejected(rev int64, fromEtcd bool, errs []string) {
	r := &RejectedInfo{Revision: rev, At: time.Now(), Truncated: len(errs) > maxRejectedErrors}
	r.Errors = slices.Clone(errs[:min(len(errs), maxRejectedErrors)])
	st := &g.configState
	st.mu.Lock()
	st.rejected = r
	if fromEtcd && st.lkg != nil {
		st.lkg.EtcdAnswered = true
	}
	st.mu.Unlock()
}

// ConfigInfo describes the config in force, where it came from, and the last rejected one.
func (g *Gateway) ConfigInfo() ConfigInfo {
	cfg := g.Config()
	st := &g.configState
	st.mu.Lock()
	defer st.mu.Unlock()
	ci := ConfigInfo{Source: st.source, Revision: st.revision}
	if ci.Source == "" && cfg != nil {
		ci.Source = "file:" + cfg.Path
	}
	if !st.applied.IsZero() {
		t := st.applied
		ci.AppliedAt = &t
	}
	if cfg != nil && len(cfg.Digest) > 0 {
		ci.Digest = "sha256:" + hex.EncodeToString(cfg.Digest)
	}
	if st.lkg != nil {
		l := *st.lkg
		ci.LastKnownGood = &l
	}
	if st.rejected != nil {
		r := *st.rejected
		r.Errors = slices.Clone(r.Errors)
		ci.LastRejected = &r
	}
	return ci
}

// routePoolName is the name of the route's own pool, "" for a split route (its branches'
// pools are listed in Split).
func routePoolName(r *proxy.Route) string {
	if r.Pool == nil {
		return ""
	}
	return r.Pool.Name()
}
