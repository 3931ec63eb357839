// Package proxy is the gateway's public http.Handler: it matches a route in an immutable
// table, picks an endpoint from the route's pool, forwards the request, retries what is safe
// to retry, and reports every attempt's outcome to the endpoint's health.
package proxy

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/upstream"
	"golang.org/x/net/http/httpguts"
)

// Options configure a Handler.
type Options struct {
	// Transport sends requests upstream; it must return a 101 response's Body as an
	// io.ReadWriteCloser (http.Transport and proxy/h1 both do). A *Transport gives each
	// attempt the client for its endpoint's protocol; any other is used for every protocol.
	Transport http.RoundTripper
	Logger    *slog.Logger
	Metrics   *Metrics
	// Pacing bounds waits on slow clients while bodies move; nil: no bounds.
	Pacing *ClientPacing
}

// Handler is the public listener's handler. Its table is swapped atomically on reload; each
// request uses the table it loaded first, so a reload never affects a running request.
type Handler struct {
	metrics   *Metrics
	table     atomic.Pointer[Table]
	transport http.RoundTripper
	protocols *Transport // nil: transport serves every protocol
	log       *slog.Logger
	unmatched prometheus.Counter
	pacing    *ClientPacing
}

// New returns a handler with an empty table (every request 404s until SetTable).
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	h := &Handler{transport: o.Transport, log: o.Logger, metrics: o.Metrics, pacing: o.Pacing}
	h.protocols, _ = o.Transport.(*Transport)
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
	if r.ProtoMajor == 1 {
		if s := streamsFrom(r.Context()); s != nil && s.closeKeepAlives.Load() {
			w.Header()["Connection"] = []string{"close"} // draining: see Streams.CloseKeepAlives
		}
	}
	// CONNECT tunnels and "OPTIONS *" are not routable (the gateway is no forward proxy),
	// and a raw '#' cannot appear in a request target (RFC 9112 3.2): forwarding it as
	// "%23" would change what the upstream sees.
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.URL.Path, "/") || strings.IndexByte(r.RequestURI, '#') >= 0 {
		h.refuse(w, r, http.StatusBadRequest)
		return
	}
	// The canonical path is both what is matched and what is forwarded, so
	// "/public/%2e%2e/admin" is routed as "/admin", while "%2F" stays inside its segment
	// on both sides (never a separator the route did not see).
	p, ok := canonicalPath(requestPath(r.URL))
	if !ok {
		h.refuse(w, r, http.StatusBadRequest)
		return
	}
	rt := t.Match(r, r.Host, p)
	if rt == nil {
		h.refuse(w, r, http.StatusNotFound)
		return
	}
	if rt.RejectEncodedSlashes && hasEncodedSlash(p) {
		h.refuse(w, r, http.StatusBadRequest)
		rt.metrics.observe(http.StatusBadRequest, time.Since(start))
		return
	}
	h.serveRoute(w, r, t, rt, p, start)
}

func noFinish() {}

// exchange is the state of one request across its attempts.
type exchange struct {
	h       *Handler
	w       http.ResponseWriter
	rt      *Route
	r       *http.Request
	start   time.Time
	reqID   string
	path    string // forwarded path, canonical and escaped
	rawPath string // path's escaped form when it has escapes (url.URL.RawPath), else ""
	header  http.Header
	upgrade string      // the allowed protocol the client asked to switch to, or ""
	cbody   *clientBody // the client's request body, when there is one
	body    *replayBody // non-nil when the body may be replayed for a retry
	control *http.ResponseController
	out     pacedWriter // writes the response body
	held    heldBody    // the response body, when read whole before relaying
	abort   bool        // the response broke after it began: abort the connection
	// relayMu and relayDone stop 1xx relaying once the attempt returned: http.Transport can
	// call Got1xxResponse from its read loop after RoundTrip gave up (golang/go#65123),
	// concurrently with the handler writing the final response.
	relayMu   sync.Mutex
	relayDone bool
	interim   int // informational responses the upstreams sent (relay1xx), under relayMu
	// grpc: a gRPC request (grpc.go); deadline is its grpc-timeout (zero: none) and
	// grpcCode the gRPC status it ended with (noGRPCStatus: none yet).
	grpc     bool
	deadline time.Time
	grpcCode int
	frames   grpcRelay // tracks a gRPC response's message framing
}

