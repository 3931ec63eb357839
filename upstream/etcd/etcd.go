// Package etcd discovers a service's endpoints from etcd keys <prefix><service>/<instance-id>
// (usually attached to a lease the instance keeps alive) and runs the embedded etcd server the
// gateway starts when no registry is configured.
package etcd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// Defaults used when Options or config.Etcd leave a field zero.
const (
	DefaultPrefix      = config.DefaultEtcdPrefix
	DefaultDebounce    = config.DefaultEtcdDebounce
	DefaultDialTimeout = config.DefaultEtcdDialTimeout

	// listTimeout bounds one Get of a service prefix; a slow answer is retried after backoff.
	// It starts once the Get holds one of maxConcurrentLists slots, so time spent queueing
	// behind other services' reads does not count against it.
	listTimeout = 5 * time.Second
	// maxConcurrentLists bounds the prefix reads one Discoverer has in flight. Without it a
	// gateway starting 10,000 watches sent 10,000 Gets at once; on a loaded machine the last
	// ones waited past listTimeout, failed, and came back together after the backoff, a retry
	// storm that stretched a 4 s start to 73 s. 64 reads in flight keep the connection busy (16 and
	// 256 started 10,000 services as fast, within the noise of a shared machine).
	maxConcurrentLists = 64
	// maxBackoff caps the retry delay (jitter included) so a change made right after etcd
	// returns reaches traffic within about a second of the next retry.
	maxBackoff = time.Second
	registry   = config.RegistryEtcd
)

// NewClient builds a clientv3 client from the gateway's etcd config. It does not block on
// dialing: an unreachable etcd surfaces as errors on calls, and the client keeps reconnecting
// with a backoff capped at 1 s (gRPC's default cap of 120 s would leave the gateway blind for
// minutes after an outage).
func NewClient(cfg *config.Etcd) (*clientv3.Client, error) {
	if cfg == nil {
		cfg = &config.Etcd{}
	}
	eps := cfg.Endpoints
	if len(eps) == 0 {
		eps = []string{config.DefaultEtcdEndpoint}
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	cc := clientv3.Config{
		Endpoints:   eps,
		DialTimeout: dial,
		// Keepalive pings find a silently dead connection (a cut network) in seconds.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Username:             cfg.Username,
		Password:             cfg.Password,
		// clientv3 logs through zap at info; the discoverer reports what matters via slog.
		Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   800 * time.Millisecond, // +20% jitter stays under 1 s
			},
			MinConnectTimeout: dial,
		})},
	}
	if t := cfg.TLS; t != nil {
		info := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile, ServerName: t.ServerName}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd tls: %w", err)
		}
		tc.InsecureSkipVerify = t.InsecureSkipVerify
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

// Options tune a Discoverer; zero values mean the defaults.
type Options struct {
	Prefix   string                     // key prefix, default "/services/"; a missing final "/" is added
	Debounce time.Duration              // coalescing window for bursts, default 5ms
	Metrics  *upstream.DiscoveryMetrics // may be nil
	Logger   *slog.Logger               // default slog.Default()
}

// Discoverer watches services under one etcd prefix. It implements upstream.Discoverer; one
// Discoverer serves any number of concurrent Watch calls over one client.
type Discoverer struct {
	cli   *clientv3.Client
	opts  Options
	lists chan struct{} // one token per list in flight, at most maxConcurrentLists
}

var _ upstream.Discoverer = (*Discoverer)(nil)

// New returns a Discoverer reading through cli, which the caller keeps and closes.
func New(cli *clientv3.Client, opts Options) *Discoverer {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Discoverer{cli: cli, opts: opts, lists: make(chan struct{}, maxConcurrentLists)}
}

// ServicePrefix is the etcd key prefix holding service's instances.
func (d *Discoverer) ServicePrefix(service string) string { return d.opts.Prefix + service + "/" }

