package proxy

import (
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/upstream"
)

// Route is the compiled, immutable runtime form of one configured route.
type Route struct {
	Name        string // "host/prefix" or "prefix": metric label and log field
	Prefix      string
	Host        string // "" any, an exact name, or "*.example.com": see Table.Match
	StripPrefix bool
	Pool        *upstream.Pool
	Timeout     time.Duration // until response headers; 0 = none
	Retries     int           // extra attempts on other endpoints
	Retry       *config.Retry // nil: no retries
	AccessLog   bool
	// Upgrades are the protocols (lower case) a client may switch to; others are dropped.
	Upgrades []string
	// RejectEncodedSlashes answers 400 to a path with %2F or %5C (encoded_slashes: reject).
	RejectEncodedSlashes bool
	// Filters run before forwarding and around the response; nil or empty: none.
	Filters *filter.Chain
	// RewriteHost is the Host sent upstream (rewrite.host); "": the client's.
	RewriteHost string

	protocol upstream.Protocol // upstream_protocol; each endpoint resolves it (Endpoint.Resolve)

	// matchPrefix and rewritePrefix are the route's prefix and rewrite.prefix in canonical
	// escaped form; rewritePrefix is "" when the route does not rewrite (strip_prefix is
	// handled by StripPrefix).
	matchPrefix   string
	rewritePrefix string

	budget  retryBudget
	metrics routeMetrics
	split   *splitter // nil: no split
	sticky  *sticky   // nil: no sticky cookie
	mirror  *mirror   // nil: no mirror

	conditions *conditions // the route's match: block, compiled; nil: none
}

// RouteOptions are what NewRoute needs besides the route's config.
type RouteOptions struct {
	// Name is the route's name in metrics and logs; "" means host+prefix. Routes that share
	// host and prefix (and differ by conditions) need distinct names.
	Name    string
	Pool    *upstream.Pool
	Metrics *Metrics
	Filters *filter.Chain
	// Branches are a split route's weighted pools (Pool, and so Route.Pool, is then nil).
	Branches []Branch
	// MirrorPool receives copies of the route's requests when its config has mirror:.
	// NewRoute then starts the mirror's workers: Close the route when it is retired.
	MirrorPool *upstream.Pool
}

// NewRoute compiles a configured route. The config must have been loaded by config.Load (so
// defaults are complete).
func NewRoute(rc *config.Route, o RouteOptions) *Route {
	name := o.Name
	if name == "" {
		name = rc.Prefix
		if rc.Host != "" {
			name = rc.Host + rc.Prefix
		}
	}
	r := &Route{
		Name:        name,
		Prefix:      rc.Prefix,
		Host:        rc.Host,
		StripPrefix: rc.StripPrefix && rc.Prefix != "/",
		Pool:        o.Pool,
		Timeout:     rc.Timeout,
		Retry:       rc.Retry,

		RejectEncodedSlashes: rc.EncodedSlashes == config.EncodedSlashesReject,
		conditions:           newConditions(rc.Match, answersPreflights(rc.CORS)),
	}
	if !o.Filters.Empty() {
		r.Filters = o.Filters
	}
	if rw := rc.Rewrite; rw != nil {
		r.RewriteHost = rw.Host
		if rw.Prefix != "" && !(rw.Prefix == "/" && r.StripPrefix) {
			r.matchPrefix, _ = canonicalPrefix(rc.Prefix)
			r.rewritePrefix, _ = canonicalPrefix(rw.Prefix)
			r.StripPrefix = false
		}
	}
	for _, u := range rc.Upgrades {
		r.Upgrades = append(r.Upgrades, strings.ToLower(u))
	}
	if rc.Retries != nil && rc.Retry != nil {
		r.Retries = *rc.Retries
	}
	if rc.AccessLog != nil {
		r.AccessLog = *rc.AccessLog
	}
	r.protocol, _ = upstream.ParseProtocol(rc.UpstreamProtocol) // validated by config; "" is auto
	if rc.Retry != nil {
		r.budget = retryBudget{percent: rc.Retry.BudgetPercent, min: int64(rc.Retry.MinRetryConcurrency)}
	}
	r.metrics = o.Metrics.forRoute(name)
	r.traffic(rc, o)
	return r
}

// tryTimeout bounds one attempt: the per-try timeout when set, else the route's.
func (r *Route) tryTimeout() time.Duration {
	if r.Retry != nil && r.Retry.PerTryTimeout > 0 {
		return r.Retry.PerTryTimeout
	}
	return r.Timeout
}

// allowsUpgrade reports whether the route forwards a switch to protocol. h2c never passes,
// whatever the list says: an h2c tunnel would carry requests past routing and every filter.
func (r *Route) allowsUpgrade(protocol string) bool {
	if strings.EqualFold(protocol, "h2c") {
		return false
	}
	for _, u := range r.Upgrades {
		if strings.EqualFold(u, protocol) {
			return true
		}
	}
	return false
}

// retryBudget is Envoy's retry budget: retries in flight may not exceed percent of the
// route's active requests, but min retries are always allowed, so retries cannot amplify an
// outage into a storm.
type retryBudget struct {
	percent float64
	min     int64
	active  atomic.Int64 // requests in flight on the route
	retries atomic.Int64 // retries in flight on the route
}

// acquire reserves one retry if the budget allows it; release it with releaseRetry.
func (b *retryBudget) acquire() bool {
	n := b.retries.Add(1)
	limit := int64(b.percent / 100 * float64(b.active.Load()))
	if limit < b.min {
		limit = b.min
	}
	if n > limit {
		b.retries.Add(-1)
		return false
	}
	return true
}

func (b *retryBudget) releaseRetry() { b.retries.Add(-1) }

