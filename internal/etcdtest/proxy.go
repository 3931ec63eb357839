package etcdtest

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Proxy is a loopback TCP proxy in front of one member that a test can cut and restore, to
// partition one client from etcd while other clients keep writing. (etcd's pkg/proxy cannot
// drop live connections: its Close waits for them.)
type Proxy struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target (host:port). It is closed
// when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := newProxy(t, "127.0.0.1:"+strconv.Itoa(FreePorts(t, 1)[0]), target)
	p.Restore()
	return p
}

// newProxy returns a cut proxy for addr; Restore starts it.
func newProxy(t testing.TB, addr, target string) *Proxy {
	p := &Proxy{t: t, addr: addr, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(p.Cut)
	return p
}

// Addr is the proxy's host:port; point the client under test at it.
func (p *Proxy) Addr() string { return p.addr }

// Cut closes the listener and every proxied connection, and waits until they are gone:
// clients see connection resets and refused dials until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Restore listens again on the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", p.addr)
	if err != nil {
		p.t.Fatalf("etcdtest: proxy listen %s: %v", p.addr, err)
	}
	p.ln = ln
	p.wg.Go(func() { p.accept(ln) })
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return // closed by Cut
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		out, err := d.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !p.track(in, out) {
			return
		}
		p.wg.Go(func() { p.pipe(out, in) })
		p.wg.Go(func() { p.pipe(in, out) })
	}
}

// track registers a connection pair unless the proxy was cut meanwhile.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
