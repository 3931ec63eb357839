// Package grpcresolver lets a gRPC client find its servers in the registries the gateway
// reads: a resolver.Builder per registry (etcd:///users, consul:///users?tag=v2&dc=dc1,
// zookeeper:///users) built on the gateway's own discoverers, so their reconnect, compaction,
// index-reset and last-known-good rules apply to direct service-to-service calls too.
//
//	b := grpcresolver.New(config.RegistryConsul, consul.New(cli, consul.Options{}), grpcresolver.Options{})
//	conn, err := grpc.NewClient("consul:///users?tag=v2", grpc.WithResolvers(b), ...)
//
// The package links no registry client itself: the caller imports the one discoverer it uses
// (upstream/etcd, upstream/consul or upstream/zookeeper) and hands it to New, or its Opener to
// Open.
package grpcresolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"google.golang.org/grpc/resolver"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// DefaultKeepLastFor is how long the resolver keeps the last addresses in force after the
// registry answers that the service has no instance, when Options.KeepLastFor is zero.
const DefaultKeepLastFor = 3 * time.Minute

// DefaultFirstAnswerTimeout is how long the resolver waits for the registry's first answer
// before it reports an error to gRPC, when Options.FirstAnswerTimeout is zero.
const DefaultFirstAnswerTimeout = 10 * time.Second

// Options tune a Builder; zero values mean the defaults.
type Options struct {
	// KeepLastFor bounds how long an empty registry answer leaves the last addresses in
	// force (see watchResolver.update for why they are kept at all); default
	// DefaultKeepLastFor. Once it has passed without a non-empty answer the resolver sends
	// gRPC an empty state, so calls fail fast instead of reaching addresses that may by then
	// belong to another service (Kubernetes reuses pod IPs within minutes). A negative value
	// sends the empty state at once.
	KeepLastFor time.Duration
	// FirstAnswerTimeout is how long the resolver waits for the registry's first answer
	// before reporting an error to gRPC (the watch keeps running, and its first answer is
	// sent when it comes); default DefaultFirstAnswerTimeout. Without it a target the
	// registry never answers for (a wrong Consul dc, an unreachable registry) leaves calls
	// waiting for their deadlines with no error saying why.
	FirstAnswerTimeout time.Duration
	// Logger receives warnings; default slog.Default().
	Logger *slog.Logger
}

// Builder is a resolver.Builder for one registry: its scheme is the registry's name and every
// target it builds is watched through its discoverer. It is safe for concurrent use and may
// serve any number of ClientConns.
type Builder struct {
	scheme        string
	discoverer    upstream.Discoverer
	opts          Options
	closeRegistry func()
	closeOnce     sync.Once
}

var _ resolver.Builder = (*Builder)(nil)

