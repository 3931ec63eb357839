// Package proxy is the gateway's public http.Handler: it matches a route in an immutable
// table, picks an endpoint from the route's pool, forwards the request, retries what is safe
// to retry, and reports every attempt's outcome to the endpoint's health.
package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/upstream"
	"golang.org/x/net/http/httpguts"
)

// Options configure a Handler.
type Options struct {
	// Transport sends requests upstream; it must return a 101 response's Body as an
	// io.ReadWriteCloser (http.Transport and proxy/h1 both do).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Metrics   *Metrics
}

// Handler is the public listener's handler. Its table is swapped atomically on reload; each
// request uses the table it loaded first, so a reload never affects a running request.
type Handler struct {
	metrics   *Metrics
	table     atomic.Pointer[Table]
	transport http.RoundTripper
	log       *slog.Logger
	unmatched prometheus.Counter
}

// New returns a handler with an empty table (every request 404s until SetTable).
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	h := &Handler{transport: o.Transport, log: o.Logger, metrics: o.Metrics}
	h.unmatched = o.Metrics.requests.WithLabelValues("", "4xx")
	h.table.Store(NewTable(nil, nil))
	return h
}

// Metrics returns the collectors routes of this handler report to (see NewRoute).
func (h *Handler) Metrics() *Metrics { return h.metrics }

// SetTable swaps the route table atomically.
func (h *Handler) SetTable(t *Table) { h.table.Store(t) }

// Table returns the current route table.
func (h *Handler) Table() *Table { return h.table.Load() }

// ServeHTTP matches the route and proxies the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t := h.table.Load()
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.URL.Path, "/") {
		// CONNECT tunnels and "OPTIONS *" are not routable: the gateway is no forward proxy.
		reqID := requestID(r.Header)
		w.Header()["X-Request-Id"] = []string{reqID}
		writeError(w, http.StatusBadRequest, reqID)
		return
	}
	// The cleaned path is both what is matched and what is forwarded, so "/public/../admin"
	// (or "/public/%2e%2e/admin", which net/http has already decoded) is routed as "/admin".
	p := cleanPath(r.URL.Path)
	rt := t.Match(r.Host, p)
	if rt == nil {
		reqID := requestID(r.Header)
		w.Header()["X-Request-Id"] = []string{reqID}
		writeError(w, http.StatusNotFound, reqID)
		h.unmatched.Inc()
		return
	}
	h.serveRoute(w, r, t, rt, p, start)
}

// exchange is the state of one request across its attempts.
type exchange struct {
	h       *Handler
	w       http.ResponseWriter
	rt      *Route
	r       *http.Request
	reqID   string
	path    string // forwarded path
	header  http.Header
	upgrade string
	body    *replayBody // non-nil when the body may be replayed for a retry
}

func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, t *Table, rt *Route, cleaned string, start time.Time) {
	// One backing array for the small header values this request sets (request ID,
	// X-Forwarded-*): fewer allocations on the hot path. Slices of it are capped, so an
	// append by anyone later copies instead of overwriting a neighbour.
	vals := make([]string, 4)
	vals[0] = requestID(r.Header)
	reqID := vals[0]
	ci := t.trust.resolveClient(r)
	wh := w.Header()
	wh["X-Request-Id"] = vals[0:1:1]

	if rt.Limiter != nil && !rt.Limiter.Allow(r, ci.ip, wh) {
		writeError(w, http.StatusTooManyRequests, reqID)
		h.finish(rt, r, http.StatusTooManyRequests, 0, "", reqID, start)
		return
	}
	rt.budget.active.Add(1)
	defer rt.budget.active.Add(-1)

	x := exchange{h: h, w: w, rt: rt, r: r, reqID: reqID, path: cleaned}
	if rt.StripPrefix {
		x.path = cleaned[len(rt.Prefix):]
		if x.path == "" || x.path[0] != '/' {
			x.path = "/" + x.path
		}
	}
	x.header = copyRequestHeaders(r.Header)
	setForwarded(x.header, r, ci, vals[1:4])
	x.header["X-Request-Id"] = vals[0:1:1]
	if x.upgrade = upgradeType(r.Header); x.upgrade != "" {
		x.header["Connection"] = []string{"Upgrade"}
		x.header["Upgrade"] = []string{x.upgrade}
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		x.header["Te"] = []string{"trailers"} // the one Te value a proxy may forward (RFC 9110 10.1.4)
	}

	attempts := 1
	if rt.Retry != nil && rt.Retries > 0 && x.upgrade == "" && isIdempotent(r) {
		attempts += rt.Retries
		if hasBody(r) {
			if r.ContentLength > rt.Retry.MaxBodyBytes {
				attempts = 1 // too large to keep for a replay
			} else {
				x.body = newReplayBody(r.Body, rt.Retry.MaxBodyBytes)
			}
		}
	}
	status, n, key := x.run(w, attempts)
	h.finish(rt, r, status, n, key, reqID, start)
}