// rc returns the response controller for the client's connection, made on first use.
func (x *exchange) rc() *http.ResponseController {
	if x.control == nil {
		x.control = http.NewResponseController(x.w)
	}
	return x.control
}

func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, t *Table, rt *Route, cleaned string, start time.Time) {
	// One backing array for the small header values this request sets (request ID,
	// X-Forwarded-*): fewer allocations on the hot path. Slices of it are capped, so an
	// append by anyone later copies instead of overwriting a neighbour.
	vals := make([]string, 6)
	vals[0] = requestID(r.Header)
	reqID := vals[0]
	ci := t.trust.resolveClient(r)
	wh := w.Header()
	wh["X-Request-Id"] = vals[0:1:1]

	var tr traffic // beside x, not in it: x escapes, tr stays on the stack
	// The split branch and pinned endpoint come from the request as the client sent it, as
	// the route itself does: a request filter that removes Cookie must not unpin a client.
	tr.choose(rt, r)
	finishResponse := noFinish
	identity := "" // who auth admitted, for the access log
	grpc := filter.IsGRPC(r.Header)
	if rt.Filters != nil {
		q := &filter.Request{ClientIP: ci.ip, RequestID: reqID, Route: rt.Name, Path: cleaned, GRPC: grpc}
		// The response filters wrap first, so the gateway's own refusals (403, 413, 429)
		// carry the response header edits and CORS headers too: a browser then sees the
		// real status instead of a CORS failure.
		w, finishResponse = rt.Filters.WrapResponse(w, r, q)
		// The request filters run once, before the body is wrapped for reading and
		// replaying: a retry resends what they produced and never runs them again.
		if !rt.Filters.ServeRequest(w, r, q) {
			finishResponse()
			h.finish(rt, r, start, requestRecord{status: q.Status, client: ci.ip, reqID: reqID,
				identity: q.Identity, grpcStatus: refusedGRPCStatus(grpc, q.Status)})
			return
		}
		identity = q.Identity
	}
	rt.budget.active.Add(1)
	defer rt.budget.active.Add(-1)

	x := exchange{h: h, w: w, rt: rt, r: r, start: start, reqID: reqID}
	if grpc {
		x.startGRPC()
	}
	if rt.rewritePrefix != "" {
		x.path, x.rawPath = forwardURLPath(rt.rewritePath(cleaned))
	} else {
		x.path, x.rawPath = forwardURLPath(t.upstreamPath(rt, cleaned))
	}
	var ok bool
	if x.header, ok = copyRequestHeaders(r.Header); !ok {
		wh["Connection"] = []string{"close"}
		x.fail(w, http.StatusBadRequest)
		finishResponse()
		h.finish(rt, r, start, requestRecord{status: http.StatusBadRequest, client: ci.ip, reqID: reqID,
			identity: identity, grpcStatus: refusedGRPCStatus(grpc, http.StatusBadRequest)})
		return
	}
	setForwarded(x.header, r, ci, vals[1:6])
	x.header["X-Request-Id"] = vals[0:1:1]
	if up := upgradeToken(r.Header); up != "" && rt.allowsUpgrade(up) {
		// Only protocols the route allows are forwarded (h2c never: config refuses it);
		// any other Upgrade is dropped with the other hop-by-hop fields, and the request
		// goes upstream as an ordinary one.
		x.upgrade = up
		x.header["Connection"] = []string{"Upgrade"}
		x.header["Upgrade"] = []string{up}
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		x.header["Te"] = []string{"trailers"} // the one Te value a proxy may forward (RFC 9110 10.1.4)
	}
	if r.ProtoMajor == 1 && (r.ProtoMinor == 0 || len(r.TransferEncoding) > 0) {
		// The framings a peer in front of the gateway could have read differently:
		// Content-Length beside Transfer-Encoding (net/http drops the Content-Length before
		// the handler sees it) and Transfer-Encoding on HTTP/1.0 (net/http ignores it and
		// deletes the header, so any HTTP/1.0 request may have carried it). Close after
		// answering, so no desync carries into a next request (RFC 9112 6.1).
		wh["Connection"] = []string{"close"}
	}
	if hasBody(r) {
		x.cbody = newClientBody(r, x.rc(), h.pacing, start)
		defer x.cbody.handlerReturned()
		if grpc && r.ProtoMajor == 2 {
			// Only a real HTTP/2 stream may be a quiet gRPC stream: the label alone (an
			// HTTP/1.1 upload saying application/grpc) must not switch pacing off.
			x.cbody.allowStreams()
		}
	}

	attempts := 1
	if rt.Retry != nil && rt.Retries > 0 && x.upgrade == "" && x.repeatable() {
		attempts += rt.Retries
		if hasBody(r) {
			if r.ContentLength > rt.Retry.MaxBodyBytes {
				attempts = 1 // too large to keep for a replay
			} else {
				x.body = newReplayBody(x.cbody, rt.Retry.MaxBodyBytes)
			}
		}
	}
	mirrored := rt.mirror != nil && rt.mirror.prepare(&x)
	status, n, key := x.run(w, attempts, &tr)
	finishResponse()
	if mirrored {
		rt.mirror.send(&x)
	}
	grpcStatus := noGRPCStatus
	if grpc {
		grpcStatus = x.grpcLogStatus(status)
	}
	h.finish(rt, r, start, requestRecord{status: status, bytes: n, upstream: key, client: ci.ip,
		reqID: reqID, identity: identity, grpcStatus: grpcStatus})
	if x.abort || status == StatusClientClosed {
		// Nothing honest can be written: a response already begun broke, or the client
		// stopped listening. Returning would let net/http finish the response cleanly (an
		// implicit 200, or a chunked body that looks complete) to a client that may still
		// read; aborting makes it close the connection (or reset the stream) instead.
		panic(http.ErrAbortHandler)
	}
}

