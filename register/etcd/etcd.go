// Package etcd registers service instances in etcd, for the gateway's etcd discovery: one
// key <prefix><service>/<id> under a lease the registrar keeps alive, holding a
// register.Entry. Import it (blank, for register.Open's etcd:// URLs, or to call New) only in
// programs that register in etcd: it links etcd's gRPC client.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/switchyard/switchyard/register"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

// Scheme is the registry URL scheme this package serves: etcd://host:port[,host:port...].
const Scheme = "etcd"

const (
	defaultPrefix = "/services/"
	callTimeout   = 5 * time.Second // bound on every grant, put and revoke
	maxRetry      = time.Second     // cap on the re-registration backoff, jitter included
)

func init() {
	register.AddScheme(Scheme, open)
}

// New returns a registrar for registry, an etcd://[user:password@]host:port[,host:port...]
// URL, as register.Open does once this package is linked in.
func New(registry string, inst register.Instance, opts register.Options) (register.Registrar, error) {
	return register.OpenWith(open, registry, inst, opts)
}

// registrar keeps one key <prefix><service>/<id> attached to a lease it keeps alive.
// When the lease is lost (expired during an outage, revoked, etcd restarted without it) the
// keeper grants a new one and writes the key again.
type registrar struct {
	cli   *clientv3.Client
	key   string
	value string
	ttl   int64 // seconds
	log   *slog.Logger

	mu     sync.Mutex
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
}

// open is the register.OpenFunc for etcd://[user:password@]host:port[,host:port...].
func open(u *url.URL, inst register.Instance, opts register.Options) (register.Registrar, error) {
	if u.Scheme != Scheme {
		return nil, fmt.Errorf("registry %q: not an etcd:// URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("registry %q: etcd:// needs host:port", u.Redacted())
	}
	value, err := register.EncodeEntry(inst)
	if err != nil {
		return nil, err
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = defaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	ttl := int64((opts.TTL + time.Second - 1) / time.Second) // etcd leases count whole seconds
	cfg := clientv3.Config{
		Endpoints:            strings.Split(u.Host, ","),
		DialTimeout:          callTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(), // the registrar logs what matters through slog
		// Reconnect within a second of etcd coming back, not gRPC's default of up to 120 s.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 800 * time.Millisecond},
			MinConnectTimeout: callTimeout,
		})},
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", u.Redacted(), err)
	}
	key := prefix + inst.Service + "/" + inst.ID
	return &registrar{
		cli: cli, key: key, value: string(value), ttl: ttl,
		log: opts.Logger.With("registry", "etcd", "key", key),
	}, nil
}

// Register writes the key under a fresh lease, then keeps the lease alive in the background.
// It fails if the first write fails; later losses are repaired by the keeper.
func (r *registrar) Register(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("etcd registrar: Register after Deregister")
	}
	if r.cancel != nil {
		return nil // already registered and kept alive
	}
	lease, err := r.write(ctx)
	if err != nil {
		return err
	}
	r.lease = lease
	kctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.keep(kctx, lease, r.done)
	r.log.Info("registered", "lease", fmt.Sprintf("%x", lease), "ttl_s", r.ttl)
	return nil
}

// write grants a lease and puts the key under it.
func (r *registrar) write(ctx context.Context) (clientv3.LeaseID, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	g, err := r.cli.Grant(cctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("etcd lease grant: %w", err)
	}
	if _, err := r.cli.Put(cctx, r.key, r.value, clientv3.WithLease(g.ID)); err != nil {
		// A put cut short by ctx may still have been applied, its answer lost on the way:
		// revoking the lease deletes the key if so (and makes a put etcd has yet to apply
		// fail), so a stop during registration leaves nothing behind. It must not use ctx,
		// which may be the reason we are here.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		_, rerr := r.cli.Revoke(rctx, g.ID)
		rcancel()
		if rerr != nil {
			r.log.Warn("etcd revoke after a failed put; the key, if written, leaves when the lease expires",
				"lease", fmt.Sprintf("%x", g.ID), "err", rerr)
		}
		return 0, fmt.Errorf("etcd put %s: %w", r.key, err)
	}
	return g.ID, nil
}

// keep runs KeepAlive on the lease; when its channel closes while ctx lives, the lease is
// gone (expired during an outage, revoked, or etcd lost it), so it registers again.
func (r *registrar) keep(ctx context.Context, lease clientv3.LeaseID, done chan struct{}) {
	defer close(done)
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     100 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         maxRetry * 2 / 3, // x1.5 jitter stays within the cap
	}
	for {
		if lease != 0 {
			ka, err := r.cli.KeepAlive(ctx, lease)
			if err == nil {
				bo.Reset()
				for range ka { // drain responses; the channel closes when the lease is lost
				}
			}
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("etcd lease lost; registering again", "lease", fmt.Sprintf("%x", lease), "err", err)
		}
		bo.Reset()
		for {
			var err error
			if lease, err = r.write(ctx); err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("etcd re-registration failed; retrying", "err", err)
			t := time.NewTimer(bo.NextBackOff())
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		r.mu.Lock()
		old := r.lease
		r.lease = lease
		r.mu.Unlock()
		if old != 0 && old != lease {
			// The old lease may still exist (a lease survives an etcd restart); it no longer
			// holds our key, so revoking it only tidies up.
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			_, _ = r.cli.Revoke(cctx, old)
			cancel()
		}
		r.log.Info("re-registered", "lease", fmt.Sprintf("%x", lease))
	}
}

// Deregister stops the keeper, revokes the lease (which deletes the key at once) and closes
// the client. If etcd cannot be reached the key still disappears when its lease expires.
func (r *registrar) Deregister(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	defer r.cli.Close()
	if cancel != nil {
		cancel()
		<-done
	}
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	if lease == 0 {
		return nil
	}
	cctx, cc := context.WithTimeout(ctx, callTimeout)
	defer cc()
	if _, err := r.cli.Revoke(cctx, lease); err != nil {
		return fmt.Errorf("etcd revoke lease of %s: %w", r.key, err)
	}
	r.log.Info("deregistered")
	return nil
}
