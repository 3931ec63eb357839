package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// ClientPacing bounds how long the gateway waits on a client while a body moves, in either
// direction: for the next bytes of a request body, and for the client to take response
// bytes (a write that blocks because the client does not read). Only time spent waiting on
// the client counts, so a stream whose upstream is quiet (SSE, long polls) is never cut, and
// a slow upstream never makes a client look slow. Zero fields disable their rule.
type ClientPacing struct {
	// Idle is the longest single wait (config server.body_idle_timeout).
	Idle time.Duration
	// MinRate is the bytes per second of waiting time a client must sustain once Grace of
	// waiting has passed (server.min_body_rate): 1 byte every 2 s never hits Idle, but
	// still holds an upstream connection for as long as the client likes.
	MinRate int64
	// Grace is the waiting time allowed before MinRate applies (server.body_rate_grace).
	Grace time.Duration
	// ReadTimeout and WriteTimeout are the server's own whole-request limits
	// (server.read_timeout, server.write_timeout), which deadlines set here must not extend.
	ReadTimeout, WriteTimeout time.Duration
}

func (p *ClientPacing) enabled() bool { return p != nil && (p.Idle > 0 || p.MinRate > 0) }

// aLongTimeAgo is a deadline in the past: it makes a blocked Read or Write fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// errSlowClient is returned when a client fell below the minimum rate before its wait
// even started; it is a timeout, like a deadline that fired.
var errSlowClient = &timeoutError{"client below server.min_body_rate"}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// pace is the waiting-time account of one direction of one request.
type pace struct {
	p      *ClientPacing
	waited time.Duration // time spent blocked on the client so far
	n      int64         // bytes moved so far
	limit  time.Time     // absolute deadline that must not be extended (zero: none)
}

// next returns the deadline for the next wait starting at now, or false when the client
// has already used up its rate budget.
func (a *pace) next(now time.Time) (time.Time, bool) {
	budget := time.Duration(-1)
	if a.p.Idle > 0 {
		budget = a.p.Idle
	}
	if a.p.MinRate > 0 {
		earned := a.p.Grace + time.Duration(float64(a.n)/float64(a.p.MinRate)*float64(time.Second)) - a.waited
		if earned <= 0 {
			return time.Time{}, false
		}
		if budget < 0 || earned < budget {
			budget = earned
		}
	}
	d := now.Add(budget)
	if !a.limit.IsZero() && a.limit.Before(d) {
		d = a.limit
	}
	return d, true
}

// clientBody wraps a request body read from the client: it paces the client (deadlines on
// the client connection per Read), records the body's first error so the handler can
// answer 400/408 instead of blaming the upstream, and at EOF copies the trailers that may
// travel upstream into the outgoing request's Trailer map.
type clientBody struct {
	src  io.ReadCloser
	rc   *http.ResponseController
	pace pace
	// pacing is the rule for the next Read (nil: none): the configured one, or, for an
	// attempt that carries a gRPC stream over HTTP/2 (see useStreamPacing), streamPacing.
	// Atomic because attempts may switch it while an earlier attempt's goroutine reads.
	pacing       atomic.Pointer[ClientPacing]
	configured   *ClientPacing
	streamPacing *ClientPacing
	expired      atomic.Bool // the route timeout fired: fail the current and every later Read
	// attempt counts the attempts that read the body; interrupted is the attempt whose
	// HTTP/2 client closed it (see interruptRead): that attempt's Reads end with
	// errBodyClosed, which is not the client's fault, and a later attempt's are unaffected.
	attempt     atomic.Int64
	interrupted atomic.Int64
	reading     atomic.Bool
	eof         atomic.Bool
	read        int64 // bytes read so far
	trailIn     http.Header
	trailOut    http.Header

	// mu guards err and handlerDone, and is held around every use of rc: an HTTP/2
	// upstream client reads and closes the body on goroutines of its own, which may run
	// after the handler returned, when net/http forbids touching the ResponseWriter.
	mu          sync.Mutex
	err         error // first error other than EOF (see clientErr)
	handlerDone bool  // serveRoute returned: rc must not be used again
}

func newClientBody(r *http.Request, rc *http.ResponseController, p *ClientPacing, start time.Time) *clientBody {
	b := &clientBody{src: r.Body, rc: rc, trailIn: r.Trailer}
	if p.enabled() {
		b.configured = p
		b.pacing.Store(p)
		if p.ReadTimeout > 0 {
			b.pace.limit = start.Add(p.ReadTimeout)
		}
	}
	if len(r.Trailer) > 0 {
		// Declared trailers that may travel upstream; values are filled in at EOF.
		b.trailOut = make(http.Header, len(r.Trailer))
		for k := range r.Trailer {
			if !forbiddenTrailer(k) {
				b.trailOut[k] = nil
			}
		}
	}
	return b
}

