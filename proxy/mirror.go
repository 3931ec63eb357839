package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/upstream"
)

// Mirror limits and defaults.
const (
	// mirrorWorkers is how many mirrored requests of one route are in flight at most.
	mirrorWorkers = 4
	// mirrorQueue is how many mirrored requests of one route wait for a worker; more are
	// dropped (counted as result="dropped").
	mirrorQueue = 64
	// mirrorBodyDefault bounds the mirrored body when the route has no retry block.
	mirrorBodyDefault = 64 << 10
	// mirrorDrain bounds how much of a mirror's response is read (and discarded), so its
	// connection can be reused; a longer response just closes it.
	mirrorDrain = 64 << 10
	// mirrorTimeoutDefault bounds a mirrored exchange when the route has no timeout.
	mirrorTimeoutDefault = 30 * time.Second
	// shadowSuffix is appended to the Host's name (before any port) of mirrored requests,
	// Envoy's convention, so the mirror can tell copies from real traffic.
	shadowSuffix = "-shadow"
)

// mirror sends copies of a share of a route's requests to another pool, fire and forget:
// after the main request has finished, from a few workers per route, through the handler's
// transport. A copy never changes the client's answer: its response is read (bounded) and
// discarded, its failures are only counted, and its outcome is reported to the mirror
// pool's health as a cancel, which no health rule counts, so a pool shared with a route
// (same service and policy) is never ejected because of mirrored traffic.
//
// A request is mirrored only when it is not an upgrade and its body, if any, is at most
// maxBody and was read whole by the main request (a body the upstream did not read is not
// known whole); others are counted as result="skipped".
type mirror struct {
	pool    *upstream.Pool
	ppm     uint64 // share of requests mirrored, in millionths
	maxBody int64
	timeout time.Duration
	queue   chan *mirrorJob

	ctx    context.Context // canceled by close: ends waits and running copies
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sent, dropped, failed, skipped prometheus.Counter
	_                              cacheLinePad
	count                          atomic.Uint64
}

// mirrorJob is one copy to send.
type mirrorJob struct {
	transport http.RoundTripper
	protocols *Transport        // non-nil: the client is picked by the endpoint's protocol
	protocol  upstream.Protocol // the route's upstream_protocol
	method    string
	url       url.URL // scheme and host set per pick
	host      string
	header    http.Header
	body      []byte
}

// newMirror starts the mirror workers of a route; nil when pool is nil.
func newMirror(pool *upstream.Pool, percent float64, maxBody int64, timeout time.Duration, counters *prometheus.CounterVec, route string) *mirror {
	if pool == nil {
		return nil
	}
	if maxBody <= 0 {
		maxBody = mirrorBodyDefault
	}
	if timeout <= 0 {
		timeout = mirrorTimeoutDefault
	}
	ppm := uint64(percent*10000 + 0.5)
	if ppm > 1_000_000 {
		ppm = 1_000_000
	}
	m := &mirror{
		pool:    pool,
		ppm:     ppm,
		maxBody: maxBody,
		timeout: timeout,
		queue:   make(chan *mirrorJob, mirrorQueue),
		sent:    counters.WithLabelValues(route, "sent"),
		dropped: counters.WithLabelValues(route, "dropped"),
		failed:  counters.WithLabelValues(route, "failed"),
		skipped: counters.WithLabelValues(route, "skipped"),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(mirrorWorkers)
	for range mirrorWorkers {
		go m.work()
	}
	return m
}

// newMirrorCounter is switchyard_mirror_requests_total.
func newMirrorCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_mirror_requests_total",
		Help: "Mirrored request copies by route and result: sent (a response came back), dropped (queue full or route gone), failed (no endpoint, transport error), skipped (upgrade, body over the limit or not read whole).",
	}, []string{"route", "result"})
}

// close stops the workers and waits for them; copies still queued are dropped and running
// ones canceled. Sends after close are dropped.
func (m *mirror) close() {
	m.cancel()
	m.wg.Wait()
}

// sample decides whether the next request is mirrored: exactly ppm per million over every
// run of a million requests (a counter, not a random draw).
func (m *mirror) sample() bool {
	n := m.count.Add(1)
	return n*m.ppm/1_000_000 != (n-1)*m.ppm/1_000_000
}

