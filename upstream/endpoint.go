// Package upstream holds what every part of the gateway agrees on about backends: the
// Endpoint a registry announces, the immutable sorted Snapshot a discoverer emits, the
// Discoverer interface, and the Pool that joins snapshots with per-endpoint state that
// outlives them.
package upstream

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
)

// Endpoint is one backend instance as a registry or static config announces it.
type Endpoint struct {
	// Key identifies the endpoint across snapshots: "host:port", IPv6 hosts in brackets.
	// Per-endpoint state (in-flight count, health, breaker) is keyed by it.
	Key string
	// Scheme is "http" or "https".
	Scheme string
	// Weight is the endpoint's relative share under the weighted policy; always >= 1.
	Weight int
	// Meta is registry metadata (etcd "meta", Consul service meta and tags). Read-only.
	Meta map[string]string
	// Protocol is what the endpoint declares it speaks (an h2c:// URL, or Meta's
	// register.MetaProtocol key); ProtocolAuto when it declares nothing. See Resolve.
	Protocol Protocol
}

// Equal reports whether two endpoints are the same in every field.
func (e Endpoint) Equal(o Endpoint) bool {
	return e.Key == o.Key && e.Scheme == o.Scheme && e.Weight == o.Weight && e.Protocol == o.Protocol && maps.Equal(e.Meta, o.Meta)
}

// Snapshot is the full, immutable set of a service's endpoints at one moment, sorted by Key
// with no duplicate keys. Discoverers emit snapshots, never deltas.
type Snapshot struct {
	endpoints []Endpoint
}

// NewSnapshot copies eps into a snapshot: weights below 1 become 1, an empty scheme becomes
// "http", an undeclared Protocol is read from Meta (a bad value is ignored), entries with an empty key are dropped, and for a duplicated key the last entry wins
// (a registry's newest write).
func NewSnapshot(eps []Endpoint) Snapshot {
	out := make([]Endpoint, 0, len(eps))
	for _, e := range eps {
		if e.Key == "" {
			continue
		}
		if e.Weight < 1 {
			e.Weight = 1
		}
		if e.Scheme == "" {
			e.Scheme = "http"
		}
		if e.Protocol == ProtocolAuto {
			// Readers refuse a bad value with its entry (EndpointProtocol); here it is
			// only picked up when a caller built the endpoint itself.
			e.Protocol, _ = metaProtocol(e.Meta)
		}
		out = append(out, e)
	}
	// Stable sort keeps input order among equal keys, so "last wins" below is well defined.
	slices.SortStableFunc(out, func(a, b Endpoint) int { return strings.Compare(a.Key, b.Key) })
	dedup := out[:0]
	for i, e := range out {
		if i+1 < len(out) && out[i+1].Key == e.Key {
			continue
		}
		dedup = append(dedup, e)
	}
	return Snapshot{endpoints: slices.Clip(dedup)}
}

// Endpoints returns the snapshot's endpoints sorted by Key. Callers must not modify them.
func (s Snapshot) Endpoints() []Endpoint { return s.endpoints }

// Len is the number of endpoints.
func (s Snapshot) Len() int { return len(s.endpoints) }

// Equal reports whether both snapshots hold the same endpoints.
func (s Snapshot) Equal(o Snapshot) bool {
	return slices.EqualFunc(s.endpoints, o.endpoints, Endpoint.Equal)
}

// Sleep waits d or until ctx ends, reporting whether the full wait elapsed: the backoff wait
// every discoverer uses between failed registry calls.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
