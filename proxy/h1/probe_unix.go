//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package h1

import "syscall"

const canPeekSocket = true

// peekFD runs inside syscall.RawConn.Read. It always returns true: the
// caller wants the state now, not a wait for readability.
func (p *probe) peekFD(fd uintptr) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), p.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			p.state = socketEmpty
		case err == syscall.ENOTSOCK || err == syscall.EOPNOTSUPP:
			p.state = socketUnknown
		default:
			// Data, EOF (nil error with n == 0) or a reset: spoiled either way.
			p.state = socketPending
		}
		return true
	}
}
