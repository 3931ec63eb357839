package h1

import (
	"net"
	"syscall"
	"time"
)

// An idle keep-alive conn must be silent: HTTP/1.1 has no way to tie bytes
// to a request, so whatever a server sends while no request is outstanding
// (a second response, the body it owed a HEAD, a 408) would be read as the
// answer to the next request sent on the conn, which may come from another
// client. http.Transport catches such bytes with a read loop running on
// every idle conn; this client runs no goroutine per conn, so it looks
// instead when it takes a conn from the pool, before writing the request.
//
// Bytes can hide in two places:
//
//   - the kernel's socket buffer: only a read that reaches the socket sees
//     them, and a Read with a deadline already in the past never does (the
//     runtime fails it before any syscall). So the socket is peeked with
//     recv(MSG_PEEK|MSG_DONTWAIT): one syscall, no deadline, no allocation.
//   - the buffers of a wrapper such as crypto/tls, which reads whole records
//     and may hold decrypted bytes the bufio.Reader never asked for. Those
//     are seen by one Read through the wrapper with the deadline in the past:
//     it returns buffered data at once and otherwise times out without
//     touching the socket. crypto/tls does not treat a timeout as fatal, so
//     the conn stays usable.
//
// On TLS the socket peek cannot tell data from a record that carries none
// (a TLS 1.3 session ticket or key update sent while idle): such a conn is
// dropped too, which costs a handshake and is always safe. Servers send
// tickets right after the handshake, so the response read consumes them.

// socketState is what a non-blocking peek at an idle socket found.
type socketState uint8

const (
	socketEmpty   socketState = iota // nothing pending: the conn may be used
	socketPending                    // unsolicited bytes, or EOF, or an error
	socketUnknown                    // the peek itself was not possible
)

// probe is how an idle conn is checked, decided once when it is dialed.
type probe struct {
	raw     syscall.RawConn // the socket under the conn; nil when unreachable
	bare    bool            // the conn is the socket itself: no user-space buffer can hide bytes
	peekFn  func(fd uintptr) bool
	state   socketState // written by peekFn
	peekBuf [1]byte
}

// init finds the socket under nc, through wrappers that expose theirs with
// NetConn (crypto/tls does). Only *net.TCPConn and *net.UnixConn are peeked
// directly: other conns offering a raw fd may not be stream sockets.
func (p *probe) init(nc net.Conn) {
	for depth := 0; depth < 4; depth++ {
		switch c := nc.(type) {
		case *net.TCPConn:
			p.setRaw(c, depth == 0)
			return
		case *net.UnixConn:
			p.setRaw(c, depth == 0)
			return
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return
		}
	}
}

func (p *probe) setRaw(sc syscall.Conn, bare bool) {
	raw, err := sc.SyscallConn()
	if err != nil || !canPeekSocket {
		return
	}
	p.raw, p.bare = raw, bare
	p.peekFn = p.peekFD // bound once, so each check allocates nothing
}

// idleClean reports whether pc, just taken from the idle pool, has nothing
// pending: no buffered or arriving byte and no EOF. A false result means the
// conn must be closed, never used. When the socket cannot be reached (a
// custom Dialer's conn type) only user-space buffers are checked: best
// effort.
func (pc *persistConn) idleClean() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.probe.raw != nil {
		pc.probe.state = socketUnknown
		if err := pc.probe.raw.Read(pc.probe.peekFn); err != nil {
			return false
		}
		switch pc.probe.state {
		case socketPending:
			return false
		case socketEmpty:
			if pc.probe.bare {
				return true
			}
		}
	}
	pc.nc.SetReadDeadline(aLongTimeAgo)
	_, err := pc.br.Peek(1)
	pc.nc.SetReadDeadline(time.Time{})
	return err != nil && isDeadline(err)
}
