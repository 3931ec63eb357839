//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package h1

// canPeekSocket is false where MSG_PEEK|MSG_DONTWAIT is not wired up: idle
// conns are then checked through the deadline read only, which misses bytes
// still in the kernel's buffer.
const canPeekSocket = false

func (p *probe) peekFD(fd uintptr) bool {
	p.state = socketUnknown
	return true
}
