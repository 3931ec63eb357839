package auth

import (
	"sync"
	"sync/atomic"
)

// Bounds of identityNames: enough for every API key and basic user of a real deployment,
// small enough that a JWT issuer with millions of subjects cannot grow it far.
const (
	maxIdentities      = 1024
	maxIdentityToCache = 128 // bytes; longer identities are built for each request
)

// identityNames builds "mechanism:identity" strings and remembers them, so that admitting a
// request with an identity seen before does not allocate. Reads take no lock: the map is
// replaced whole (copy on write) when a name is added, which stops once maxIdentities are
// known; only admitted identities ever get here.
type identityNames struct {
	prefix string // "mechanism:"
	mu     sync.Mutex
	names  atomic.Pointer[map[string]string]
}

// get returns prefix+identity.
func (n *identityNames) get(identity string) string {
	if m := n.names.Load(); m != nil {
		if s, ok := (*m)[identity]; ok {
			return s
		}
	}
	s := n.prefix + identity
	if len(identity) > maxIdentityToCache {
		return s
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.names.Load()
	if old != nil && len(*old) >= maxIdentities {
		return s
	}
	next := make(map[string]string, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[identity] = s
	n.names.Store(&next)
	return s
}

func lenOf(m *map[string]string) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
