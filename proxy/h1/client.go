// Package h1 is a pooled HTTP/1.1 client for the proxy's upstream hop.
//
// Unlike http.Transport, it runs the whole exchange — dial, write, read —
// on the caller's goroutine: no per-connection read/write loops and no
// channel handoffs per request, which is where most of Transport's CPU goes
// on a gateway's hot path. Cancellation reaches blocked I/O through
// context.AfterFunc moving the conn's deadline into the past. With no read
// loop watching idle connections either, a pooled connection is checked for
// bytes or EOF the server sent while it sat idle when it is taken from the
// pool, and closed if it has any (see probe.go).
//
// What it deliberately leaves to net/http (use http.Transport for these):
// HTTP/2, proxies (HTTP_PROXY, CONNECT), compression (no Accept-Encoding is
// added and nothing is decoded), cookies, redirects, a default User-Agent, and
// writing the request body concurrently with reading the response (an
// upstream that answers early and stops reading a large body is only cut off
// by the request's context).
package h1

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults applied by New for zero Options fields. The first three are the gateway's
// transport defaults (config.DefaultDialTimeout and its neighbours; a test in package proxy
// keeps them equal), so a client built in code behaves as one built from a config that leaves
// them out. They are repeated rather than imported so this client does not link the config
// parser.
const (
	DefaultDialTimeout            = 5 * time.Second
	DefaultIdleConnTimeout        = 90 * time.Second
	DefaultMaxIdleConnsPerHost    = 1024
	DefaultMaxResponseHeaderBytes = 64 << 10    // near Envoy's 60 KiB; real heads are a few KiB
	expectContinueTimeout         = time.Second // as http.DefaultTransport
	max1xxResponses               = 8
)

// Options configures a Client. Zero values select the defaults above.
type Options struct {
	// DialTimeout bounds TCP connect plus TLS handshake.
	DialTimeout time.Duration
	// IdleConnTimeout closes pooled connections idle for longer; negative
	// disables the limit.
	IdleConnTimeout time.Duration
	// ResponseHeaderTimeout, if positive, bounds the wait for response headers
	// after the request (including its body) has been written.
	ResponseHeaderTimeout time.Duration
	// MaxIdleConnsPerHost bounds each host's idle pool; negative disables
	// keep-alive pooling altogether.
	MaxIdleConnsPerHost int
	// MaxConnsPerHost, if positive, caps the connections to each host: those
	// being dialed, in use and idle, together. A request that finds the cap
	// reached waits, in FIFO order, for a connection to be released for reuse
	// or for one to close (and then dials), until its context ends; then
	// RoundTrip fails with an error wrapping the context's error
	// (IsContextError), having taken no connection. Zero means no cap. As in
	// http.Transport, a connection upgraded by a 101 response leaves the count.
	MaxConnsPerHost int
	// MaxResponseHeaderBytes bounds the response header block (all 1xx
	// responses included), so a hostile upstream cannot exhaust memory; a
	// larger head is a *ProtocolError. The default, 64 KiB, is near Envoy's
	// 60 KiB. The count is of bytes read while the head is parsed, so a body
	// byte sharing the last read (at most 4 KiB) counts too.
	MaxResponseHeaderBytes int64
	// TLSConfig is cloned for https upstreams; ServerName defaults to the URL
	// host and NextProtos is forced to http/1.1.
	TLSConfig *tls.Config
	// Dialer, if set, replaces net.Dialer.DialContext (tests, unix sockets).
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Client is a pooled HTTP/1.1 http.RoundTripper. It is safe for concurrent
// use; create one per gateway and share it.
type Client struct {
	dialFn         func(ctx context.Context, network, addr string) (net.Conn, error)
	dialTimeout    time.Duration
	idleTimeout    time.Duration
	headerTimeout  time.Duration
	maxIdle        int
	maxConns       int // 0: no cap
	maxHeaderBytes int64
	tlsConfig      *tls.Config
	shards         [numShards]shard
	closed         atomic.Bool
	sweepArmed     atomic.Bool
	sweepMu        sync.Mutex
	sweepTimer     *time.Timer
}

var _ http.RoundTripper = (*Client)(nil)

// New returns a Client configured by opts.
func New(opts Options) *Client {
	c := &Client{
		dialFn:         opts.Dialer,
		dialTimeout:    opts.DialTimeout,
		idleTimeout:    opts.IdleConnTimeout,
		headerTimeout:  opts.ResponseHeaderTimeout,
		maxIdle:        opts.MaxIdleConnsPerHost,
		maxConns:       max(opts.MaxConnsPerHost, 0),
		maxHeaderBytes: opts.MaxResponseHeaderBytes,
		tlsConfig:      opts.TLSConfig,
	}
	if c.dialTimeout == 0 {
		c.dialTimeout = DefaultDialTimeout
	}
	if c.idleTimeout == 0 {
		c.idleTimeout = DefaultIdleConnTimeout
	}
	if c.maxIdle == 0 {
		c.maxIdle = DefaultMaxIdleConnsPerHost
	}
	if c.maxHeaderBytes <= 0 {
		c.maxHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	if c.dialFn == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		c.dialFn = d.DialContext
	}
	for i := range c.shards {
		c.shards[i].m = make(map[hostKey]*hostPool)
	}
	return c
}

// CloseIdleConnections closes every pooled idle connection. Connections in
// use are unaffected and return to the pool as usual.
func (c *Client) CloseIdleConnections() { c.dropIdle(nil) }

// Close closes idle connections and makes the Client refuse new requests
// with ErrClosed. Connections still serving a response close when their body
// is finished instead of returning to the pool.
func (c *Client) Close() error {
	c.closed.Store(true)
	c.sweepMu.Lock()
	if c.sweepTimer != nil {
		c.sweepTimer.Stop()
	}
	c.sweepMu.Unlock()
	c.dropIdle(nil)
	return nil
}

// RoundTrip sends req upstream and returns the response, following the
// http.RoundTripper contract: req is not modified and its Body is always
// closed. See the package errors documentation for how failures are
// reported. A request that fails on a reused connection before any response
// byte arrived is retried once on a fresh connection when that is safe.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	key, err := c.target(req)
	if err != nil {
		closeBody(body)
		return nil, err
	}
	bodyLen := req.ContentLength
	switch {
	case body == nil:
		bodyLen = 0
	case bodyLen <= 0:
		// As in net/http, ContentLength 0 with a non-nil Body means "unknown"
		// (http.NewRequest with an arbitrary reader); it is sent chunked
		// rather than probed. httputil.ReverseProxy already turns an empty
		// inbound body into nil, so the proxy never pays for this.
		bodyLen = -1
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			closeBody(body)
			return nil, ctxError(ctx, "request", nil)
		}
		pc, err := c.getConn(ctx, key)
		if err != nil {
			closeBody(body)
			return nil, err
		}
		resp, st, err := c.exchange(ctx, pc, req, body, bodyLen)
		// The body was fully written, skipped (final answer to Expect) or
		// abandoned; either way this attempt is done with it.
		closeBody(body)
		if err == nil {
			if st == notStale || attempt > 0 || !retryable(st, req, body) {
				return resp, nil
			}
			resp.Body.Close() // a stale conn's 408: answer to nothing we sent
		} else if attempt > 0 || !retryable(st, req, body) {
			return nil, err
		}
		if body != nil {
			if body, err = req.GetBody(); err != nil {
				return nil, &RequestBodyError{Err: err}
			}
		}
	}
}

