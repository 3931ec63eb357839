package grpcresolver

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // registers weighted_round_robin
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// TestBalancers: grpc.NewClient with the builder works with grpc-go's round_robin and
// weighted_round_robin and with WeightedBalancer, and follows the registry as instances come
// and go.
func TestBalancers(t *testing.T) {
	for _, name := range []string{"round_robin", "weighted_round_robin", WeightedBalancer} {
		t.Run(name, func(t *testing.T) {
			a, b, c := startBackend(t), startBackend(t), startBackend(t)
			reg := newFakeRegistry()
			reg.Set(a.addr, b.addr)
			conn := dial(t, "etcd:///users", New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), name)
			waitServedBy(t, conn, a.addr, b.addr)
			reg.Set(a.addr, b.addr, c.addr)
			waitServedBy(t, conn, a.addr, b.addr, c.addr)
			reg.Set(c.addr)
			waitServedBy(t, conn, c.addr)
		})
	}
}

// TestWeightedBalancerShares: WeightedBalancer shares calls by the registry weight, and a
// weight change alone (same addresses) takes effect.
func TestWeightedBalancerShares(t *testing.T) {
	a, b := startBackend(t), startBackend(t)
	reg := newFakeRegistry()
	weights := func(wa, wb int) upstream.Snapshot {
		return upstream.NewSnapshot([]upstream.Endpoint{{Key: a.addr, Weight: wa}, {Key: b.addr, Weight: wb}})
	}
	reg.SetSnapshot(weights(1, 3))
	conn := dial(t, "etcd:///users", New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), WeightedBalancer)
	waitServedBy(t, conn, a.addr, b.addr)

	// Smooth weighted round robin is exact over a cycle once both connections are ready.
	share := func() map[string]int {
		seen := map[string]int{}
		for range 400 {
			addr, err := call(context.Background(), conn)
			if err != nil {
				t.Fatal(err)
			}
			seen[addr]++
		}
		return seen
	}
	if seen := share(); seen[a.addr] != 100 || seen[b.addr] != 300 {
		t.Fatalf("weights 1:3 gave %v", seen)
	}
	reg.SetSnapshot(weights(3, 1))
	deadline := time.Now().Add(waitLimit)
	for {
		seen := share()
		if seen[a.addr] == 300 && seen[b.addr] == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("weights 3:1 gave %v", seen)
		}
	}
}

// TestEmptyAnswerCallsContinue: with the registry suddenly listing nobody, calls keep
// reaching the instances that still run, with no failure.
func TestEmptyAnswerCallsContinue(t *testing.T) {
	a, b := startBackend(t), startBackend(t)
	reg := newFakeRegistry()
	reg.Set(a.addr, b.addr)
	conn := dial(t, "etcd:///users", New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), "round_robin")
	waitServedBy(t, conn, a.addr, b.addr)

	calls := startCaller(conn)
	calls.waitCalls(t, a.addr, 20)
	reg.Set()
	calls.waitCalls(t, a.addr, 200)
	calls.waitCalls(t, b.addr, 200)
	ok, total, failed := calls.stopCalls()
	t.Logf("calls through an empty registry answer: %d made, %d failed (%v)", total, failed, ok)
	if failed != 0 {
		t.Fatalf("%d of %d calls failed: %v", failed, total, calls.lastErr)
	}
}

// TestChurnNoFailedCall: instances register and leave (deregistered first, then stopped
// gracefully, as register.ServeAndRegister does) under a stream of calls; while one instance
// stays, no call fails.
func TestChurnNoFailedCall(t *testing.T) {
	stay := startBackend(t)
	reg := newFakeRegistry()
	reg.Set(stay.addr)
	conn := dial(t, "etcd:///users", New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), "round_robin")
	waitServedBy(t, conn, stay.addr)
	calls := startCaller(conn)
	for range 5 {
		extra := startBackend(t)
		reg.Set(stay.addr, extra.addr)
		calls.waitCalls(t, extra.addr, 20)
		reg.Set(stay.addr)
		time.Sleep(50 * time.Millisecond) // the drain delay a leaving instance waits
		extra.server.GracefulStop()
		calls.waitCalls(t, stay.addr, 20)
	}
	ok, total, failed := calls.stopCalls()
	t.Logf("calls through churn: %d made, %d failed (%d on the instance that stayed)", total, failed, ok[stay.addr])
	if failed != 0 {
		t.Fatalf("%d of %d calls failed: %v", failed, total, calls.lastErr)
	}
}

// TestIPv6Instance: an instance at [::1]:port (a bracketed key, as the registries give it)
// is dialled and called.
func TestIPv6Instance(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	reg := newFakeRegistry()
	reg.Set(ln.Addr().String())
	conn := dial(t, "etcd:///users", New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), "round_robin")
	waitServedBy(t, conn, ln.Addr().String())
}

// TestPickFirst: grpc-go's default balancer follows the resolver too: it moves when the
// instance it uses leaves the registry.
func TestPickFirst(t *testing.T) {
	a, b := startBackend(t), startBackend(t)
	reg := newFakeRegistry()
	reg.Set(a.addr)
	conn := dial(t, "etcd:///users", New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), "")
	waitServedBy(t, conn, a.addr)
	reg.Set(b.addr)
	waitServedBy(t, conn, b.addr)
}