// requestRecord is what finish records about a request, besides its route and timing.
type requestRecord struct {
	status     int
	bytes      int64  // response body bytes sent
	upstream   string // the last endpoint tried ("" if none)
	client     string // the client address the gateway believes
	reqID      string
	identity   string // who auth admitted
	grpcStatus int    // the gRPC status it ended with; noGRPCStatus for other requests
}

// finish records the request in the route's metrics and access log.
func (h *Handler) finish(rt *Route, r *http.Request, start time.Time, rec requestRecord) {
	d := time.Since(start)
	rt.metrics.observe(rec.status, d)
	if rec.grpcStatus != noGRPCStatus {
		rt.metrics.observeGRPC(rec.grpcStatus)
	}
	if rt.AccessLog {
		accessLog(h.log, rt, r, &rec, d)
	}
}

// run makes up to attempts attempts on distinct endpoints of the pool tr chose and writes
// the response. It returns the status the client got (499 if it left), the body bytes sent
// and the last endpoint used.
func (x *exchange) run(w http.ResponseWriter, attempts int, tr *traffic) (int, int64, string) {
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
	used := 0 // attempts that count against the route's retries (refused dials do not)
	for i := 0; ; i++ {
		m, err := tr.pick(x.r, ex)
		if err != nil {
			if i == 0 {
				rt.metrics.noEndpoint.Inc()
				x.fail(w, http.StatusServiceUnavailable)
				return http.StatusServiceUnavailable, 0, ""
			}
			// Nothing left to retry on: report the previous attempt's failure.
			status := statusFor(lastKind)
			if status != StatusClientClosed {
				x.fail(w, status)
			}
			return status, 0, lastKey
		}
		lastKey = m.Key
		a := x.attempt(m)
		used++
		last := used >= attempts
		if x.clientBodyBroke() {
			return x.endClientBodyBroke(&a, m), 0, m.Key
		}
		if a.res != nil {
			if err := x.checkResponse(a.res); err != nil {
				_ = a.res.Body.Close()
				a.res, a.err, a.kind = nil, err, upstream.ErrProtocol
			}
		}
		var held *[]byte
		if a.res != nil && !last && x.upgrade == "" && rt.Retry != nil && holdable(a.res, rt.Retry.MaxBodyBytes) {
			// Retries remain, and the body is small: read it whole before the first byte
			// goes to the client, so an upstream that breaks mid-body is retried like one
			// that broke before answering, instead of failing a response already begun.
			var err error
			if held, err = x.holdBody(a.res); err != nil {
				if x.clientBodyBroke() {
					// An HTTP/2 upstream client ends the response with the client's error.
					return x.endClientBodyBroke(&a, m), 0, m.Key
				}
				a.res, a.err, a.kind = nil, err, classify(err, x.r.Context().Err() != nil, a.timedOut.Load())
			}
		}
		a.stopTimer()
		if a.res == nil {
			rt.metrics.upstreamErrors[a.kind].Inc()
			if x.callersDeadline(a.kind) {
				m.State.Done(upstream.Outcome{Err: upstream.ErrCanceled, Latency: a.latency})
			} else {
				m.State.Done(upstream.Outcome{Err: a.kind, Latency: a.latency})
			}
			lastKind = a.kind
			if a.kind == upstream.ErrConnect && x.refusedRetry(&ex) {
				used-- // nothing reached the upstream: not one of the route's retries
				ex.Add(m.State)
				continue
			}
			if !last && x.retryable(a.kind) && x.canRetry(&budgeted, a.kind) {
				ex.Add(m.State)
				continue
			}
			status := statusFor(a.kind)
			if a.kind == upstream.ErrCanceled {
				x.h.log.LogAttrs(x.r.Context(), slog.LevelDebug, "client went away",
					slog.String("route", rt.Name), slog.String("request_id", x.reqID))
			} else {
				level := slog.LevelWarn
				if x.callersDeadline(a.kind) {
					level = slog.LevelDebug // the gRPC caller's own deadline: not the upstream's failure
				}
				x.h.log.LogAttrs(x.r.Context(), level, "upstream failed",
					slog.String("route", rt.Name), slog.String("upstream", m.Key),
					slog.String("kind", a.kind.String()), slog.String("error", a.err.Error()),
					slog.String("request_id", x.reqID))
				x.fail(w, status)
			}
			return status, 0, m.Key
		}
		if !last && rt.Retry != nil && slices.Contains(rt.Retry.OnStatus, x.retryStatus(a.res)) &&
			(x.body == nil || x.body.rewind()) && x.canRetry(&budgeted, upstream.ErrNone) {
			a.cancel() // before draining: a stalled body must not hold the request
			drainAndClose(a.res)
			if held != nil {
				bufPool.Put(held)
			}
			m.State.Done(upstream.Outcome{Status: x.outcomeStatus(a.res), Latency: a.latency})
			ex.Add(m.State)
			continue
		}
		if rt.sticky != nil {
			rt.sticky.stick(x, tr, m)
		}
		status, n, kind := x.writeResponse(a.res)
		a.cancel()
		if held != nil {
			bufPool.Put(held)
		}
		if kind != upstream.ErrNone && kind != upstream.ErrCanceled {
			rt.metrics.upstreamErrors[kind].Inc()
		}
		m.State.Done(upstream.Outcome{Status: x.outcomeStatus(a.res), Err: kind, Latency: a.latency})
		return status, n, m.Key
	}
}
