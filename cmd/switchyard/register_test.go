package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/internal/zktest"
)

func TestRunRegisterUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing service", []string{"-addr", "127.0.0.1:1"}, 2, "-service and -addr are required"},
		{"bad meta", []string{"-service", "s", "-addr", "127.0.0.1:1", "-meta", "novalue"}, 2, "want key=value"},
		{"unknown scheme", []string{"-registry", "gopher://x", "-service", "s", "-addr", "127.0.0.1:1"}, 2, "unknown scheme"},
		{"stray argument", []string{"-service", "s", "-addr", "127.0.0.1:1", "extra"}, 2, "unexpected argument"},
		{"help", []string{"-h"}, 0, "-propagation-delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr testkit.SyncBuffer
			if code := runRegister(context.Background(), tt.args, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestRunRegisterEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testkit.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runRegister(ctx, []string{"-registry", "etcd://" + srv.Endpoints()[0], "-service", "users",
			"-addr", "127.0.0.1:9001", "-id", "u1", "-weight", "2", "-meta", "zone=a", "-meta", "v=2",
			"-ttl", "5s", "-propagation-delay", "10ms"}, &stderr)
	}()
	const key = "/services/users/u1"
	get := func() string {
		gctx, gcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer gcancel()
		resp, err := cli.Get(gctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("key %s never written; stderr:\n%s", key, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := `{"address":"127.0.0.1","port":9001,"weight":2,"meta":{"v":"2","zone":"a"}}`
	if got := get(); got != want {
		t.Fatalf("value %s, want %s", got, want)
	}
	cancel() // what SIGTERM does through main's signal context
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("runRegister did not return after cancel")
	}
	if v := get(); v != "" {
		t.Fatalf("key still there after exit: %s", v)
	}
}

// registryUnderTest is one registry the stop-during-registration tests run against: url is
// what the sidecar is told (the held proxy's address), registered asks the registry itself,
// not through the proxy, whether instance u1 of service users is there.
type registryUnderTest struct {
	url        func(addr string) string
	target     string
	registered func() bool
}

// registries starts each real registry for a test: an in-process etcd, a Consul dev agent
// and a ZooKeeper server (both skipped where missing, unless CI=true).
var registriesUnderTest = map[string]func(t *testing.T) registryUnderTest{
	"etcd": func(t *testing.T) registryUnderTest {
		srv := etcdtest.Start(t)
		cli := srv.Client(t)
		return registryUnderTest{
			url:    func(addr string) string { return "etcd://" + addr },
			target: srv.Endpoints()[0],
			registered: func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				resp, err := cli.Get(ctx, "/services/users/u1")
				return err == nil && len(resp.Kvs) > 0
			},
		}
	},
	"consul": func(t *testing.T) registryUnderTest {
		agent := consultest.Start(t)
		cli := agent.Client(t)
		return registryUnderTest{
			url:    func(addr string) string { return "consul://" + addr },
			target: agent.Addr,
			registered: func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				svc, _, err := cli.Agent().Service("u1", (&api.QueryOptions{}).WithContext(ctx))
				return err == nil && svc != nil
			},
		}
	},
	"zookeeper": func(t *testing.T) registryUnderTest {
		srv := zktest.Start(t)
		conn, _, err := zk.Connect([]string{srv.Addr}, 10*time.Second, zk.WithLogger(zkQuiet{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		return registryUnderTest{
			url:    func(addr string) string { return "zk://" + addr },
			target: srv.Addr,
			registered: func() bool {
				ok, _, err := conn.Exists("/services/users/u1")
				return err == nil && ok
			},
		}
	},
}

// zkQuiet drops go-zookeeper's connection chatter.
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// TestRunRegisterStopDuringRegistration stops the sidecar while it registers, against each
// real registry: before it has sent anything, and while the registry has applied the write
// but its answer is still on its way (held by a proxy until the sidecar has seen the stop).
// Either way a stop is not a failure: exit 0, and nothing stays registered.
func TestRunRegisterStopDuringRegistration(t *testing.T) {
	for name, start := range registriesUnderTest {
		t.Run(name, func(t *testing.T) {
			reg := start(t)
			for _, mode := range []string{"at once", "answer on its way"} {
				t.Run(mode, func(t *testing.T) {
					proxy := newAnswerHoldingProxy(t, reg.target, reg.registered)
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					if mode == "at once" {
						cancel()
					}
					var stderr testkit.SyncBuffer
					code := make(chan int, 1)
					go func() {
						code <- runRegister(ctx, []string{"-registry", reg.url(proxy.Addr()), "-service", "users",
							"-addr", "127.0.0.1:9001", "-id", "u1", "-ttl", "5s", "-propagation-delay", "10ms"}, &stderr)
					}()
					if mode == "answer on its way" {
						deadline := time.Now().Add(20 * time.Second)
						for !reg.registered() {
							if time.Now().After(deadline) {
								t.Fatalf("never registered; stderr:\n%s", stderr.String())
							}
							time.Sleep(5 * time.Millisecond)
						}
						cancel() // what SIGTERM does through main's signal context
						// Let the answer through once the sidecar has acted on the stop (it
						// cancels the call or closes its session, and the registry hears of
						// it); a Consul write is waited for, so there the bound lets it through.
						proxy.ReleaseWhenClientSpeaks(time.Second)
					}
					select {
					case c := <-code:
						if c != 0 {
							t.Fatalf("exit %d, want 0; stderr:\n%s", c, stderr.String())
						}
					case <-time.After(30 * time.Second):
						t.Fatalf("runRegister did not return after the stop; stderr:\n%s", stderr.String())
					}
					if !strings.Contains(stderr.String(), "stopped during registration") {
						t.Errorf("the stop did not come during registration; stderr:\n%s", stderr.String())
					}
					if reg.registered() {
						t.Fatalf("still registered after the sidecar exited; stderr:\n%s", stderr.String())
					}
				})
			}
		})
	}
}

// answerHoldingProxy forwards TCP to a registry and holds back the registry's answers from
// the first moment the registration is there (checked before each chunk it forwards), until
// released: so a test can stop the client while its write is applied but unanswered.
type answerHoldingProxy struct {
	ln         net.Listener
	target     string
	registered func() bool
	wg         sync.WaitGroup

	mu          sync.Mutex
	conns       []net.Conn
	holding     bool          // the registration is there; answers wait for released
	releaseOnce sync.Once     // closes released
	released    chan struct{} // closed: answers flow again, unchecked
	onClient    chan struct{} // closed by ReleaseWhenClientSpeaks: client data releases
}

// newAnswerHoldingProxy listens on a free loopback port; it is closed when t ends.
func newAnswerHoldingProxy(t *testing.T, target string, registered func() bool) *answerHoldingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &answerHoldingProxy{ln: ln, target: target, registered: registered,
		released: make(chan struct{}), onClient: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// Addr is where the client under test connects.
func (p *answerHoldingProxy) Addr() string { return p.ln.Addr().String() }

// ReleaseWhenClientSpeaks lets held answers through as soon as the client sends anything
// more (its cancellation, a session close, the next request), or after max at the latest.
func (p *answerHoldingProxy) ReleaseWhenClientSpeaks(max time.Duration) {
	close(p.onClient)
	timer := time.AfterFunc(max, p.release)
	p.wg.Go(func() {
		<-p.released
		timer.Stop()
	})
}

func (p *answerHoldingProxy) release() { p.releaseOnce.Do(func() { close(p.released) }) }

func (p *answerHoldingProxy) close() {
	p.ln.Close()
	p.release()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *answerHoldingProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(server, client, p.fromClient) })
		p.wg.Go(func() { p.pipe(client, server, p.toClient) })
	}
}

// pipe copies src to dst chunk by chunk, calling before ahead of each write; it closes both
// ends when either fails, which ends the other direction too.
func (p *answerHoldingProxy) pipe(dst, src net.Conn, before func()) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			before()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// fromClient releases held answers once the test has asked for that and the client speaks.
func (p *answerHoldingProxy) fromClient() {
	select {
	case <-p.onClient:
		p.release()
	default:
	}
}

// toClient holds an answer while the registration is there, until released.
func (p *answerHoldingProxy) toClient() {
	select {
	case <-p.released:
		return
	default:
	}
	p.mu.Lock()
	holding := p.holding
	p.mu.Unlock()
	if !holding && p.registered() {
		p.mu.Lock()
		p.holding = true
		p.mu.Unlock()
		holding = true
	}
	if holding {
		<-p.released
	}
}
