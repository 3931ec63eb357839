package h1

import (
	"bufio"
	"context"
	"io"
	"sync"
)

// maxDrain is how much unread body Close will consume to keep a conn, and
// only when those bytes are already buffered: Close must never block on the
// network.
const maxDrain = 4 << 10

// body wraps the response body from http.ReadResponse and owns the conn
// until the body ends. Clean EOF returns the conn to the pool; an error or an
// early Close discards it. Close may run concurrently with a blocked Read
// (the http.Response contract allows it): it then closes the socket to
// unblock the Read, and the Read finishes the cleanup, so the pooled read
// buffer is never recycled under a running Read.
type respBody struct {
	c        *Client
	rc       io.ReadCloser
	ctx      context.Context
	stop     func() bool
	reusable bool
	remain   int64 // unread bytes of a Content-Length body, -1 if unknown; touched by the reader only

	mu      sync.Mutex
	pc      *persistConn // nil once finished
	reading bool
	closing bool  // Close ran while a Read was in flight
	err     error // returned by Reads after the body finished
}

func (b *respBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.pc == nil || b.reading {
		err := b.err
		if b.reading {
			err = errConcurrentRead
		}
		b.mu.Unlock()
		return 0, err
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.rc.Read(p)
	if b.remain > 0 {
		b.remain -= int64(n)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	if b.closing {
		b.done(false, errBodyClosed)
		return n, errBodyClosed
	}
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		b.done(b.reusable, io.EOF)
		return n, io.EOF
	}
	if b.ctx.Err() != nil || b.pc.aborted.Load() {
		err = ctxError(b.ctx, "read body", err)
	}
	b.done(false, err)
	return n, err
}

// Close releases the connection. Unread bytes cost the connection unless the
// rest of a small Content-Length body is already buffered.
func (b *respBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pc == nil {
		return nil
	}
	if b.reading {
		b.closing = true
		b.pc.nc.Close() // unblocks the Read, which then releases the conn
		return nil
	}
	reuse := false
	if b.reusable && b.remain >= 0 && b.remain <= maxDrain && int64(b.pc.br.Buffered()) >= b.remain {
		// Cannot block: every remaining byte is in the buffer, and the
		// LimitedReader inside rc stops at the declared length.
		_, err := io.Copy(io.Discard, b.rc)
		reuse = err == nil
	}
	b.done(reuse, errBodyClosed)
	return nil
}

// done hands the conn back (or closes it) exactly once. b.mu is held.
func (b *respBody) done(reuse bool, err error) {
	pc := b.pc
	b.pc = nil
	b.err = err
	b.c.finish(pc, b.stop, reuse)
}

// upgradeBody is the Body of a 101 Switching Protocols response: the raw
// conn as an io.ReadWriteCloser, which httputil.ReverseProxy requires to
// splice the upgraded stream. Reads start with whatever the server sent after
// the 101 head that already sits in the read buffer. The conn never returns
// to the pool, and its read buffer is left to the garbage collector because
// Close commonly races a Read on another goroutine.
type upgradeBody struct {
	pc   *persistConn
	br   *bufio.Reader
	once sync.Once
}

func (u *upgradeBody) Read(p []byte) (int, error)  { return u.br.Read(p) }
func (u *upgradeBody) Write(p []byte) (int, error) { return u.pc.nc.Write(p) }

// Close closes the upgraded connection.
func (u *upgradeBody) Close() error {
	var err error
	u.once.Do(func() { err = u.pc.nc.Close() })
	return err
}

// CloseWrite half-closes the upgraded connection when the transport allows
// it (TCP, TLS), so one direction of a tunnel can finish before the other.
func (u *upgradeBody) CloseWrite() error {
	if cw, ok := u.pc.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
