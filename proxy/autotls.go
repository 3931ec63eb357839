package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/switchyard/switchyard/upstream"
	"golang.org/x/net/http2"
)

// alpnTTL is how long an endpoint's protocol, learnt by ALPN, is trusted before it is asked
// again: long enough that learning costs one extra handshake per endpoint every few
// minutes, short enough that an upstream that starts or stops offering HTTP/2 is noticed.
const alpnTTL = 10 * time.Minute

// alpnPruneAt is the number of remembered endpoints past which expired ones are swept.
const alpnPruneAt = 1024

// autoTLS is the client for upstream_protocol auto over TLS. It learns each endpoint's
// protocol once by ALPN (a handshake offering h2 and http/1.1, then closed), remembers it for
// alpnTTL, and sends the request through the h2 client when the endpoint chose h2 and
// through proxy/h1 otherwise, so HTTP/1.1 upstreams get proxy/h1's response checks
// (ambiguous framing, the status line's version) on every route. A connect or protocol
// failure makes the endpoint's protocol be learnt again on its next request.
type autoTLS struct {
	h1, h2 http.RoundTripper
	// probe dials addr and returns the protocol its TLS handshake agreed on.
	probe func(ctx context.Context, addr string) (string, error)

	mu     sync.Mutex
	learnt map[string]alpnAnswer // by host:port
}

// alpnAnswer is one endpoint's protocol, or the handshake in progress that will tell it.
type alpnAnswer struct {
	h2      bool
	expires time.Time
	pending chan struct{} // non-nil while a probe runs; closed when it ends
}

// newAutoTLS sends through h1 or h2 as probe tells each endpoint's protocol.
func newAutoTLS(h1, h2 http.RoundTripper, probe func(ctx context.Context, addr string) (string, error)) *autoTLS {
	return &autoTLS{h1: h1, h2: h2, probe: probe, learnt: map[string]alpnAnswer{}}
}

// RoundTrip sends r through the client for its endpoint's protocol, learning it first when
// it is not known.
func (a *autoTLS) RoundTrip(r *http.Request) (*http.Response, error) {
	addr := canonicalAddr(r.URL.Host)
	h2, err := a.protocol(r.Context(), addr)
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close() // a RoundTripper closes the body, also when it fails
		}
		return nil, err
	}
	next := a.h1
	if h2 {
		next = a.h2
	}
	res, err := next.RoundTrip(r)
	if err != nil {
		if k := classify(err, false, false); k == upstream.ErrConnect || k == upstream.ErrProtocol {
			a.forget(addr)
		}
	}
	return res, err
}

// protocol reports whether addr speaks HTTP/2, from what was learnt or by asking it. Callers
// that arrive while a probe runs wait for its answer instead of probing too.
func (a *autoTLS) protocol(ctx context.Context, addr string) (bool, error) {
	for {
		a.mu.Lock()
		ans, ok := a.learnt[addr]
		switch {
		case ok && ans.pending != nil:
			a.mu.Unlock()
			select {
			case <-ans.pending:
				continue
			case <-ctx.Done():
				return false, ctx.Err()
			}
		case ok && time.Now().Before(ans.expires):
			a.mu.Unlock()
			return ans.h2, nil
		}
		done := make(chan struct{})
		a.learnt[addr] = alpnAnswer{pending: done}
		a.mu.Unlock()

		proto, err := a.probe(ctx, addr)
		a.mu.Lock()
		if err != nil {
			delete(a.learnt, addr)
		} else {
			a.learnt[addr] = alpnAnswer{h2: proto == http2.NextProtoTLS, expires: time.Now().Add(alpnTTL)}
			a.pruneLocked()
		}
		a.mu.Unlock()
		close(done)
		return proto == http2.NextProtoTLS, err
	}
}

// pruneLocked drops expired answers once there are many, so endpoints that left the pools
// (service discovery churning through addresses) are not remembered forever.
func (a *autoTLS) pruneLocked() {
	if len(a.learnt) < alpnPruneAt {
		return
	}
	now := time.Now()
	for addr, ans := range a.learnt {
		if ans.pending == nil && now.After(ans.expires) {
			delete(a.learnt, addr)
		}
	}
}

// forget drops what was learnt about addr (unless a probe of it is running).
func (a *autoTLS) forget(addr string) {
	a.mu.Lock()
	if ans, ok := a.learnt[addr]; ok && ans.pending == nil {
		delete(a.learnt, addr)
	}
	a.mu.Unlock()
}

// CloseIdleConnections forgets every endpoint's protocol; the clients' connections are closed
// by their owner.
func (a *autoTLS) CloseIdleConnections() {
	a.mu.Lock()
	for addr, ans := range a.learnt {
		if ans.pending == nil {
			delete(a.learnt, addr)
		}
	}
	a.mu.Unlock()
}

// canonicalAddr is host with the https port when it has none.
func canonicalAddr(host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(host, "443")
}

// alpnProbe returns a probe that completes a TLS handshake with cfg (offering h2 and
// http/1.1) within timeout, and closes the connection.
func alpnProbe(d *net.Dialer, cfg *tls.Config, timeout time.Duration) func(context.Context, string) (string, error) {
	return func(ctx context.Context, addr string) (string, error) {
		conn, err := dialTLS(ctx, d, "tcp", addr, cfg, timeout, false)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.(*tls.Conn).ConnectionState().NegotiatedProtocol, nil
	}
}
