package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it makes every blocked and
// future Read/Write on the conn fail at once, which is how a context abort
// reaches I/O running on the caller's goroutine.
var aLongTimeAgo = time.Unix(1, 0)

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// persistConn is one upstream connection. It is owned by exactly one
// goroutine at a time (the exchange, then the response body), or by the idle
// pool; only abort may run concurrently with its owner.
type persistConn struct {
	hp      *hostPool
	nc      net.Conn
	br      *bufio.Reader // reads through cr; returned to readerPool on close
	cr      connReader
	cw      connWriter
	abortFn func()      // pc.abort bound once per conn, so arming context.AfterFunc allocates no closure
	aborted atomic.Bool // set once a context abort poisoned the deadlines; the conn is then never reused
	reused  bool        // served at least one exchange; only reused conns may be retried
	idleAt  time.Time
	body    bodyReader // request-body reader reused across exchanges to avoid an allocation
	probe   probe      // how idleClean looks for bytes that arrived while pooled
}

func newPersistConn(hp *hostPool, nc net.Conn) *persistConn {
	pc := &persistConn{hp: hp, nc: nc}
	pc.cr.nc = nc
	pc.cr.limit = -1
	pc.cw.nc = nc
	pc.br = readerPool.Get().(*bufio.Reader)
	pc.br.Reset(&pc.cr)
	pc.abortFn = pc.abort
	pc.probe.init(nc)
	return pc
}

// abort runs from context.AfterFunc when the request's context ends. It
// records the abort before moving the deadline so setReadDeadline can detect
// that it raced with us.
func (pc *persistConn) abort() {
	pc.aborted.Store(true)
	pc.nc.SetDeadline(aLongTimeAgo)
}

// setReadDeadline moves the read deadline without undoing a concurrent abort:
// if abort ran in between, the past deadline is put back.
func (pc *persistConn) setReadDeadline(t time.Time) {
	pc.nc.SetReadDeadline(t)
	if pc.aborted.Load() {
		pc.nc.SetDeadline(aLongTimeAgo)
	}
}

// close closes the network conn and recycles the read buffer. The caller must
// own pc (no Read in flight on br).
func (pc *persistConn) close() {
	pc.nc.Close()
	if pc.br != nil {
		pc.br.Reset(nil)
		readerPool.Put(pc.br)
		pc.br = nil
	}
}

// connReader sits under the bufio.Reader. It counts bytes (to know whether
// any response byte arrived, which decides retries), caps header size, and
// can record the raw header bytes when they did not fit in one buffer fill.
type connReader struct {
	nc        net.Conn
	n         int64 // bytes read in the current exchange
	limit     int64 // remaining header budget; -1 when reading the body
	recording bool
	rec       []byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.limit >= 0 {
		if r.limit == 0 {
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > r.limit {
			p = p[:r.limit]
		}
	}
	n, err := r.nc.Read(p)
	r.n += int64(n)
	if r.limit >= 0 {
		r.limit -= int64(n)
	}
	if r.recording {
		r.rec = append(r.rec, p[:n]...)
	}
	return n, err
}

// connWriter counts written bytes so a failed write on a reused conn can be
// classified as "nothing was sent" (always safe to retry).
type connWriter struct {
	nc net.Conn
	n  int64
}

func (w *connWriter) Write(p []byte) (int, error) {
	n, err := w.nc.Write(p)
	w.n += int64(n)
	return n, err
}

// dial opens a new connection for key, bounded by DialTimeout and ctx, and
// completes the TLS handshake for https. Every failure is a *net.OpError with
// Op "dial" so the proxy can tell "never reached the upstream" from "failed
// mid-request".
func (c *Client) dial(ctx context.Context, hp *hostPool, key hostKey) (*persistConn, error) {
	dctx := ctx
	if c.dialTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, c.dialTimeout)
		defer cancel()
	}
	nc, err := c.dialFn(dctx, "tcp", key.addr)
	if err != nil {
		return nil, dialError(ctx, key.addr, err)
	}
	if key.tls {
		tc := tls.Client(nc, c.tlsConfigFor(key.addr))
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, dialError(ctx, key.addr, fmt.Errorf("tls handshake: %w", err))
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			tc.Close()
			return nil, dialError(ctx, key.addr, fmt.Errorf("tls: server negotiated ALPN %q, want http/1.1", p))
		}
		nc = tc
	}
	return newPersistConn(hp, nc), nil
}

// dialError normalises dial failures to *net.OpError{Op: "dial"} and makes
// sure a context abort stays visible to errors.Is even when a custom Dialer
// or the TLS stack reported it as something else.
func dialError(ctx context.Context, addr string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return err
	}
	return &net.OpError{Op: "dial", Net: "tcp", Addr: stringAddr(addr), Err: err}
}

// stringAddr lets an unresolved host:port fill net.OpError.Addr.
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// tlsConfigFor clones the configured TLS settings for one host: ALPN is
// pinned to http/1.1 (this client speaks nothing else) and ServerName comes
// from the URL host unless the caller fixed it.
func (c *Client) tlsConfigFor(addr string) *tls.Config {
	var cfg *tls.Config
	if c.tlsConfig != nil {
		cfg = c.tlsConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}
