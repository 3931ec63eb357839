// Package connlimit bounds how many connections a listener has open at once.
//
// It does what golang.org/x/net/netutil.LimitListener does, with one difference that
// matters to an HTTP server: the connections it returns keep CloseWrite. net/http's server
// half-closes a connection after an error response (400, 431) and then lingers briefly so the
// client reads the response before the close; behind netutil's wrapper, which hides
// CloseWrite, it resets the connection instead, and a client can lose the response.
package connlimit

import (
	"net"
	"sync"
)

// Listen returns a listener that accepts at most n connections open at once: past n,
// Accept waits until one closes, so further clients queue in the kernel's backlog.
func Listen(l net.Listener, n int) net.Listener {
	return &listener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type listener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

// Accept waits for a free slot, then for a connection.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &conn{Conn: c, release: func() { <-l.sem }}
	if cw, ok := c.(closeWriter); ok {
		return &halfCloser{conn: lc, cw: cw}, nil
	}
	return lc, nil
}

// Close closes the listener and releases every Accept waiting for a slot.
func (l *listener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type closeWriter interface{ CloseWrite() error }

// conn frees its slot on its first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// halfCloser is a conn whose underlying connection can half-close (TCP).
type halfCloser struct {
	*conn
	cw closeWriter
}

// CloseWrite shuts down the writing side, as the underlying connection does.
func (h *halfCloser) CloseWrite() error { return h.cw.CloseWrite() }