func (h *Handler) finish(rt *Route, r *http.Request, status int, n int64, key, reqID string, start time.Time) {
	d := time.Since(start)
	rt.metrics.observe(status, d)
	if rt.AccessLog {
		accessLog(h.log, rt, r, status, n, key, reqID, d)
	}
}

// run makes up to attempts attempts on distinct endpoints and writes the response. It returns
// the status the client got (499 if it left), the body bytes sent and the last endpoint used.
func (x *exchange) run(w http.ResponseWriter, attempts int) (int, int64, string) {
	rt := x.rt
	var (
		ex       upstream.Excluded
		lastKind upstream.ErrorKind
		lastKey  string
		budgeted bool
	)
	defer func() {
		if budgeted {
			rt.budget.releaseRetry()
		}
	}()
	for i := 0; ; i++ {
		m, err := rt.Pool.Pick(x.r, ex)
		if err != nil {
			if i == 0 {
				rt.metrics.noEndpoint.Inc()
				writeError(w, http.StatusServiceUnavailable, x.reqID)
				return http.StatusServiceUnavailable, 0, ""
			}
			// Nothing left to retry on: report the previous attempt's failure.
			status := statusFor(lastKind)
			if status != StatusClientClosed {
				writeError(w, status, x.reqID)
			}
			return status, 0, lastKey
		}
		lastKey = m.Key
		a := x.attempt(m)
		last := i+1 >= attempts
		if a.res == nil {
			rt.metrics.upstreamErrors[a.kind].Inc()
			m.State.Done(upstream.Outcome{Err: a.kind, Latency: a.latency})
			lastKind = a.kind
			if !last && x.retryable(a.kind) && x.canRetry(&budgeted) {
				ex.Add(m.State)
				continue
			}
			status := statusFor(a.kind)
			if a.kind == upstream.ErrCanceled {
				x.h.log.LogAttrs(x.r.Context(), slog.LevelDebug, "client went away",
					slog.String("route", rt.Name), slog.String("request_id", x.reqID))
			} else {
				x.h.log.LogAttrs(x.r.Context(), slog.LevelWarn, "upstream failed",
					slog.String("route", rt.Name), slog.String("upstream", m.Key),
					slog.String("kind", a.kind.String()), slog.String("error", a.err.Error()),
					slog.String("request_id", x.reqID))
				writeError(w, status, x.reqID)
			}
			return status, 0, m.Key
		}
		if !last && rt.Retry != nil && slices.Contains(rt.Retry.OnStatus, a.res.StatusCode) && x.canRetry(&budgeted) {
			drainAndClose(a.res)
			a.cancel()
			m.State.Done(upstream.Outcome{Status: a.res.StatusCode, Latency: a.latency})
			ex.Add(m.State)
			continue
		}
		status, n, kind := x.h.writeResponse(w, x.r, a.res)
		a.cancel()
		if kind != upstream.ErrNone && kind != upstream.ErrCanceled {
			rt.metrics.upstreamErrors[kind].Inc()
		}
		m.State.Done(upstream.Outcome{Status: a.res.StatusCode, Err: kind, Latency: a.latency})
		return status, n, m.Key
	}
}