// Metrics are the proxy's Prometheus collectors.
type Metrics struct {
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	retries        *prometheus.CounterVec
	noEndpoint     *prometheus.CounterVec
	mirror         *prometheus.CounterVec
	grpc           *prometheus.CounterVec
}

// NewMetrics creates the proxy's collectors and registers them with reg (if non-nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_requests_total",
			Help: "Requests handled, by route and status class (1xx..5xx); unmatched requests have route \"\".",
		}, []string{"route", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_request_duration_seconds",
			Help:    "Time from request received to response fully sent, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_upstream_errors_total",
			Help: "Failed upstream attempts, by route and kind (connect, timeout, reset, protocol, canceled).",
		}, []string{"route", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_retries_total",
			Help: "Retry decisions by route and result (attempted, budget_denied).",
		}, []string{"route", "result"}),
		noEndpoint: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_no_endpoint_total",
			Help: "Requests answered 503 because the route's pool had no available endpoint.",
		}, []string{"route"}),
		mirror: newMirrorCounter(),
		grpc: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_grpc_responses_total",
			Help: "gRPC requests by route and the gRPC status they ended with (upstream's, or the gateway's own answer).",
		}, []string{"route", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.upstreamErrors, m.retries, m.noEndpoint, m.mirror, m.grpc)
	}
	return m
}

// routeMetrics holds one route's series. Each is created on its first use, not with the
// route: at 10,000 routes, creating all 31 series per route up front cost 7.8 KB per route
// (a third of the gateway's heap) and 310,000 series in every scrape, mostly zeros of routes
// and error kinds that never happen. After the first use a series costs an atomic load, no
// label lookup and no allocation.
type routeMetrics struct {
	classes        [6]*lazyCounter // index status/100; 0 unused
	latency        *lazyObserver
	upstreamErrors [6]*lazyCounter // by upstream.ErrorKind
	retried        *lazyCounter
	budgetDenied   *lazyCounter
	noEndpoint     *lazyCounter
	grpc           *grpcMetrics
}

func (m *Metrics) forRoute(name string) routeMetrics {
	if m == nil {
		m = NewMetrics(nil) // unregistered: counts go nowhere, code paths stay branch-free
	}
	rm := routeMetrics{
		latency:      &lazyObserver{vec: m.latency, route: name},
		retried:      &lazyCounter{vec: m.retries, labels: [2]string{name, "attempted"}},
		budgetDenied: &lazyCounter{vec: m.retries, labels: [2]string{name, "budget_denied"}},
		noEndpoint:   &lazyCounter{vec: m.noEndpoint, labels: [2]string{name}, single: true},
	}
	for c := 1; c <= 5; c++ {
		rm.classes[c] = &lazyCounter{vec: m.requests, labels: [2]string{name, string(rune('0'+c)) + "xx"}}
	}
	for k := upstream.ErrConnect; k <= upstream.ErrCanceled; k++ {
		rm.upstreamErrors[k] = &lazyCounter{vec: m.upstreamErrors, labels: [2]string{name, k.String()}}
	}
	rm.grpc = &grpcMetrics{vec: m.grpc, route: name}
	return rm
}

// lazyCounter is one counter series of a route, created in its vector on the first Inc.
type lazyCounter struct {
	vec    *prometheus.CounterVec
	labels [2]string
	single bool // the vector has one label, labels[0]
	series atomic.Pointer[counterSeries]
}

// counterSeries boxes the interface so it can sit behind an atomic pointer.
type counterSeries struct{ prometheus.Counter }

// Inc adds one, creating the series first if this is its first use. Two first uses at once
// resolve the same series (WithLabelValues returns the existing child), so no count is lost.
func (l *lazyCounter) Inc() {
	s := l.series.Load()
	if s == nil {
		labels := l.labels[:]
		if l.single {
			labels = labels[:1]
		}
		s = &counterSeries{l.vec.WithLabelValues(labels...)}
		l.series.Store(s)
	}
	s.Inc()
}

// lazyObserver is a route's latency histogram, created in its vector on the first Observe.
type lazyObserver struct {
	vec    *prometheus.HistogramVec
	route  string
	series atomic.Pointer[observerSeries]
}

type observerSeries struct{ prometheus.Observer }

// Observe records v, creating the histogram first if this is its first use.
func (l *lazyObserver) Observe(v float64) {
	s := l.series.Load()
	if s == nil {
		s = &observerSeries{l.vec.WithLabelValues(l.route)}
		l.series.Store(s)
	}
	s.Observe(v)
}

func (rm *routeMetrics) observe(status int, d time.Duration) {
	if c := status / 100; c >= 1 && c <= 5 {
		rm.classes[c].Inc()
	}
	rm.latency.Observe(d.Seconds())
}

// accessLog writes one line per request for routes with access_log on: remote is the TCP
// peer, client the address the gateway believes (the peer, or from a trusted proxy's
// X-Forwarded-For), the one rate limits key on. A gRPC request's line has one more field,
// grpc_status: the status the call ended with (the HTTP status is 200 for most gRPC answers).
func accessLog(log *slog.Logger, rt *Route, r *http.Request, rec *requestRecord, d time.Duration) {
	attrs := [...]slog.Attr{
		slog.String("route", rt.Name),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.String("upstream", rec.upstream),
		slog.String("request_id", rec.reqID),
		slog.String("remote", r.RemoteAddr),
		slog.String("client", rec.client),
		slog.String("identity", rec.identity), // who auth admitted (mechanism:name), never a credential
		slog.Duration("duration", d),
		{}, // grpc_status, for gRPC requests only
	}
	n := len(attrs) - 1
	if rec.grpcStatus != noGRPCStatus {
		attrs[n] = slog.String("grpc_status", grpcStatusName(rec.grpcStatus))
		n++
	}
	log.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs[:n]...)
}