func (b *clientBody) Read(p []byte) (int, error) {
	if err := b.clientErr(); err != nil {
		return 0, err
	}
	if b.expired.Load() {
		return 0, b.fail(errSlowClient)
	}
	var start time.Time
	rule := b.pacing.Load()
	paced := rule != nil
	if paced {
		b.pace.p = rule
		start = time.Now()
		d, ok := b.pace.next(start)
		if !ok {
			return 0, b.fail(errSlowClient)
		}
		b.setReadDeadline(d)
	}
	b.reading.Store(true)
	if b.expired.Load() || b.isInterrupted() {
		b.setReadDeadline(aLongTimeAgo) // expire or an interrupt raced with the deadline above
	}
	n, err := b.src.Read(p)
	b.reading.Store(false)
	if err != nil && err != io.EOF && b.isInterrupted() && !b.expired.Load() {
		return n, errBodyClosed
	}
	b.read += int64(n)
	if paced {
		b.pace.waited += time.Since(start)
		b.pace.n += int64(n)
	}
	switch {
	case err == io.EOF:
		b.eof.Store(true)
		if paced {
			// net/http starts its background read at EOF; a deadline left armed would
			// fire there and cancel the request's context mid-response.
			b.setReadDeadline(time.Time{})
		}
		for k := range b.trailOut {
			b.trailOut[k] = b.trailIn[k]
		}
	case err != nil:
		err = b.fail(err)
	}
	return n, err
}

// grpcStreamIdle is the longest a gRPC stream's client may stay silent on its request
// stream (when body_idle_timeout is shorter): client and bidirectional streams rightly
// stay quiet while nothing happens, and the configured slow-client rules would cut them as
// slowloris uploads, but some bound must remain on what a silent client holds upstream.
const grpcStreamIdle = 10 * time.Minute

// allowStreams gives the body a second pacing rule, for attempts that carry it as a gRPC
// stream over HTTP/2 (useStreamPacing): no minimum rate, and an idle limit of
// grpcStreamIdle or the configured one, whichever is longer. The server's read_timeout
// still applies.
func (b *clientBody) allowStreams() {
	p := b.configured
	if p == nil {
		return
	}
	b.streamPacing = &ClientPacing{Idle: max(grpcStreamIdle, p.Idle), ReadTimeout: p.ReadTimeout}
}

// useStreamPacing picks the rule for the coming attempt: the gRPC stream rule when the
// body allows streams and the attempt goes upstream over HTTP/2, else the configured one.
func (b *clientBody) useStreamPacing(upstreamH2 bool) {
	if b.streamPacing == nil {
		return
	}
	if upstreamH2 {
		b.pacing.Store(b.streamPacing)
	} else {
		b.pacing.Store(b.configured)
	}
}