// retryable reports whether a failed attempt may be retried: never after the client left,
// only for timeouts when the route asks for it, and only when the body can be replayed.
func (x *exchange) retryable(k upstream.ErrorKind) bool {
	switch k {
	case upstream.ErrConnect, upstream.ErrReset:
	case upstream.ErrTimeout:
		if !x.rt.Retry.OnTimeout {
			return false
		}
	default:
		return false
	}
	return x.body == nil || x.body.rewind()
}

// canRetry takes a slot of the route's retry budget (once per request) and counts the retry.
func (x *exchange) canRetry(budgeted *bool) bool {
	if x.rt.Retry == nil {
		return false
	}
	if !*budgeted {
		if !x.rt.budget.acquire() {
			x.rt.metrics.budgetDenied.Inc()
			return false
		}
		*budgeted = true
	}
	x.rt.metrics.retried.Inc()
	return true
}

// attemptState is what one attempt's outgoing request refers to, allocated together.
type attemptState struct {
	url      url.URL
	trace    httptrace.ClientTrace
	timedOut atomic.Bool
}

// attemptResult is one upstream exchange up to response headers.
type attemptResult struct {
	res     *http.Response
	err     error
	kind    upstream.ErrorKind
	latency time.Duration
	cancel  context.CancelFunc // ends the attempt's context once the body is done
}

// attempt sends the request to m and waits for response headers, bounded by the route's
// timeout (per try, if set). The timeout covers only the wait for headers: a long download
// or stream is not cut off by it.
func (x *exchange) attempt(m *upstream.Member) attemptResult {
	rt := x.rt
	// One allocation holds what the attempt's request points at.
	st := &attemptState{url: url.URL{Scheme: m.Scheme, Host: m.Key, Path: x.path, RawQuery: x.r.URL.RawQuery}}
	ctx, cancel := context.WithCancel(x.r.Context())
	timeout := rt.Timeout
	if rt.Retry != nil && rt.Retry.PerTryTimeout > 0 {
		timeout = rt.Retry.PerTryTimeout
	}
	// Informational responses (103 Early Hints) are relayed as they arrive, as httputil does.
	st.trace.Got1xxResponse = x.relay1xx
	ctx = httptrace.WithClientTrace(ctx, &st.trace)
	var timer *time.Timer
	timedOut := &st.timedOut
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() {
			timedOut.Store(true)
			cancel()
		})
	}
	out := x.r.WithContext(ctx)
	out.URL = &st.url
	out.Header = x.header
	out.RequestURI = ""
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Close = false
	out.TransferEncoding = nil
	if x.body != nil {
		out.Body = x.body.reader()
	} else if !hasBody(x.r) {
		out.Body = nil
		out.ContentLength = 0
	}

	start := time.Now()
	res, err := x.h.transport.RoundTrip(out)
	lat := time.Since(start)
	if timer != nil {
		timer.Stop()
	}
	if err != nil {
		cancel()
		clientGone := x.r.Context().Err() != nil
		return attemptResult{err: err, kind: classify(err, clientGone, timedOut.Load()), latency: lat, cancel: cancel}
	}
	return attemptResult{res: res, latency: lat, cancel: cancel}
}

// relay1xx forwards an upstream's informational response to the client. 101 is not
// relayed here: a protocol switch is completed by tunnel.
func (x *exchange) relay1xx(code int, header textproto.MIMEHeader) error {
	if code == http.StatusSwitchingProtocols {
		return nil
	}
	h := x.w.Header()
	saved := h.Clone()
	for k, vv := range header {
		h[k] = vv
	}
	x.w.WriteHeader(code)
	// net/http does not clear headers after a 1xx: put back exactly what the final
	// response should carry.
	clear(h)
	for k, vv := range saved {
		h[k] = vv
	}
	return nil
}

// hasBody reports whether r carries a request body.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// isIdempotent follows RFC 9110 9.2.2, plus requests that carry an Idempotency-Key.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// bufPool holds copy buffers; 32 KiB matches io.Copy's default.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
