package grpcresolver

import (
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"

	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
)

// WeightedBalancer is the name of a balancer that shares calls among ready connections in
// proportion to the registry weight State puts on each address, with the gateway's smooth
// weighted round robin (lb.Weighted). grpc-go's own weighted_round_robin ignores such
// weights: it weighs by the load servers report over ORCA and treats every server alike
// without it. Select it with a service config:
//
//	grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"switchyard_weighted_round_robin":{}}]}`)
const WeightedBalancer = "switchyard_weighted_round_robin"

func init() {
	balancer.Register(weightedBuilder{})
}

// weightedBuilder builds the WeightedBalancer.
type weightedBuilder struct{}

func (weightedBuilder) Name() string { return WeightedBalancer }

func (weightedBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	wb := &weightedBalancer{weights: map[string]int{}}
	// base's balancer handles connections and their states; it offers our picker builder the
	// ready ones. HealthCheck honours a service config's health check settings.
	wb.Balancer = base.NewBalancerBuilder(WeightedBalancer, &weightedPickerBuilder{wb}, base.Config{HealthCheck: true}).Build(cc, opts)
	return wb
}

// weightedBalancer records the weights of the latest resolver state before passing it on.
// base's balancer keys connections by address without balancer attributes and keeps the
// address it first saw, so the weight has to come from here for a changed weight to count.
// gRPC calls a balancer's methods one at a time, and Build runs inside them, so weights
// needs no lock.
type weightedBalancer struct {
	balancer.Balancer
	weights map[string]int // by host:port
}

// UpdateClientConnState implements balancer.Balancer.
func (b *weightedBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	clear(b.weights)
	for _, a := range s.ResolverState.Addresses {
		b.weights[a.Addr] = Weight(a)
	}
	return b.Balancer.UpdateClientConnState(s)
}

// weightedPickerBuilder builds a picker over the ready connections.
type weightedPickerBuilder struct{ b *weightedBalancer }

// Build implements base.PickerBuilder.
func (pb *weightedPickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	eps := make([]upstream.Endpoint, 0, len(info.ReadySCs))
	byKey := make(map[string]balancer.SubConn, len(info.ReadySCs))
	for sc, sci := range info.ReadySCs {
		w, ok := pb.b.weights[sci.Address.Addr]
		if !ok {
			w = Weight(sci.Address)
		}
		eps = append(eps, upstream.Endpoint{Key: sci.Address.Addr, Weight: w})
		byKey[sci.Address.Addr] = sc
	}
	snapshot := upstream.NewSnapshot(eps) // sorted, so the schedule does not follow map order
	members := make([]upstream.Member, snapshot.Len())
	p := &weightedPicker{
		subConns: make([]balancer.SubConn, snapshot.Len()),
		done:     make([]func(balancer.DoneInfo), snapshot.Len()),
		index:    make(map[*upstream.EndpointState]int, snapshot.Len()),
	}
	for i, e := range snapshot.Endpoints() {
		state := upstream.NewEndpointState(e.Key, nil)
		members[i] = upstream.Member{Endpoint: e, State: state}
		p.subConns[i] = byKey[e.Key]
		p.done[i] = func(balancer.DoneInfo) { state.Done(upstream.Outcome{}) }
		p.index[state] = i
	}
	p.picker = lb.Weighted{}.Build(members)
	return p
}

// weightedPicker picks with lb.Weighted; its slices are built once per set of ready
// connections, so Pick allocates nothing.
type weightedPicker struct {
	picker   upstream.Picker
	index    map[*upstream.EndpointState]int // member index by state: the picker returns members
	subConns []balancer.SubConn              // by member index
	done     []func(balancer.DoneInfo)       // by member index: ends the member's in-flight count
}

// Pick implements balancer.Picker.
func (p *weightedPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	m, err := p.picker.Pick(nil, upstream.Excluded{})
	if err != nil {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	i := p.index[m.State]
	return balancer.PickResult{SubConn: p.subConns[i], Done: p.done[i]}, nil
}