// staleness classifies a failure on a reused conn for the retry decision.
type staleness uint8

const (
	notStale        staleness = iota
	nothingWritten            // the write failed before a single byte left
	noResponseBytes           // written, but EOF/reset before any response byte
)

// retryable mirrors http.Transport: a request that never left may be resent
// whenever its body can be replayed; one that did leave only if it is also
// idempotent, because the upstream may have acted on it before dying.
func retryable(st staleness, req *http.Request, body io.ReadCloser) bool {
	rewindable := body == nil || req.GetBody != nil
	switch st {
	case nothingWritten:
		return rewindable
	case noResponseBytes:
		return rewindable && idempotent(req)
	}
	return false
}

func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	// Widely used to mark a POST as safe to repeat (golang.org/issue/19943).
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

func closeBody(b io.ReadCloser) {
	if b != nil {
		b.Close()
	}
}

// target derives the pool key. The address is URL.Host with the scheme's
// default port added only when missing, so the usual case allocates nothing.
func (c *Client) target(req *http.Request) (hostKey, error) {
	if req.URL == nil {
		return hostKey{}, &RequestError{Msg: "nil URL"}
	}
	var key hostKey
	var port string
	switch req.URL.Scheme {
	case "http":
		port = "80"
	case "https":
		key.tls, port = true, "443"
	default:
		return hostKey{}, &RequestError{Msg: "unsupported scheme " + req.URL.Scheme}
	}
	key.addr = req.URL.Host
	if key.addr == "" {
		return hostKey{}, &RequestError{Msg: "missing host"}
	}
	if req.URL.Port() == "" {
		key.addr = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(req.URL.Hostname(), "["), "]"), port)
	}
	return key, nil
}

// getConn pops the freshest idle conn for key or dials a new one, first
// waiting for a turn when MaxConnsPerHost connections exist. An idle conn on
// which the server sent anything (bytes or EOF) since its last response is
// closed and the next one tried, keeping its slot: see idleClean.
func (c *Client) getConn(ctx context.Context, key hostKey) (*persistConn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	hp, pc, expired, w := c.acquire(key)
	for _, old := range expired {
		old.close()
	}
	if w != nil {
		var err error
		if pc, err = c.awaitTurn(ctx, hp, w, key.addr); err != nil {
			return nil, err
		}
		if testHookTurnGranted != nil {
			testHookTurnGranted()
		}
		if c.closed.Load() {
			// Closed while this request waited: pass the turn on, so the
			// waiters behind it learn too.
			if pc != nil {
				pc.close()
			}
			hp.forget()
			return nil, ErrClosed
		}
	}
	for pc != nil && !pc.idleClean() {
		pc.close()
		hp.mu.Lock()
		pc, expired = c.popIdleLocked(hp)
		hp.mu.Unlock()
		for _, old := range expired {
			old.close()
		}
	}
	if pc != nil {
		return pc, nil
	}
	pc, err := c.dial(ctx, hp, key)
	if err != nil {
		hp.forget()
		return nil, err
	}
	return pc, nil
}

// wantsClose reports whether the request asks for the connection to end after
// this exchange (req.Close, or an explicit Connection: close the proxy kept).
func wantsClose(req *http.Request) bool {
	return req.Close || httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
}