func (b *clientBody) fail(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// clientErr returns the body's first error other than EOF: the client's failure (bad
// framing, cut short, too slow), never the upstream's. Safe to call from any goroutine.
func (b *clientBody) clientErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// setReadDeadline sets the client connection's read deadline, unless the handler has
// returned: then the connection (or stream) is net/http's again, and a late close or
// timer of an upstream client must leave it alone.
func (b *clientBody) setReadDeadline(d time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.handlerDone {
		_ = b.rc.SetReadDeadline(d)
	}
}

// handlerReturned marks the end of the handler's use of the client connection; serveRoute
// calls it (deferred, so also when it aborts) before returning.
func (b *clientBody) handlerReturned() {
	b.mu.Lock()
	b.handlerDone = true
	b.mu.Unlock()
}

// expire makes a Read blocked on the client return now (the route timeout fired while the
// client was still sending). Safe to call from another goroutine.
func (b *clientBody) expire() {
	b.expired.Store(true)
	if b.reading.Load() && !b.eof.Load() {
		b.setReadDeadline(aLongTimeAgo)
	}
}

// errBodyClosed ends a Read of a client body the upstream client has closed.
var errBodyClosed = errors.New("request body closed by the upstream client")

// Close does not close the client's body: net/http's server owns it. (An HTTP/2 client's
// close goes through an attemptBody instead, see interruptRead.)
func (b *clientBody) Close() error { return nil }

// interruptRead ends a Read waiting on the client, as a transport that closes a request
// body expects: an HTTP/2 client writes the body on a goroutine of its own and closes it
// when the exchange ends first (the upstream answered, or died, while the client was
// still streaming), and its response body is only released once that goroutine stops, so
// a client that sends nothing more would otherwise hold the request forever. Safe to call
// from any goroutine. An HTTP/2 client connection's deadline ends its body for good, so
// no later attempt can read the rest (replayBody then refuses to rewind).
func (b *clientBody) interruptRead(attempt int64) {
	if attempt != b.attempt.Load() {
		return // a finished attempt's late close: the body is a later attempt's now
	}
	b.interrupted.Store(attempt)
	if b.reading.Load() && !b.eof.Load() {
		b.setReadDeadline(aLongTimeAgo)
	}
}

// isInterrupted reports whether the current attempt's client closed the body.
func (b *clientBody) isInterrupted() bool {
	i := b.interrupted.Load()
	return i != 0 && i == b.attempt.Load() // attempts count from 1; 0 is none
}

// nextAttempt starts an attempt's use of the body and returns its number.
func (b *clientBody) nextAttempt() int64 { return b.attempt.Add(1) }

// attemptBody is the client's body as one attempt over HTTP/2 reads it: closing it
// interrupts a Read waiting on the client (clientBody.interruptRead), and reads after that
// fail, while the client's body itself stays open for the handler.
type attemptBody struct {
	b       *clientBody
	attempt int64 // see clientBody.nextAttempt
	closed  atomic.Bool
}

func (a *attemptBody) Read(p []byte) (int, error) {
	if a.closed.Load() {
		return 0, errBodyClosed
	}
	return a.b.Read(p)
}

func (a *attemptBody) Close() error {
	if !a.closed.Swap(true) {
		a.b.interruptRead(a.attempt)
	}
	return nil
}

// status is the answer for a request whose body broke: 408 for a client that was too
// slow, 413 for one over a size limit, 400 for bad framing or a body cut short, and 499
// (nothing sent) when the client's connection is gone.
func (b *clientBody) status() int {
	var ne net.Error
	var tooLarge *http.MaxBytesError
	switch err := b.clientErr(); {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusRequestTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return StatusClientClosed
	}
	return http.StatusBadRequest
}

// pacedWriter writes a response body to the client, flushing after each write for
// streams, and paces the client: before each write that may block, a write deadline from
// the client's waiting-time account. Small responses pay nothing: the first pacedAfter
// bytes fit in the socket buffers and cannot block, and no response controller is made.
type pacedWriter struct {
	x       *exchange
	pace    pace
	flusher http.Flusher // non-nil: flush after every write (unknown length, event streams)
	armed   bool         // a deadline was set and must be lifted by finish
}

// pacedAfter is how many bytes are written before writes are paced: less than any socket
// send buffer, so a write before that point never waits on the client.
const pacedAfter = 64 << 10

func (pw *pacedWriter) Write(p []byte) (int, error) {
	if pw.pace.p == nil || pw.pace.n+int64(len(p)) <= pacedAfter {
		n, err := pw.x.w.Write(p)
		pw.pace.n += int64(n)
		if err == nil && pw.flusher != nil {
			pw.flusher.Flush()
		}
		return n, err
	}
	start := time.Now()
	d, ok := pw.pace.next(start)
	if !ok {
		return 0, errSlowClient
	}
	if err := pw.x.rc().SetWriteDeadline(d); err == nil {
		pw.armed = true
	}
	n, err := pw.x.w.Write(p)
	if err == nil && pw.flusher != nil {
		err = pw.x.rc().Flush() // unlike http.Flusher, reports a write that timed out
	}
	pw.pace.waited += time.Since(start)
	pw.pace.n += int64(n)
	return n, err
}

// finish flushes what is still buffered under a last deadline, then lifts it, so neither
// the final flush net/http does after the handler nor the connection's next request
// inherits a stale deadline.
func (pw *pacedWriter) finish() error {
	if !pw.armed {
		return nil
	}
	rc := pw.x.rc()
	var err error
	if d, ok := pw.pace.next(time.Now()); ok {
		_ = rc.SetWriteDeadline(d)
		err = rc.Flush()
	} else {
		err = errSlowClient
	}
	_ = rc.SetWriteDeadline(pw.pace.limit)
	return err
}

// hasBody reports whether r carries a request body.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// clientBodyBroke reports whether the client's request body broke (bad framing, cut
// short, too slow).
func (x *exchange) clientBodyBroke() bool { return x.cbody != nil && x.cbody.clientErr() != nil }

// endClientBodyBroke ends attempt a, whose client's body broke: the client's fault, never
// the upstream's (reported to m's health as ErrCanceled), and never retried. It answers the
// client (bodyFailed) and returns the status logged.
func (x *exchange) endClientBodyBroke(a *attemptResult, m *upstream.Member) int {
	a.stopTimer()
	if a.res != nil {
		_ = a.res.Body.Close()
	}
	a.cancel()
	m.State.Done(upstream.Outcome{Err: upstream.ErrCanceled, Latency: a.latency})
	return x.bodyFailed()
}

// bodyFailed answers a request whose body broke and returns the status logged for it. The
// connection is closed after the answer: where the body's framing broke, the next request
// on it cannot be found.
func (x *exchange) bodyFailed() int {
	status := x.cbody.status()
	x.h.log.LogAttrs(x.r.Context(), slog.LevelDebug, "request body broke",
		slog.String("route", x.rt.Name), slog.Int("status", status),
		slog.String("error", x.cbody.clientErr().Error()), slog.String("request_id", x.reqID))
	if status != StatusClientClosed {
		x.w.Header()["Connection"] = []string{"close"}
		x.fail(x.w, status)
	}
	return status
}
