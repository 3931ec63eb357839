package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy/h1"
	"github.com/switchyard/switchyard/upstream"
	"golang.org/x/net/http2"
)

// HTTP/2 connections to upstreams are pinged after h2ReadIdle without a frame, and closed when
// the ping gets no answer within h2PingTimeout: a connection to a host that vanished (no FIN,
// no RST) is found in seconds instead of when the kernel gives up, and the next request
// dials again instead of waiting on a dead connection's streams.
const (
	h2ReadIdle    = 15 * time.Second
	h2PingTimeout = 5 * time.Second
	// h2WriteTimeout bounds a write to an upstream connection that takes no bytes at all (a
	// full TCP window to a host that stopped reading): its streams fail instead of hanging.
	h2WriteTimeout = 30 * time.Second
	// h2StreamWindow and h2ConnWindow are the flow-control windows the gateway grants HTTP/2
	// upstreams: what an upstream may send ahead of a client that reads slowly, and so what the
	// gateway may hold in memory for it. The library defaults (4 MiB a stream, 1 GiB a
	// connection) let a few slow clients pin hundreds of MiB; 256 KiB a stream still fills a
	// fast link on a LAN (it is 20 ms at 100 Mbit/s), and 4 MiB a connection caps a
	// connection's many streams together, as HTTP/1.1's socket buffers cap one connection.
	h2StreamWindow = 256 << 10
	h2ConnWindow   = 4<<20 - 1 // http.HTTP2Config documents "less than 4MiB"
)

// Transport is the one upstream client all routes share, one HTTP client per protocol, tuned
// from config. The proxy picks the client per attempt (For), from the route's
// upstream_protocol and the endpoint's declaration (upstream.Endpoint.Resolve), so every
// protocol goes through the same request path: retries, health, metrics and errors.
//
//   - HTTP/1.1: proxy/h1, a pooled client that runs each exchange on the request's own
//     goroutine (about half of http.Transport's cost per request, see BenchmarkProxy). It
//     keeps a large idle pool per host, caps each host at max_conns_per_host connections
//     when set (requests beyond it wait for a free connection, see classify for how a wait
//     that ends is counted) and does no transparent decompression.
//   - h2c and h2: golang.org/x/net/http2, one connection per endpoint carrying many streams
//     (a new connection only when the upstream's SETTINGS_MAX_CONCURRENT_STREAMS is reached;
//     x/net caps an upstream that announces no limit at 1000). max_conns_per_host does not
//     bound these connections: x/net's StrictMaxConcurrentStreams, which would, stalls
//     requests waiting for a stream (x/net v0.61, Go 1.26's net/http alike).
//   - auto over TLS: each endpoint's protocol is learnt by ALPN (h2 or http/1.1, see
//     autoTLS) and the request goes through the h2 client or proxy/h1 accordingly, so an
//     upstream gets HTTP/2 when it offers it and HTTP/1.1, with proxy/h1's checks, otherwise.
//
// All of them apply the dial, idle and response-header timeouts and the client TLS config,
// and use no HTTP proxy from the environment. The HTTP/2 ones grant upstreams small
// flow-control windows (h2StreamWindow, h2ConnWindow), so a slow client holds back its
// upstream instead of growing the gateway's memory, and are pinged when idle. A failed TLS
// handshake, or an h2 upstream that does not agree on HTTP/2, is a failure to connect, as on
// HTTP/1.1: nothing was sent, so the next endpoint gets the request whatever its method.
type Transport struct {
	http1 http.RoundTripper
	h2c   *http2.Transport
	h2    *http2.Transport
	auto  *autoTLS
	// h2cRT and h2RT are h2c and h2 behind the response-header timeout, when one is set.
	h2cRT, h2RT http.RoundTripper
}

// NewTransport builds the shared upstream clients from the transport block.
func NewTransport(c config.Transport) (*Transport, error) {
	tlsConf, err := ClientTLS(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("transport.tls: %w", err)
	}
	t := &Transport{
		http1: h1.New(h1.Options{
			DialTimeout:           c.DialTimeout,
			IdleConnTimeout:       c.IdleConnTimeout,
			ResponseHeaderTimeout: c.ResponseHeaderTimeout,
			MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
			MaxConnsPerHost:       c.MaxConnsPerHost,
			TLSConfig:             tlsConf,
		}),
	}
	dialer := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}

	t.h2c = newHTTP2Transport(c)
	t.h2c.AllowHTTP = true
	t.h2c.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr) // h2c: prior knowledge, no TLS
	}
	h2TLS := tlsConf.Clone()
	h2TLS.NextProtos = []string{http2.NextProtoTLS}
	t.h2 = newHTTP2Transport(c)
	t.h2.TLSClientConfig = h2TLS
	t.h2.DialTLSContext = func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
		return dialTLS(ctx, dialer, network, addr, cfg, c.DialTimeout, true)
	}

	// x/net would take a response-header timeout only from its holder and report it as an
	// error classify cannot tell from a broken stream, so h2c and h2 get headerTimeout's
	// (the holders set none).
	t.h2cRT, t.h2RT = http.RoundTripper(t.h2c), http.RoundTripper(t.h2)
	if d := c.ResponseHeaderTimeout; d > 0 {
		t.h2cRT = &headerTimeout{next: t.h2c, d: d}
		t.h2RT = &headerTimeout{next: t.h2, d: d}
	}
	alpnTLS := tlsConf.Clone()
	alpnTLS.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
	t.auto = newAutoTLS(t.http1, t.h2RT, alpnProbe(dialer, alpnTLS, c.DialTimeout))
	return t, nil
}

