package httpclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/register"
	registeretcd "github.com/switchyard/switchyard/register/etcd"
	"github.com/switchyard/switchyard/upstream/etcd"
)

// TestEtcdChurnAndOutage: on an embedded etcd, instances registered with register/etcd
// join and leave (deregister, wait until no request reaches them, shut down) under a
// stream of requests, then etcd is cut off from the client (requests go on to the last
// known instances) and comes back (an instance registered meanwhile is found). One
// instance stays throughout: no request may fail.
func TestEtcdChurnAndOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	cli, err := etcd.NewClient(&config.Etcd{Endpoints: []string{proxy.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	c, _ := newClient(t, etcd.New(cli, etcd.Options{Logger: quiet}), Options{})
	registry := "etcd://" + srv.Endpoints()[0]

	stay := serveRegistered(t, registry)
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		failed []error
		total  atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			addr, status, err := get(c, "http://users/")
			total.Add(1)
			mu.Lock()
			if err == nil && status != 200 {
				err = errors.New(http.StatusText(status))
			}
			if err != nil {
				failed = append(failed, err)
			} else {
				counts[addr]++
			}
			mu.Unlock()
		}
	})
	stopCalls := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopCalls()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("calls to the first instance", func() bool { return counts[stay.addr] > 20 })

	for range 3 {
		extra := serveRegistered(t, registry)
		waitFor("calls to a new instance", func() bool { return counts[extra.addr] > 20 })
		extra.leave(t, func(quiet time.Duration) { waitQuiet(t, &mu, counts, extra.addr, quiet) })
	}

	proxy.Cut()
	mu.Lock()
	before := counts[stay.addr]
	mu.Unlock()
	late := serveRegistered(t, registry)
	// Long enough for the discoverer's calls to fail and back off, not only to notice a cut.
	time.Sleep(2 * time.Second)
	waitFor("calls during the outage", func() bool { return counts[stay.addr] > before+200 })
	mu.Lock()
	lateCalls := counts[late.addr]
	mu.Unlock()
	if lateCalls != 0 {
		t.Fatalf("%d calls reached an instance registered during the outage", lateCalls)
	}
	proxy.Restore()
	waitFor("calls to the instance registered during the outage", func() bool { return counts[late.addr] > 20 })

	stopCalls()
	t.Logf("%d requests, %d failed, by instance %v", total.Load(), len(failed), counts)
	if len(failed) != 0 {
		t.Fatalf("%d requests failed while an instance stayed; first: %v", len(failed), failed[0])
	}
}

// registered is an HTTP instance registered in etcd.
type registered struct {
	addr string
	srv  *http.Server
	reg  register.Registrar
	done chan struct{}
}

// serveRegistered starts an HTTP instance on loopback and registers it as users.
func serveRegistered(t *testing.T, registry string) *registered {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &registered{addr: ln.Addr().String(), done: make(chan struct{})}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(r.addr))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln)
	}()
	r.reg, err = registeretcd.New(registry, register.Instance{Service: "users", Address: r.addr}, register.Options{TTL: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.reg.Register(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.reg.Deregister(ctx)
		_ = r.srv.Shutdown(ctx)
		<-r.done
	})
	return r
}

// leave deregisters the instance, waits (drain) until requests stop reaching it, then shuts
// it down gracefully.
func (r *registered) leave(t *testing.T, drain func(quiet time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	drain(300 * time.Millisecond)
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitQuiet waits until addr's count has not moved for quiet.
func waitQuiet(t *testing.T, mu *sync.Mutex, counts map[string]int, addr string, quiet time.Duration) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	mu.Lock()
	last := counts[addr]
	mu.Unlock()
	since := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		n := counts[addr]
		mu.Unlock()
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
	t.Fatalf("requests to %s never stopped", addr)
}
