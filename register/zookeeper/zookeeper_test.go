package zookeeper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/zktest"
	"github.com/switchyard/switchyard/register"
	"github.com/switchyard/switchyard/upstream"
	zkdiscovery "github.com/switchyard/switchyard/upstream/zookeeper"
)

// zkNoLeaks checks, when the test ends, that it left no goroutine behind (go-zookeeper's
// connection loops included). Per test because other backends' tests share this package.
func zkNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

var zkQuiet = slog.New(slog.DiscardHandler)

func zkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// zkWait bounds waits for propagation; it detects hangs, it does not measure speed.
const zkWait = 15 * time.Second

func TestOpenZooKeeperErrors(t *testing.T) {
	ok := register.Instance{Service: "users", Address: "127.0.0.1:9001"}
	tests := []struct {
		name, registry string
		inst           register.Instance
		opts           register.Options
		want           string
	}{
		{"no host", "zk://", ok, register.Options{}, "needs host:port"},
		{"path", "zk://127.0.0.1:2181/services", ok, register.Options{}, "takes no path"},
		{"unknown option", "zk://127.0.0.1:2181?ttl=3", ok, register.Options{}, "unknown option"},
		{"bad sequential", "zk://127.0.0.1:2181?sequential=maybe", ok, register.Options{}, "not a boolean"},
		{"id with slash", "zk://127.0.0.1:2181", register.Instance{Service: "users", ID: "a/b", Address: "127.0.0.1:9001"}, register.Options{}, "not a valid ZooKeeper node name"},
		{"service with slash", "zk://127.0.0.1:2181", register.Instance{Service: "a/b", Address: "127.0.0.1:9001"}, register.Options{}, "must not contain /"},
		{"address without port", "zk://127.0.0.1:2181", register.Instance{Service: "users", Address: "127.0.0.1"}, register.Options{}, "missing port"},
		{"bad port", "zk://127.0.0.1:2181", register.Instance{Service: "users", Address: "127.0.0.1:0"}, register.Options{}, "bad port"},
		{"bad scheme", "zk://127.0.0.1:2181", register.Instance{Service: "users", Address: "127.0.0.1:1", Scheme: "ftp"}, register.Options{}, "not http or https"},
		{"root /", "zk://127.0.0.1:2181", ok, register.Options{Prefix: "/"}, "not a usable path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.registry, tt.inst, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%q) error = %v, want one containing %q", tt.registry, err, tt.want)
			}
		})
	}
}

func TestOpenZooKeeperOptions(t *testing.T) {
	tests := []struct {
		registry, prefix, wantDir string
		wantSeq                   bool
		wantServers               []string
	}{
		{"zk://127.0.0.1:2181", "", "/services/users", false, []string{"127.0.0.1:2181"}},
		{"zk://a:1,b:2/?sequential=true", "/services/", "/services/users", true, []string{"a:1", "b:2"}},
		{"zk://a:1?sequential=false", "apps/prod", "/apps/prod/users", false, []string{"a:1"}},
	}
	for _, tt := range tests {
		r, err := register.Open(tt.registry, register.Instance{Service: "users", Address: "127.0.0.1:9001"}, register.Options{Prefix: tt.prefix})
		if err != nil {
			t.Fatalf("Open(%q): %v", tt.registry, err)
		}
		z := r.(*registrar)
		if z.dir != tt.wantDir || z.sequential != tt.wantSeq || !slices.Equal(z.servers, tt.wantServers) {
			t.Errorf("Open(%q, %q) = dir %q seq %v servers %v", tt.registry, tt.prefix, z.dir, z.sequential, z.servers)
		}
	}
}

// zkPool is a gateway pool fed by the real discoverer, so the tests check what the proxy
// would route to.
type zkPool struct {
	pool    *upstream.Pool
	updates chan struct{}
}

type firstPicker struct{ members []upstream.Member }

func (p firstPicker) Pick(*http.Request, upstream.Excluded) (*upstream.Member, error) {
	if len(p.members) == 0 {
		return nil, upstream.ErrNoEndpoint
	}
	return &p.members[0], nil
}

type firstBuilder struct{}

