package register

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
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

const (
	etcdDefaultPrefix = "/services/"
	etcdCallTimeout   = 5 * time.Second // bound on every grant, put and revoke
	etcdMaxRetry      = time.Second     // cap on the re-registration backoff, jitter included
)

func init() {
	openers["etcd"] = openEtcd
}

// etcdRegistrar keeps one key <prefix><service>/<id> attached to a lease it keeps alive.
// When the lease is lost (expired during an outage, revoked, etcd restarted without it) the
// keeper grants a new one and writes the key again.
type etcdRegistrar struct {
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

// openEtcd handles etcd://[user:password@]host:port[,host:port...].
func openEtcd(u *url.URL, inst Instance, opts Options) (Registrar, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("registry %q: etcd:// needs host:port", u.Redacted())
	}
	value, err := encodeEntry(inst)
	if err != nil {
		return nil, err
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = etcdDefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	ttl := int64((opts.TTL + time.Second - 1) / time.Second) // etcd leases count whole seconds
	cfg := clientv3.Config{
		Endpoints:            strings.Split(u.Host, ","),
		DialTimeout:          etcdCallTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(), // the registrar logs what matters through slog
		// Reconnect within a second of etcd coming back, not gRPC's default of up to 120 s.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 800 * time.Millisecond},
			MinConnectTimeout: etcdCallTimeout,
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
	return &etcdRegistrar{
		cli: cli, key: key, value: string(value), ttl: ttl,
		log: opts.Logger.With("registry", "etcd", "key", key),
	}, nil
}

// Register writes the key under a fresh lease, then keeps the lease alive in the background.
// It fails if the first write fails; later losses are repaired by the keeper.
func (r *etcdRegistrar) Register(ctx context.Context) error {
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
func (r *etcdRegistrar) write(ctx context.Context) (clientv3.LeaseID, error) {
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	g, err := r.cli.Grant(cctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("etcd lease grant: %w", err)
	}
	if _, err := r.cli.Put(cctx, r.key, r.value, clientv3.WithLease(g.ID)); err != nil {
		// Do not leave an orphan lease behind; it would expire anyway.
		_, _ = r.cli.Revoke(cctx, g.ID)
		return 0, fmt.Errorf("etcd put %s: %w", r.key, err)
	}
	return g.ID, nil
}

// keep runs KeepAlive on the lease; when its channel closes while ctx lives, the lease is
// gone (expired during an outage, revoked, or etcd lost it), so it registers again.
func (r *etcdRegistrar) keep(ctx context.Context, lease clientv3.LeaseID, done chan struct{}) {
	defer close(done)
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     100 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         etcdMaxRetry * 2 / 3, // x1.5 jitter stays within the cap
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
			cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
			_, _ = r.cli.Revoke(cctx, old)
			cancel()
		}
		r.log.Info("re-registered", "lease", fmt.Sprintf("%x", lease))
	}
}

// Deregister stops the keeper, revokes the lease (which deletes the key at once) and closes
// the client. If etcd cannot be reached the key still disappears when its lease expires.
func (r *etcdRegistrar) Deregister(ctx context.Context) error {
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
	cctx, cc := context.WithTimeout(ctx, etcdCallTimeout)
	defer cc()
	if _, err := r.cli.Revoke(cctx, lease); err != nil {
		return fmt.Errorf("etcd revoke lease of %s: %w", r.key, err)
	}
	r.log.Info("deregistered")
	return nil
}
