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
	"sync/atomic"
	"time"
	"unicode"

	"google.golang.org/grpc/resolver"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// DefaultResolveNowInterval is the least time between two watch restarts that ResolveNow
// asks for.
const DefaultResolveNowInterval = time.Second

// MaxResolveNowInterval caps the backoff between restarts that changed nothing: each
// ResolveNow that follows a restart which found the same instances waits twice as long as
// the one before, so a server that keeps failing its connections for hours costs the
// registry one re-read per 30 s, not one per second. (A cancelled ZooKeeper watch also
// leaves go-zookeeper's watchers registered until the node next changes: a restart a
// second would pile them up.)
const MaxResolveNowInterval = 30 * time.Second

// Options tune a Builder; zero values mean the defaults.
type Options struct {
	// ResolveNowInterval is the least time between two re-reads of the registry triggered by
	// ResolveNow; default DefaultResolveNowInterval. gRPC calls ResolveNow whenever a
	// connection fails, so without a floor a crashing server would turn every failed
	// connection into a registry read. It doubles, up to MaxResolveNowInterval (or the
	// interval itself if larger), while re-reads find nothing new.
	ResolveNowInterval time.Duration
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
	if opts.ResolveNowInterval <= 0 {
		opts.ResolveNowInterval = DefaultResolveNowInterval
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
		interval:   b.opts.ResolveNowInterval,
		log:        b.opts.Logger.With("resolver", b.scheme, "service", t.Service),
		resolveNow: make(chan struct{}, 1),
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	go r.run(ctx)
	return r, nil
}

// ParseTarget reads a target URL of the registry scheme: scheme:///service, and for Consul a
// query of `tag` (repeatable: every tag required), `dc` and `warning=true` (keep instances
// whose checks warn). Anything else is an error, so a typo fails the channel's first call
// (grpc.NewClient builds resolvers lazily) instead of silently widening the query.
func ParseTarget(scheme string, u url.URL) (upstream.Target, error) {
	form := scheme + ":///SERVICE"
	if u.Host != "" {
		return upstream.Target{}, fmt.Errorf("grpcresolver: target %q names a host %q: want %s (the registry's address is the builder's)", u.String(), u.Host, form)
	}
	service := strings.TrimPrefix(u.Path, "/")
	if service == "" || strings.Contains(service, "/") {
		return upstream.Target{}, fmt.Errorf("grpcresolver: target %q: want %s with one path segment", u.String(), form)
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

// watchResolver follows one target. Its discoverer's Watch runs on a goroutine of its own,
// restarted when ResolveNow asks (at most once per interval); update is only ever called by
// one Watch at a time, so the fields below cancel are that goroutine's alone.
type watchResolver struct {
	scheme     string
	target     upstream.Target
	cc         resolver.ClientConn
	discoverer upstream.Discoverer
	interval   time.Duration
	log        *slog.Logger
	resolveNow chan struct{} // one pending ResolveNow; more coalesce into it
	cancel     context.CancelFunc
	done       chan struct{} // closed when run returns
	closeOnce  sync.Once

	changes atomic.Uint64 // states and errors sent to cc; read by run to see if a re-read found anything

	last  upstream.Snapshot // last non-empty snapshot sent to cc
	sent  bool              // last holds a sent state
	empty bool              // the registry's latest answer was empty (reported as an error)
}

// ResolveNow implements resolver.Resolver: the next pass of run restarts the watch, which
// re-reads the registry at once instead of waiting for its next change or retry.
func (r *watchResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.resolveNow <- struct{}{}:
	default:
	}
}

// Close implements resolver.Resolver: it stops the watch and waits until every goroutine the
// resolver started has returned.
func (r *watchResolver) Close() {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
	})
}

// run keeps one Watch going until ctx ends, restarting it on ResolveNow.
func (r *watchResolver) run(ctx context.Context) {
	defer close(r.done)
	var (
		restarted        time.Time // zero until the first restart
		changesAtRestart uint64
		interval         = r.interval
		maxInterval      = max(r.interval, MaxResolveNowInterval)
	)
	for {
		watchCtx, stopWatch := context.WithCancel(ctx)
		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			_ = r.discoverer.Watch(watchCtx, r.target, r.update)
		}()
		select {
		case <-ctx.Done():
		case <-r.resolveNow:
			foundNothing := !restarted.IsZero() && r.changes.Load() == changesAtRestart
			interval = nextInterval(interval, r.interval, maxInterval, foundNothing)
			r.log.Debug("re-reading the registry on gRPC's request", "not_before", restarted.Add(interval))
			if wait := interval - time.Since(restarted); wait > 0 {
				upstream.Sleep(ctx, wait)
			}
			// The restart below answers every request made until now.
			select {
			case <-r.resolveNow:
			default:
			}
		}
		stopWatch()
		<-watchDone
		if ctx.Err() != nil {
			return
		}
		restarted, changesAtRestart = time.Now(), r.changes.Load()
	}
}

// nextInterval is the wait between two restarts: twice the last one, up to ceiling, when
// the last restart found nothing new; the floor otherwise.
func nextInterval(last, floor, ceiling time.Duration, foundNothing bool) time.Duration {
	if foundNothing {
		return min(2*last, ceiling)
	}
	return floor
}

// update hands a snapshot to gRPC. An empty one is reported as an error and the last
// addresses stay in force: gRPC's balancers keep the connections they have when a resolver
// reports an error, and an empty answer is more often the registry's problem than the
// service's (every instance's check failing on a registry hiccup, a ZooKeeper session
// expiry that dropped every ephemeral node at once, a deploy deregistering all before
// registering any). Keeping the addresses costs nothing when the instances are really gone:
// their connections fail and the calls fail as they would have. Dropping them fails every
// call while the instances may still serve.
func (r *watchResolver) update(s upstream.Snapshot) {
	if s.Len() == 0 {
		if !r.empty {
			r.changes.Add(1)
		}
		r.empty = true
		r.log.Warn("registry lists no instance; keeping the last addresses", "kept", r.last.Len())
		r.cc.ReportError(fmt.Errorf("grpcresolver: %s:///%s: %w", r.scheme, r.target.Service, errNoInstances))
		return
	}
	if r.sent && !r.empty && s.Equal(r.last) {
		return // a restarted watch re-reading the same set
	}
	r.last, r.sent, r.empty = s, true, false
	r.changes.Add(1)
	if err := r.cc.UpdateState(State(s, r.target.Service)); err != nil {
		r.log.Debug("balancer rejected the addresses", "err", err)
	}
}