func (firstBuilder) Build(ms []upstream.Member) upstream.Picker { return firstPicker{ms} }

func watchPool(t *testing.T, addr, service string) *zkPool {
	t.Helper()
	d, err := zkdiscovery.New(&config.ZooKeeper{Servers: []string{addr}}, zkdiscovery.Options{Logger: zkQuiet})
	if err != nil {
		t.Fatal(err)
	}
	p := &zkPool{pool: upstream.NewPool(service, firstBuilder{}, upstream.PoolOptions{}), updates: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = d.Watch(ctx, upstream.Target{Service: service}, func(s upstream.Snapshot) {
			p.pool.Update(s)
			select {
			case p.updates <- struct{}{}:
			default:
			}
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait(); d.Close() })
	return p
}

// waitFor waits until the pool's members are exactly keys; it returns them.
func (p *zkPool) waitFor(t *testing.T, keys ...string) []upstream.Member {
	t.Helper()
	deadline := time.After(zkWait)
	for {
		if v := p.pool.View(); v != nil {
			got := make([]string, 0, len(v.Members))
			for _, m := range v.Members {
				got = append(got, m.Key)
			}
			if slices.Equal(got, keys) {
				return v.Members
			}
		}
		select {
		case <-p.updates:
		case <-deadline:
			t.Fatalf("pool never held exactly %v (view %+v)", keys, p.pool.View())
		}
	}
}

func TestZooKeeperRegisterDeregister(t *testing.T) {
	zkNoLeaks(t)
	srv := zktest.Start(t)
	pool := watchPool(t, srv.Addr, "users")
	pool.waitFor(t) // no service node yet: an empty pool

	a, err := register.Open("zk://"+srv.Addr, register.Instance{Service: "users", Address: "127.0.0.1:9001", Weight: 3, Meta: map[string]string{"zone": "b"}}, register.Options{Logger: zkQuiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := zkCtx(t)
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	ms := pool.waitFor(t, "127.0.0.1:9001")
	if ms[0].Weight != 3 || ms[0].Meta["zone"] != "b" {
		t.Fatalf("member %+v lost weight or meta", ms[0].Endpoint)
	}

	b, err := register.Open("zk://"+srv.Addr+"?sequential=true", register.Instance{Service: "users", Address: "127.0.0.1:9002"}, register.Options{Logger: zkQuiet, Prefix: "/services/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx); err != nil {
		t.Fatal(err)
	}
	pool.waitFor(t, "127.0.0.1:9001", "127.0.0.1:9002")
	if p := b.(*registrar).path; !strings.HasPrefix(p, "/services/users/_c_") {
		t.Fatalf("sequential node path %q", p)
	}

	if err := a.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	pool.waitFor(t, "127.0.0.1:9002")
	if err := a.Register(ctx); err == nil {
		t.Fatal("Register after Deregister succeeded")
	}
	if err := b.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	pool.waitFor(t)
	if err := b.Deregister(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
}

// The helper process registers an instance and blocks until killed; see
// TestZooKeeperKilledProcess.
const zkHelperEnv = "SWITCHYARD_ZK_HELPER_ADDR"

func TestZooKeeperHelperProcess(t *testing.T) {
	addr := os.Getenv(zkHelperEnv)
	if addr == "" {
		return // not the helper: nothing to do (the idiom of os/exec's own tests)
	}
	r, err := register.Open("zk://"+addr, register.Instance{Service: "users", Address: "127.0.0.1:9009"}, register.Options{TTL: zktest.MinSessionTimeout, Logger: zkQuiet})
	if err == nil {
		err = r.Register(context.Background())
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("registered")
	select {} // until SIGKILL
}

// TestZooKeeperKilledProcess kills a registered process by PID: nothing deletes its node,
// but its session times out and the node, and so the endpoint, goes away.
func TestZooKeeperKilledProcess(t *testing.T) {
	zkNoLeaks(t)
	srv := zktest.Start(t)
	pool := watchPool(t, srv.Addr, "users")

	cmd := exec.Command(os.Args[0], "-test.run=^TestZooKeeperHelperProcess$")
	cmd.Env = append(os.Environ(), zkHelperEnv+"="+srv.Addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "registered" {
		t.Fatalf("helper said %q", line)
	}
	pool.waitFor(t, "127.0.0.1:9009")

	if err := cmd.Process.Kill(); err != nil { // SIGKILL to its PID: no deregistration
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waited = true
	pool.waitFor(t)
}

// TestZooKeeperSessionExpiry cuts the registrar off past its session timeout: the server
// drops its session and node, and once reachable again it registers anew by itself.
func TestZooKeeperSessionExpiry(t *testing.T) {
	zkNoLeaks(t)
	srv := zktest.Start(t)
	proxy := srv.Proxy(t)
	pool := watchPool(t, srv.Addr, "users")

	r, err := register.Open("zk://"+proxy.Addr, register.Instance{Service: "users", Address: "127.0.0.1:9001"}, register.Options{TTL: zktest.MinSessionTimeout, Logger: zkQuiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := zkCtx(t)
	if err := r.Register(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Deregister(context.Background()) })
	pool.waitFor(t, "127.0.0.1:9001")
	before := r.(*registrar).conn.SessionID()

	proxy.Cut()
	pool.waitFor(t) // expired: the server removed the node
	proxy.Heal()
	pool.waitFor(t, "127.0.0.1:9001")

	c, _, err := zk.Connect([]string{srv.Addr}, 10*time.Second, zk.WithLogger(slogAdapter{zkQuiet}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, stat, err := c.Get("/services/users/127.0.0.1:9001")
	if err != nil {
		t.Fatal(err)
	}
	if stat.EphemeralOwner == before || stat.EphemeralOwner == 0 {
		t.Fatalf("node owner %x, want a new session (old %x)", stat.EphemeralOwner, before)
	}

	// Someone deleting the node (an operator, a cleanup script) does not deregister it.
	if err := c.Delete("/services/users/127.0.0.1:9001", -1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(zkWait)
	for {
		_, again, err := c.Get("/services/users/127.0.0.1:9001")
		if err == nil && again.Czxid != stat.Czxid {
			break // written anew
		}
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted node was never written again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pool.waitFor(t, "127.0.0.1:9001")
}

// TestZooKeeperTakeOver: a restarted instance finds its previous process's node still held
// by a session that has not timed out; it takes the name over instead of failing.
func TestZooKeeperTakeOver(t *testing.T) {
	zkNoLeaks(t)
	srv := zktest.Start(t)
	c, _, err := zk.Connect([]string{srv.Addr}, 30*time.Second, zk.WithLogger(slogAdapter{zkQuiet}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"/services", "/services/users"} {
		if _, err := c.Create(p, nil, 0, openACL); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Create("/services/users/127.0.0.1:9001", []byte("127.0.0.1:9999"), zk.FlagEphemeral, openACL); err != nil {
		t.Fatal(err)
	}
	r, err := register.Open("zk://"+srv.Addr, register.Instance{Service: "users", Address: "127.0.0.1:9001"}, register.Options{Logger: zkQuiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(zkCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Deregister(context.Background()) }()
	data, stat, err := c.Get("/services/users/127.0.0.1:9001")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := upstream.ParseEntry(data)
	if err != nil || ep.Key != "127.0.0.1:9001" || stat.EphemeralOwner != r.(*registrar).conn.SessionID() {
		t.Fatalf("node %s (owner %x): %+v, %v", data, stat.EphemeralOwner, ep, err)
	}
}

// TestZooKeeperRegisterUnreachable: with nothing listening, Register fails (bounded by
// go-zookeeper's retry cycle or ctx) instead of hanging, and leaves nothing running.
func TestZooKeeperRegisterUnreachable(t *testing.T) {
	zkNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := register.Open("zk://"+addr, register.Instance{Service: "users", Address: "127.0.0.1:9001"}, register.Options{Logger: zkQuiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = r.Register(ctx)
	if err == nil {
		t.Fatal("Register succeeded with no server")
	}
	if !errors.Is(err, zk.ErrNoServer) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Register error = %v, want no server or deadline", err)
	}
	if err := r.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
}