// New returns a builder for targets scheme:///service that watches them through d. scheme is
// the registry's name (config.RegistryEtcd, config.RegistryConsul, config.RegistryZooKeeper);
// only consul targets take a query (tag, dc, warning). The caller keeps d's client and closes
// it after the ClientConns that use the builder.
func New(scheme string, d upstream.Discoverer, opts Options) *Builder {
	if opts.KeepLastFor == 0 {
		opts.KeepLastFor = DefaultKeepLastFor
	}
	if opts.FirstAnswerTimeout <= 0 {
		opts.FirstAnswerTimeout = DefaultFirstAnswerTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Builder{scheme: scheme, discoverer: d, opts: opts, closeRegistry: func() {}}
}

// Open connects the registry named registry through its Opener (etcd.Open, consul.Open,
// zookeeper.Open), from a discovery section written as in routes.yaml, the way the gateway
// opens its registries, and returns a builder whose scheme is registry. Close releases the
// registry's client; call it after closing the ClientConns that use the builder.
func Open(ctx context.Context, registry string, open upstream.Opener, d *config.Discovery, opts Options) (*Builder, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	disc, closeRegistry, err := open(ctx, d, upstream.OpenOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	if disc == nil {
		closeRegistry()
		return nil, fmt.Errorf("grpcresolver: the discovery section does not configure %s", registry)
	}
	b := New(registry, disc, opts)
	b.closeRegistry = closeRegistry
	return b, nil
}

// Scheme implements resolver.Builder: the registry's name.
func (b *Builder) Scheme() string { return b.scheme }

// Close releases the registry client Open connected; for a builder from New it does nothing.
// Resolvers still running keep their last addresses and stop when their ClientConn closes.
func (b *Builder) Close() { b.closeOnce.Do(b.closeRegistry) }

// Build implements resolver.Builder: it checks the target and starts watching its service.
func (b *Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	t, err := ParseTarget(b.scheme, target.URL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &watchResolver{
		scheme:     b.scheme,
		target:     t,
		cc:         cc,
		discoverer: b.discoverer,
		opts:       b.opts,
		log:        b.opts.Logger.With("resolver", b.scheme, "service", t.Service),
		answered:   make(chan struct{}),
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	go r.run(ctx)
	return r, nil
}

// ParseTarget reads a target URL of the registry scheme: scheme:///service (one path segment,
// not "." or "..", without spaces or control characters), and for Consul a
// query of `tag` (repeatable: every tag required), `dc` and `warning=true` (keep instances
// whose checks warn). Anything else is an error, so a typo fails the channel's first call
// (grpc.NewClient builds resolvers lazily) instead of silently widening the query.
func ParseTarget(scheme string, u url.URL) (upstream.Target, error) {
	form := scheme + ":///SERVICE"
	if u.Host != "" {
		return upstream.Target{}, fmt.Errorf("grpcresolver: target %q names a host %q: want %s (the registry's address is the builder's)", u.String(), u.Host, form)
	}
	service := strings.TrimPrefix(u.Path, "/")
	// "." and ".." would name the registry prefix's own node or its parent in etcd and
	// ZooKeeper paths, not a service.
	if service == "" || service == "." || service == ".." || strings.Contains(service, "/") {
		return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: want %s with one path segment, not \".\" or \"..\"", u.String(), form)
	}
	// As routes.yaml's service names: a registry key or node named with a space or a
	// control character is a mistake, or an attempt to reach another key.
	if strings.ContainsFunc(service, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: invalid service name %q (no spaces or control characters)", u.String(), service)
	}
	t := upstream.Target{Service: service}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: query: %w", u.String(), err)
	}
	for key, values := range query {
		if scheme != config.RegistryConsul {
			return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: %s targets take no query (tag, dc and warning are Consul's)", u.String(), scheme)
		}
		switch key {
		case "tag":
			for _, v := range values {
				if v == "" {
					return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: empty tag", u.String())
				}
				t.Tags = append(t.Tags, v)
			}
		case "dc":
			if len(values) != 1 || values[0] == "" {
				return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: want one non-empty dc", u.String())
			}
			t.Datacenter = values[0]
		case "warning":
			if len(values) != 1 || (values[0] != "true" && values[0] != "false") {
				return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: warning must be true or false", u.String())
			}
			t.IncludeWarning = values[0] == "true"
		default:
			return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: unknown query key %q (want tag, dc or warning)", u.String(), key)
		}
	}
	return t, nil
}

// errNoInstances is what the resolver reports when the registry lists no instance.
var errNoInstances = errors.New("the registry lists no instance")

// watchResolver follows one target: its discoverer's Watch runs on a goroutine of its own
// from Build to Close. Watch calls update from one goroutine; the timer that drops kept
// addresses and the first-answer timeout run on others, so the state below mu is guarded.
type watchResolver struct {
	scheme     string
	target     upstream.Target
	cc         resolver.ClientConn
	discoverer upstream.Discoverer
	opts       Options
	log        *slog.Logger
	answered   chan struct{} // closed at the registry's first answer
	cancel     context.CancelFunc
	done       chan struct{} // closed when run returns
	closeOnce  sync.Once

	mu        sync.Mutex
	closed    bool              // set by Close: nothing more goes to cc
	last      upstream.Snapshot // last snapshot sent to cc
	sent      bool              // last holds a sent state
	empty     bool              // the registry's latest answer was empty
	emptyGen  uint64            // bumped by every non-empty answer, so a stale drop timer does nothing
	dropTimer *time.Timer       // pending drop of the kept addresses, while empty
}

// ResolveNow implements resolver.Resolver and does nothing. gRPC calls it on every lost
// connection (a server's GOAWAY at MaxConnectionAge included), but every discoverer's watch
// is push-based (etcd watches, Consul blocking queries, ZooKeeper watches): the registry's
// changes already reach update as they happen, so a re-read would only find the same set.
// Restarting the watch to re-read also costs: each restart of a ZooKeeper watch registers
// new go-zookeeper watchers, freed only when the node next changes, so restarts on every
// lost connection would pile them up without bound.
func (*watchResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close implements resolver.Resolver: it stops the watch and its timers and waits until
// every goroutine the resolver started has returned; nothing reaches cc after it returns.
func (r *watchResolver) Close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		if r.dropTimer != nil {
			r.dropTimer.Stop()
		}
		r.mu.Unlock()
		r.cancel()
		<-r.done
	})
}

// run keeps the Watch going until ctx ends, and reports an error to gRPC if the registry
// has not answered within FirstAnswerTimeout.
func (r *watchResolver) run(ctx context.Context) {
	defer close(r.done)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = r.discoverer.Watch(ctx, r.target, r.update)
	}()
	first := time.NewTimer(r.opts.FirstAnswerTimeout)
	defer first.Stop()
	select {
	case <-first.C:
		r.mu.Lock()
		if !r.closed && !r.sent && !r.empty {
			r.log.Warn("no answer from the registry yet; still watching", "after", r.opts.FirstAnswerTimeout)
			r.cc.ReportError(fmt.Errorf("grpcresolver: %s:///%s: %w within %v", r.scheme, r.target.Service, errNoAnswer, r.opts.FirstAnswerTimeout))
		}
		r.mu.Unlock()
	case <-r.answered:
	case <-ctx.Done():
	}
	<-watchDone
}