// Watch implements upstream.Discoverer for t.Service (the other Target fields are Consul's).
// It lists the service prefix at revision R, emits the first snapshot, then watches from
// R+1. A compacted or cancelled watch is re-listed and resumed; while etcd is unreachable
// the last snapshot stays in force and calls are retried with jittered backoff from the last
// revision seen. It returns ctx.Err() when ctx ends.
func (d *Discoverer) Watch(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
	service := t.Service
	w := &watch{
		d:       d,
		service: service,
		prefix:  d.ServicePrefix(service),
		update:  update,
		log:     d.opts.Logger.With("registry", registry, "service", service),
		entries: make(map[string]entry),
		bo: &backoff.ExponentialBackOff{
			InitialInterval:     50 * time.Millisecond,
			RandomizationFactor: 0.5,
			Multiplier:          2,
			MaxInterval:         maxBackoff * 2 / 3, // randomised up to x1.5: never above 1 s
		},
	}
	w.bo.Reset()
	for {
		if err := w.list(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.fail("list", err)
			if !upstream.Sleep(ctx, w.bo.NextBackOff()) {
				return ctx.Err()
			}
			continue
		}
		// Watch until the revision we hold is compacted away; other watch failures resume
		// from the last revision seen without re-listing.
		for {
			err := w.watch(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, rpctypes.ErrCompacted) {
				w.log.Info("etcd watch revision compacted, re-listing", "revision", w.rev)
				break
			}
			w.fail("watch", err)
			if !upstream.Sleep(ctx, w.bo.NextBackOff()) {
				return ctx.Err()
			}
		}
	}
}

// entry is one valid registry value and the revision that wrote it.
type entry struct {
	ep     upstream.Endpoint
	modRev int64
}

// watch is the state of one Watch call; it is used by that call's goroutine only.
type watch struct {
	d       *Discoverer
	service string
	prefix  string
	update  func(upstream.Snapshot)
	log     *slog.Logger
	bo      *backoff.ExponentialBackOff

	entries map[string]entry // by etcd key
	rev     int64            // last revision applied
	last    upstream.Snapshot
	emitted bool
}

func (w *watch) fail(op string, err error) {
	w.d.opts.Metrics.Error(registry, w.service)
	w.log.Warn("etcd "+op+" failed; keeping the last snapshot", "err", err, "revision", w.rev)
}

// list replaces the state with a fresh read of the prefix and emits it.
func (w *watch) list(ctx context.Context) error {
	select {
	case w.d.lists <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-w.d.lists }()
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	resp, err := w.d.cli.Get(lctx, w.prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	clear(w.entries)
	for _, kv := range resp.Kvs {
		w.put(kv)
	}
	w.rev = resp.Header.Revision
	w.bo.Reset()
	w.emit()
	return nil
}

// watch follows changes from w.rev+1 until the watch fails, coalescing bursts within the
// debounce window. Pending changes are emitted before it returns, so nothing is held back
// while it backs off.
func (w *watch) watch(ctx context.Context) error {
	// WithRequireLeader makes a member cut off from its quorum cancel the watch (ErrNoLeader)
	// instead of stalling silently; the retry may then land on a healthy member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.d.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))

	var timer *time.Timer
	var fire <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
			if ctx.Err() == nil {
				w.emit()
			}
		}
	}()
	for {
		select {
		case resp, ok := <-wch:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("watch channel closed")
			}
			if err := resp.Err(); err != nil {
				return err
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					delete(w.entries, string(ev.Kv.Key))
				} else {
					w.put(ev.Kv)
				}
			}
			if r := resp.Header.Revision; r > w.rev {
				w.rev = r
			}
			w.bo.Reset()
			if len(resp.Events) > 0 && timer == nil {
				timer = time.NewTimer(w.d.opts.Debounce)
				fire = timer.C
			}
		case <-fire:
			timer, fire = nil, nil
			w.emit()
		}
	}
}

// put records a key's value, or drops the key when the value does not parse: a malformed
// entry never takes the rest of the pool with it.
func (w *watch) put(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	ep, err := upstream.ParseEntry(kv.Value)
	if err != nil {
		delete(w.entries, key)
		w.d.opts.Metrics.Rejected(registry, w.service)
		w.log.Warn("skipping malformed etcd entry", "key", key, "err", err)
		return
	}
	w.entries[key] = entry{ep: ep, modRev: kv.ModRevision}
}

// emit delivers the current set unless it equals the last one delivered.
func (w *watch) emit() {
	es := make([]entry, 0, len(w.entries))
	for _, e := range w.entries {
		es = append(es, e)
	}
	// Oldest write first: when two instance keys announce the same host:port, NewSnapshot
	// keeps the last, i.e. the newest write.
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.modRev, b.modRev) })
	eps := make([]upstream.Endpoint, len(es))
	for i, e := range es {
		eps[i] = e.ep
	}
	s := upstream.NewSnapshot(eps)
	if w.emitted && s.Equal(w.last) {
		return
	}
	w.last, w.emitted = s, true
	w.d.opts.Metrics.Updated(registry, w.service)
	w.update(s)
}
