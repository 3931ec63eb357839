package consul

import (
	"context"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// nodeAddress is what a service read takes from a node: an instance without an address of
// its own is reached at its node's.
type nodeAddress string

// addressOf summarizes node's address and tagged addresses (sorted, so map order does not
// read as a change).
func addressOf(n *api.Node) nodeAddress {
	var b strings.Builder
	b.WriteString(n.Address)
	keys := make([]string, 0, len(n.TaggedAddresses))
	for k := range n.TaggedAddresses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(n.TaggedAddresses[k])
	}
	return nodeAddress(b.String())
}

// fetchNodes reads every node and marks dirty the watched services with an instance on a
// node whose address changed or that left. A node re-registered with a new address moves
// neither the services index nor any check, only this one and the services' own.
func (f *feed) fetchNodes(ctx context.Context, index uint64) (uint64, error) {
	nodes, meta, err := f.cli.Catalog().Nodes(f.queryOptions(ctx, index))
	if err != nil {
		return 0, err
	}
	cur := make(map[string]nodeAddress, len(nodes))
	for _, n := range nodes {
		if n != nil {
			cur[n.Node] = addressOf(n)
		}
	}
	f.applyNodes(cur)
	return meta.LastIndex, nil
}

// applyNodes diffs a nodes answer against the previous one.
func (f *feed) applyNodes(cur map[string]nodeAddress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, seen := f.nodes, f.nodesSeen
	f.nodes, f.nodesSeen = cur, true
	if !seen {
		f.signal() // reads may start now
		return
	}
	changed := make(map[string]bool)
	for name, addr := range old {
		if c, ok := cur[name]; !ok || c != addr {
			changed[name] = true
		}
	}
	if len(changed) == 0 {
		return
	}
	for _, svc := range f.services {
		for _, e := range svc.entries {
			if e != nil && e.Node != nil && changed[e.Node.Node] {
				f.markDirtyLocked(svc, true)
				break
			}
		}
	}
}