// errNoAnswer is what the resolver reports when the registry's first answer is late.
var errNoAnswer = errors.New("no answer from the registry")

// update hands a snapshot to gRPC. An empty one is reported as an error and the last
// addresses stay in force for up to KeepLastFor: gRPC's balancers keep the connections they
// have when a resolver reports an error, and an empty answer is more often the registry's
// problem than the service's (every instance's check failing on a registry hiccup, a
// ZooKeeper session expiry that dropped every ephemeral node at once, a deploy
// deregistering all before registering any), when dropping the addresses would fail every
// call while the instances still serve. Keeping them is not free, which is why it is
// bounded: an address may be reused by another service (Kubernetes pod IPs), and calls
// would reach it.
func (r *watchResolver) update(s upstream.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case <-r.answered:
	default:
		close(r.answered)
	}
	if s.Len() == 0 {
		if !r.empty {
			r.empty = true
			r.scheduleDrop()
		}
		r.log.Warn("registry lists no instance; keeping the last addresses for a while", "kept", r.last.Len(), "for", r.opts.KeepLastFor)
		r.cc.ReportError(fmt.Errorf("grpcresolver: %s:///%s: %w", r.scheme, r.target.Service, errNoInstances))
		return
	}
	r.emptyGen++ // a drop timer already running must not fire now
	if r.dropTimer != nil {
		r.dropTimer.Stop()
		r.dropTimer = nil
	}
	if r.sent && !r.empty && s.Equal(r.last) {
		return // the same set again (a watch that re-listed after a reconnect)
	}
	r.last, r.sent, r.empty = s, true, false
	if err := r.cc.UpdateState(State(s, r.target.Service)); err != nil {
		r.log.Debug("balancer rejected the addresses", "err", err)
	}
}

// scheduleDrop arranges for the kept addresses to be replaced by an empty state after
// KeepLastFor, unless an answer comes first; the caller holds mu.
func (r *watchResolver) scheduleDrop() {
	if !r.sent || r.last.Len() == 0 {
		return // nothing kept
	}
	gen := r.emptyGen
	r.dropTimer = time.AfterFunc(max(r.opts.KeepLastFor, 0), func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed || r.emptyGen != gen {
			return // closed, or the registry answered again since
		}
		r.log.Warn("registry still lists no instance; dropping the kept addresses", "after", r.opts.KeepLastFor)
		r.last = upstream.Snapshot{}
		r.dropTimer = nil
		// gRPC's balancers answer an empty address list with ErrBadResolverState and fail
		// calls at once with the error reported below; that is the point.
		_ = r.cc.UpdateState(resolver.State{Addresses: []resolver.Address{}, Endpoints: []resolver.Endpoint{}})
		r.cc.ReportError(fmt.Errorf("grpcresolver: %s:///%s: %w for %v; last addresses dropped", r.scheme, r.target.Service, errNoInstances, r.opts.KeepLastFor))
	})
}