// prepare decides, before the main request is sent, whether it is mirrored, and arranges
// for its body to be recorded as the main request reads it.
func (m *mirror) prepare(x *exchange) bool {
	if !m.sample() {
		return false
	}
	if x.upgrade != "" || (x.cbody != nil && x.r.ContentLength > m.maxBody) {
		m.skipped.Inc()
		return false
	}
	if x.cbody != nil && x.body == nil {
		x.body = newReplayBody(x.cbody, m.maxBody)
	}
	return true
}

// send queues the copy of a finished exchange, or counts it dropped when the queue is full.
func (m *mirror) send(x *exchange) {
	var body []byte
	if x.cbody != nil {
		var ok bool
		if body, ok = x.body.whole(x.r.ContentLength); !ok {
			m.skipped.Inc()
			return
		}
	}
	if m.ctx.Err() != nil {
		m.dropped.Inc()
		return
	}
	j := &mirrorJob{
		transport: x.h.transport,
		protocols: x.h.protocols,
		protocol:  x.rt.protocol,
		method:    x.r.Method,
		url:       url.URL{Path: x.path, RawPath: x.rawPath, RawQuery: x.r.URL.RawQuery},
		host:      shadowHost(mirrorHost(x)),
		header:    x.header.Clone(),
		body:      body,
	}
	select {
	case m.queue <- j:
	default:
		m.dropped.Inc()
	}
}

// whole returns the recorded body when it was read to its end within the limit.
func (b *replayBody) whole(contentLength int64) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow {
		return nil, false
	}
	// Once complete the buffer never changes again (no more bytes can arrive), so it is
	// shared with the copy without copying.
	if b.srcDone == io.EOF || (contentLength >= 0 && int64(len(b.buf)) == contentLength) {
		return b.buf, true
	}
	return nil, false
}

// mirrorHost is the Host the main request was sent with: rewrite.host when the route sets
// it, else the client's.
func mirrorHost(x *exchange) string {
	if x.rt.RewriteHost != "" {
		return x.rt.RewriteHost
	}
	return x.r.Host
}

// shadowHost appends shadowSuffix to the host name of a Host value, keeping its port.
func shadowHost(h string) string {
	if host, port, err := net.SplitHostPort(h); err == nil {
		return net.JoinHostPort(host+shadowSuffix, port)
	}
	return h + shadowSuffix
}

func (m *mirror) work() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case j := <-m.queue:
			m.do(j)
		}
	}
}

// do sends one copy and discards its answer.
func (m *mirror) do(j *mirrorJob) {
	ctx, cancel := context.WithTimeout(m.ctx, m.timeout)
	defer cancel()
	req := (&http.Request{
		Method:     j.method,
		URL:        &j.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     j.header,
		Host:       j.host,
	}).WithContext(ctx)
	if len(j.body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(j.body))
		req.ContentLength = int64(len(j.body))
	}
	mem, err := m.pool.Pick(req, upstream.Excluded{})
	if err != nil {
		m.failed.Inc()
		return
	}
	// Canceled is the one outcome no health rule counts: mirrored traffic never ejects.
	defer mem.State.Done(upstream.Outcome{Err: upstream.ErrCanceled})
	j.url.Scheme, j.url.Host = mem.Scheme, mem.Key
	if j.url.Scheme == "" {
		j.url.Scheme = "http"
	}
	transport := j.transport
	if j.protocols != nil {
		transport = j.protocols.For(mem.Resolve(j.protocol), j.url.Scheme)
	}
	res, err := transport.RoundTrip(req)
	if err != nil {
		m.failed.Inc()
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, mirrorDrain))
	_ = res.Body.Close()
	m.sent.Inc()
}

// Close stops the route's background work (its mirror workers) and closes its filters
// (filter.Chain.Close). The gateway calls it once the route is out of the table; requests
// still running on it skip their mirror copy.
func (r *Route) Close() {
	if r.mirror != nil {
		r.mirror.close()
	}
	r.Filters.Close()
}
