package grpcresolver

import (
	"maps"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/switchyard/switchyard/upstream"
)

// weightKey and metadataKey key an address's balancer attributes. They are balancer
// attributes, not address attributes, so a weight or metadata change reaches the balancer
// without closing the connection (address attributes are part of a connection's identity).
type (
	weightKey   struct{}
	metadataKey struct{}
)

// metadata wraps registry metadata so attributes can compare it: a map is not comparable,
// and attributes.Equal panics on values that are neither comparable nor have Equal.
type metadata map[string]string

// Equal implements the comparison attributes.Equal looks for.
func (m metadata) Equal(o any) bool {
	other, ok := o.(metadata)
	return ok && maps.Equal(m, other)
}

// State turns a snapshot into the resolver state gRPC gets: one address and one endpoint per
// instance, in the snapshot's order (sorted by host:port, no duplicates), each with
// ServerName set to service (the :authority and TLS name of its calls) and the instance's
// weight and metadata as balancer attributes (read them with Weight and Metadata).
func State(s upstream.Snapshot, service string) resolver.State {
	eps := s.Endpoints()
	st := resolver.State{
		Addresses: make([]resolver.Address, len(eps)),
		Endpoints: make([]resolver.Endpoint, len(eps)),
	}
	for i, e := range eps {
		attrs := attributes.New(weightKey{}, e.Weight)
		if len(e.Meta) > 0 {
			attrs = attrs.WithValue(metadataKey{}, metadata(e.Meta))
		}
		a := resolver.Address{Addr: e.Key, ServerName: service, BalancerAttributes: attrs}
		st.Addresses[i] = a
		st.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{a}, Attributes: attrs}
	}
	return st
}

// Weight is the registry weight State gave an address, 1 when it has none.
func Weight(a resolver.Address) int {
	if w, ok := a.BalancerAttributes.Value(weightKey{}).(int); ok && w >= 1 {
		return w
	}
	return 1
}

// Metadata is the registry metadata State gave an address (etcd "meta", Consul service meta
// and tags); nil when it has none. Callers must not modify it.
func Metadata(a resolver.Address) map[string]string {
	m, _ := a.BalancerAttributes.Value(metadataKey{}).(metadata)
	return m
}
