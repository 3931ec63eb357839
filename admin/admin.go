// Package admin serves the gateway's operator endpoints on their own listener (never the
// public one): liveness, readiness, Prometheus metrics, JSON views of the routes and
// upstreams in force, and pprof under /debug/pprof/.
package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the admin endpoints report on (gateway.Gateway).
type Source interface {
	// Ready reports whether every pool has its first snapshot, naming those waiting.
	Ready() (bool, []string)
	// Routes and Upstreams return JSON-ready descriptions.
	Routes() any
	Upstreams() any
}

// Options configure the admin handler.
type Options struct {
	Source   Source
	Gatherer prometheus.Gatherer // what /metrics exposes
	Logger   *slog.Logger
}

// New returns the admin router: /healthz, /readyz, /metrics, /admin/routes, /admin/upstreams.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, waiting := o.Source.Ready()
		if !ok {
			if waiting == nil {
				waiting = []string{}
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "waiting", "pools_waiting": waiting})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelError),
	}))
	// pprof on the admin listener only: profiles of a live gateway, never exposed publicly.
	r.Mount("/debug", middleware.Profiler())
	r.Get("/admin/routes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Source.Routes())
	})
	r.Get("/admin/upstreams", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Source.Upstreams())
	})
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