// newHTTP2Transport is an x/net HTTP/2 client with the gateway's settings. x/net's client,
// rather than net/http's with Protocols, because net/http's opens a connection per request
// while the upstream's SETTINGS are unknown and more each time a stream is refused (98
// connections for 30 requests to an upstream allowing one stream), where x/net dials once
// per endpoint at a time. x/net takes the flow-control windows only from the net/http
// Transport it is configured into, so one is built as the holder of the settings, and the
// HTTP/2 client is then given its own dialing pool (ConnPool nil) instead of the holder's:
// the holder never sends a request.
func newHTTP2Transport(c config.Transport) *http2.Transport {
	holder := &http.Transport{
		IdleConnTimeout:        c.IdleConnTimeout,
		DisableCompression:     true,
		MaxResponseHeaderBytes: h1.DefaultMaxResponseHeaderBytes,
		HTTP2:                  http2Config(),
	}
	t2, err := http2.ConfigureTransports(holder)
	if err != nil {
		panic(err) // only when holder already has HTTP/2, and it is new
	}
	t2.ConnPool = nil
	t2.DisableCompression = true
	t2.ReadIdleTimeout = h2ReadIdle
	t2.PingTimeout = h2PingTimeout
	t2.WriteByteTimeout = h2WriteTimeout
	t2.MaxHeaderListSize = h1.DefaultMaxResponseHeaderBytes
	return t2
}

// http2Config is the HTTP/2 tuning every upstream client shares.
func http2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxReceiveBufferPerStream:     h2StreamWindow,
		MaxReceiveBufferPerConnection: h2ConnWindow,
		SendPingTimeout:               h2ReadIdle,
		PingTimeout:                   h2PingTimeout,
		WriteByteTimeout:              h2WriteTimeout,
	}
}

// dialTLS dials addr and completes a TLS handshake with cfg (agreeing on HTTP/2 when
// requireH2), within timeout (the transport block's dial_timeout) and ctx. Every failure is
// a *net.OpError with Op "dial", as proxy/h1 reports its own, so classify counts a refused
// connection, an untrusted certificate and an upstream without HTTP/2 alike: a connect
// failure, retried on the next endpoint since the request never left.
func dialTLS(ctx context.Context, d *net.Dialer, network, addr string, cfg *tls.Config, timeout time.Duration, requireH2 bool) (net.Conn, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err // already a *net.OpError "dial"
	}
	fail := func(err error) (net.Conn, error) {
		_ = raw.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Source: raw.LocalAddr(), Addr: raw.RemoteAddr(), Err: err}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return fail(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; requireH2 && p != http2.NextProtoTLS {
		return fail(fmt.Errorf("upstream %s did not agree on HTTP/2 over TLS (ALPN %q)", addr, p))
	}
	return conn, nil
}

// For returns the client for an endpoint with scheme that speaks p (an endpoint's resolved
// protocol, see upstream.Endpoint.Resolve).
func (t *Transport) For(p upstream.Protocol, scheme string) http.RoundTripper {
	switch {
	case p == upstream.ProtocolHTTP1:
		return t.http1
	case p.IsHTTP2() && scheme == "https":
		return t.h2RT
	case p.IsHTTP2():
		return t.h2cRT
	case scheme == "https": // auto: ALPN decides
		return t.auto
	}
	return t.http1
}

// RoundTrip sends r by its URL's scheme: https as upstream_protocol auto does (HTTP/2 or
// HTTP/1.1 as the endpoint's ALPN chose), http over HTTP/1.1. The proxy does not use it (it picks with For); health checks and other callers
// that know only URLs do.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "https" {
		return t.auto.RoundTrip(r)
	}
	return t.http1.RoundTrip(r)
}

// CloseIdleConnections closes every client's idle connections.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.http1.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	t.h2c.CloseIdleConnections()
	t.h2.CloseIdleConnections()
	t.auto.CloseIdleConnections()
}

// errResponseHeaderTimeout is an HTTP/2 upstream that sent no response headers within
// transport.response_header_timeout; classify counts it as a timeout.
var errResponseHeaderTimeout error = &timeoutError{"upstream sent no response headers within transport.response_header_timeout"}

// headerTimeout gives an HTTP/2 client the response-header timeout (see NewTransport for why
// not x/net's): the request's context is canceled if no headers arrived in time.
type headerTimeout struct {
	next http.RoundTripper
	d    time.Duration
}

func (h *headerTimeout) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(r.Context())
	var fired atomic.Bool
	timer := time.AfterFunc(h.d, func() { fired.Store(true); cancel() })
	res, err := h.next.RoundTrip(r.WithContext(ctx))
	timer.Stop()
	if err != nil {
		cancel()
		if fired.Load() {
			return nil, errors.Join(errResponseHeaderTimeout, err)
		}
		return nil, err
	}
	// ctx stays live while the body is read; it ends with the caller's context, which the
	// proxy always cancels once the attempt is over.
	return res, nil
}

// ClientTLS builds a client TLS config from the config block (nil block: system roots).
func ClientTLS(t *config.TLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t == nil {
		return c, nil
	}
	c.ServerName = t.ServerName
	c.InsecureSkipVerify = t.InsecureSkipVerify
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// roundTripper is the client for an attempt on m: by the endpoint's resolved protocol when
// the handler has a *Transport. A protocol upgrade (WebSocket) is an HTTP/1.1 mechanism, so
// it always goes over HTTP/1.1.
func (x *exchange) roundTripper(m *upstream.Member) http.RoundTripper {
	t := x.h.protocols
	if t == nil {
		return x.h.transport
	}
	p := m.Resolve(x.rt.protocol)
	if x.upgrade != "" {
		p = upstream.ProtocolHTTP1
	}
	return t.For(p, m.Scheme)
}
