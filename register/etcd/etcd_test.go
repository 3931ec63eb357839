package etcd

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/register"
	"github.com/switchyard/switchyard/upstream"
)

// etcdNoLeaks checks, when the test ends, that it left no goroutine behind. Per test (not a
// TestMain) because other backends' tests share this package.
func etcdNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// getKey returns the value and lease of key, or ok=false when absent.
func getKey(t *testing.T, cli *clientv3.Client, key string) (value string, lease clientv3.LeaseID, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), clientv3.LeaseID(resp.Kvs[0].Lease), true
}

// eventually polls cond every 20 ms for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEtcdRegisterDeregister(t *testing.T) {
	etcdNoLeaks(t)
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	tests := []struct {
		name    string
		inst    register.Instance
		opts    register.Options
		wantKey string
		want    upstream.Endpoint
	}{
		{"defaults", register.Instance{Service: "users", Address: "127.0.0.1:9001"}, register.Options{},
			"/services/users/127.0.0.1:9001", upstream.Endpoint{Key: "127.0.0.1:9001", Scheme: "http", Weight: 1}},
		{"id weight meta https", register.Instance{Service: "users", ID: "u-2", Address: "127.0.0.1:9443", Scheme: "https", Weight: 3, Meta: map[string]string{"v": "2"}},
			register.Options{Prefix: "/sy"}, "/sy/users/u-2",
			upstream.Endpoint{Key: "127.0.0.1:9443", Scheme: "https", Weight: 3, Meta: map[string]string{"v": "2"}}},
		{"ipv6", register.Instance{Service: "orders", Address: "[::1]:9002"}, register.Options{Prefix: "/services/"},
			"/services/orders/[::1]:9002", upstream.Endpoint{Key: "[::1]:9002", Scheme: "http", Weight: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			tt.opts.Logger = quiet
			reg, err := register.Open("etcd://"+srv.Endpoints()[0], tt.inst, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.Register(ctx); err != nil {
				t.Fatal(err)
			}
			val, lease, ok := getKey(t, cli, tt.wantKey)
			if !ok {
				t.Fatalf("key %s not written", tt.wantKey)
			}
			if lease == 0 {
				t.Fatalf("key %s has no lease: a dead instance would never leave", tt.wantKey)
			}
			ep, err := upstream.ParseEntry([]byte(val))
			if err != nil {
				t.Fatalf("gateway cannot parse %q: %v", val, err)
			}
			if ep.Scheme == "" {
				ep.Scheme = "http"
			}
			if !ep.Equal(tt.want) {
				t.Fatalf("value %s parses to %+v, want %+v", val, ep, tt.want)
			}
			if err := reg.Deregister(ctx); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := getKey(t, cli, tt.wantKey); ok {
				t.Fatalf("key %s still there after Deregister", tt.wantKey)
			}
			if err := reg.Register(ctx); err == nil {
				t.Fatal("Register after Deregister succeeded")
			}
		})
	}
}

func TestOpenEtcdErrors(t *testing.T) {
	tests := []struct {
		name, registry string
		inst           register.Instance
		want           string
	}{
		{"no host", "etcd://", register.Instance{Service: "s", Address: "127.0.0.1:1"}, "needs host:port"},
		{"no port", "etcd://127.0.0.1:2379", register.Instance{Service: "s", Address: "127.0.0.1"}, "missing port"},
		{"bad port", "etcd://127.0.0.1:2379", register.Instance{Service: "s", Address: "127.0.0.1:99999"}, "bad port"},
		{"bad scheme", "etcd://127.0.0.1:2379", register.Instance{Service: "s", Address: "127.0.0.1:1", Scheme: "ftp"}, "not http or https"},
		{"another registry", "zk://127.0.0.1:2181", register.Instance{Service: "s", Address: "127.0.0.1:1"}, "not an etcd:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.registry, tt.inst, register.Options{Logger: quiet})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEtcdRegistrarRepairsLostLease(t *testing.T) {
	etcdNoLeaks(t)
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := testCtx(t)
	// The registrar reaches etcd through a proxy the test can cut, as a network would.
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	const key = "/services/users/127.0.0.1:9001"
	reg, err := register.Open("etcd://"+proxy.Addr(), register.Instance{Service: "users", Address: "127.0.0.1:9001"},
		register.Options{TTL: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx); err != nil {
		t.Fatal(err)
	}
	defer reg.Deregister(ctx)
	lease := func() clientv3.LeaseID {
		_, l, ok := getKey(t, cli, key)
		if !ok {
			return 0
		}
		return l
	}
	// keptAlive checks the key outlives two TTLs under one lease: kept alive, not just
	// written once.
	keptAlive := func(t *testing.T) {
		t.Helper()
		now := lease()
		time.Sleep(4 * time.Second)
		if l := lease(); l != now || l == 0 {
			t.Fatalf("lease %x after 2 TTLs, want %x kept alive", l, now)
		}
	}

	t.Run("revoked by someone else", func(t *testing.T) {
		first := lease()
		if _, err := cli.Revoke(ctx, first); err != nil {
			t.Fatal(err)
		}
		eventually(t, "key back under a new lease", func() bool { l := lease(); return l != 0 && l != first })
	})

	t.Run("network cut longer than the TTL", func(t *testing.T) {
		before := lease()
		proxy.Cut()
		// etcd itself stays up, so the lease expires there and the key goes.
		eventually(t, "lease expiry during the cut", func() bool { return lease() == 0 })
		proxy.Restore()
		eventually(t, "key back under a new lease after the cut", func() bool { l := lease(); return l != 0 && l != before })
		keptAlive(t)
	})

	t.Run("etcd restart", func(t *testing.T) {
		srv.Stop()
		time.Sleep(3 * time.Second) // > TTL
		srv.Restart(t)
		// etcd restores leases on restart, so the old lease may legitimately survive; what
		// matters is that the key is there and stays.
		eventually(t, "key present after the restart", func() bool { return lease() != 0 })
		keptAlive(t)
	})
}
