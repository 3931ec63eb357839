// Package admin serves the gateway's operator endpoints on their own listener (never the
// public one): liveness, readiness, Prometheus metrics, JSON views of the routes and
// upstreams in force and of the config's source and revision, and, when asked for, pprof
// under /debug/pprof/ and expvar.
package admin

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/switchyard/switchyard/gateway"
)

// Source is what the admin endpoints report on; *gateway.Gateway is one. The JSON that
// /admin/routes and /admin/upstreams serve is gateway.RouteInfo and gateway.PoolInfo.
type Source interface {
	// Ready reports whether every pool has its first snapshot, naming those waiting.
	Ready() (bool, []string)
	// Routes describes the routes in force, in config order.
	Routes() []gateway.RouteInfo
	// Upstreams describes every pool and its endpoints.
	Upstreams() []gateway.PoolInfo
	// ConfigInfo describes the config in force, its source and revision, and the last
	// rejected document (/admin/config).
	ConfigInfo() gateway.ConfigInfo
}

// Options configure the admin handler.
type Options struct {
	Source   Source
	Gatherer prometheus.Gatherer // what /metrics exposes
	Logger   *slog.Logger
	// Exposed says the listener is reachable beyond loopback on purpose (admin_expose). The
	// Host check is then off: scrapers and operators name the gateway by whatever DNS name
	// or address the network gives it, which the gateway cannot list, and the protection
	// has to come from the network (firewall) instead.
	Exposed bool
	// Debug serves pprof under /debug/pprof/ and expvar at /debug/vars (admin_debug). Off,
	// both answer 404: profiles reveal memory contents and a CPU profile costs CPU.
	Debug bool
	// Draining, when set, reports whether the gateway is shutting down, and why. From then on
	// /readyz answers 503 {"status": "draining", "reason": ...} whatever the pools say, so
	// load balancers stop sending it connections, while /healthz stays 200: a liveness probe
	// failing during the drain would get the process killed before it finished.
	Draining func() (reason string, draining bool)
}

// New returns the admin router: /healthz, /readyz, /metrics, /admin/routes, /admin/upstreams,
// /admin/config, and with Debug /debug/pprof/ and /debug/vars. Unless Exposed, requests must
// name a loopback host (see loopbackHost).
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	if !o.Exposed {
		r.Use(requireLoopbackHost)
	}
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Draining != nil {
			if reason, draining := o.Draining(); draining {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining", "reason": reason})
				return
			}
		}
		ok, waiting := o.Source.Ready()
		if !ok {
			if waiting == nil {
				waiting = []string{}
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "waiting", "pools_waiting": waiting})
			return
		}
		body := map[string]string{"status": "ready"}
		if d := configDetail(o.Source.ConfigInfo()); d != "" {
			body["config"] = d
		}
		writeJSON(w, http.StatusOK, body)
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelError),
	}))
	if o.Debug {
		// pprof on the admin listener only: profiles of a live gateway, never exposed publicly.
		r.Mount("/debug", middleware.Profiler())
	}
	r.Get("/admin/routes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Source.Routes())
	})
	r.Get("/admin/upstreams", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Source.Upstreams())
	})
	r.Get("/admin/config", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Source.ConfigInfo())
	})
	return r
}

// configDetail is /readyz's "config" note while the gateway serves its last-known-good copy
// and no document from etcd has been applied yet; "" otherwise. The gateway is still ready:
// it serves a config.
func configDetail(ci gateway.ConfigInfo) string {
	l := ci.LastKnownGood
	switch {
	case l == nil || l.Superseded:
		return ""
	case l.EtcdAnswered:
		return fmt.Sprintf("last-known-good copy (rev %d); etcd's document was rejected (see /admin/config)", l.Revision)
	default:
		return fmt.Sprintf("last-known-good copy (rev %d); etcd unreachable", l.Revision)
	}
}

// requireLoopbackHost answers 421 Misdirected Request to a request whose Host is not a
// loopback name. It stops DNS rebinding: a web page the operator opens can make its own
// name resolve to 127.0.0.1 and then, same-origin as far as the browser knows, read the
// admin API (routes, upstream addresses, profiles) and send it home. The Host header still
// carries the page's name, so answering only loopback names defeats it. 421 (RFC 9110
// 15.5.20) says "this server does not serve that authority", which is exactly the case.
func requireLoopbackHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			writeJSON(w, http.StatusMisdirectedRequest, map[string]string{
				"error": "the admin API answers only requests for localhost, 127.0.0.1 or [::1] (admin_expose: true turns this check off)",
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine: localhost, an address in
// 127.0.0.0/8 or ::1, with any port. An empty Host (HTTP/1.0) passes: browsers always send
// one, so it cannot come from a rebinding page.
func loopbackHost(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
