package grpcresolver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/register"
)

// registryUnderTest is one real registry as the churn-and-outage scenario drives it.
type registryUnderTest struct {
	builder *Builder
	target  string
	// registry is the URL registrars write to (directly, not through the resolver's path).
	registry string
	opts     register.Options
	// outage makes the registry unreachable from the resolver; heal ends it.
	outage, heal func(t *testing.T)
	// whileOut runs during the outage after an instance registered unseen (etcd compacts).
	whileOut func(t *testing.T)
	// afterHeal checks what the resolver went through, once calls reach the late instance.
	afterHeal func(t *testing.T)
	// registerAfterHeal: the registry cannot take registrations during its outage (the
	// Consul agent is down), so the late instance registers after it.
	registerAfterHeal bool
}

// registerBackend registers b under service users the way a service does, and returns what
// makes it leave.
func registerBackend(t *testing.T, reg registryUnderTest, b *backend) (leave func()) {
	t.Helper()
	inst := register.Instance{Service: "users", Address: b.addr, ID: fmt.Sprintf("users-%d", b.port(t))}
	r, err := register.Open(reg.registry, inst, reg.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := r.Register(ctx); err != nil {
		t.Fatal(err)
	}
	left := false
	leave = func() {
		if left {
			return
		}
		left = true
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := r.Deregister(ctx); err != nil {
			t.Errorf("deregister %s: %v", b.addr, err)
		}
	}
	t.Cleanup(leave)
	return leave
}

// runChurnAndOutage is issue 23's scenario on a real registry: a stream of calls through
// grpc.NewClient and the resolver while instances register and leave (each leaving one
// deregisters, waits until calls stop reaching it, then stops gracefully), then while the
// registry is out of reach (calls go on to the last known instances; an instance that
// registers meanwhile is found once it is back). One instance stays throughout, so no call
// may fail.
func runChurnAndOutage(t *testing.T, reg registryUnderTest) {
	stay := startBackend(t)
	registerBackend(t, reg, stay)
	conn := dial(t, reg.target, reg.builder, "round_robin")
	waitServedBy(t, conn, stay.addr)
	calls := startCaller(conn)
	defer calls.stopCalls()

	const rounds = 3
	for range rounds {
		extra := startBackend(t)
		leave := registerBackend(t, reg, extra)
		calls.waitCalls(t, extra.addr, 20)
		leave()
		calls.waitQuiet(t, extra.addr, 300*time.Millisecond)
		extra.server.GracefulStop()
	}
	_, churnTotal, churnFailed := calls.snapshot()
	t.Logf("churn: %d instances registered and left; %d calls, %d failed", rounds, churnTotal, churnFailed)

	late := startBackend(t)
	reg.outage(t)
	outageBegan := time.Now()
	outageStart, _, _ := calls.snapshot()
	calls.waitCalls(t, stay.addr, 200)
	if !reg.registerAfterHeal {
		registerBackend(t, reg, late)
	}
	if reg.whileOut != nil {
		reg.whileOut(t)
	}
	// Long enough for the resolver's registry calls to fail and back off, not only to
	// notice a cut.
	time.Sleep(time.Until(outageBegan.Add(outageLasts)))
	calls.waitCalls(t, stay.addr, 200)
	if n := calls.count(late.addr); n != 0 {
		t.Fatalf("%d calls reached an instance registered during the outage: the resolver was not cut off", n)
	}
	_, outageTotal, _ := calls.snapshot()
	outageLasted := time.Since(outageBegan)
	reg.heal(t)
	if reg.registerAfterHeal {
		registerBackend(t, reg, late)
	}
	calls.waitCalls(t, late.addr, 20)
	calls.waitCalls(t, stay.addr, 20)
	if reg.afterHeal != nil {
		reg.afterHeal(t)
	}

	ok, total, failed := calls.stopCalls()
	t.Logf("outage: %d calls in %v while the registry was out of reach (%d before it)", outageTotal-sum(outageStart), outageLasted.Round(time.Millisecond), churnTotal)
	t.Logf("in all: %d calls, %d failed, by instance %v", total, failed, ok)
	if failed != 0 {
		t.Fatalf("%d of %d calls failed while an instance stayed: %v", failed, total, calls.lastErr)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// outageLasts is the least time the scenario keeps the registry out of reach.
const outageLasts = 2 * time.Second

// registerOptions are the registrars' options in the scenario: a short TTL so a lost
// registration is repaired within a second, and a quiet log.
func registerOptions() register.Options {
	return register.Options{TTL: 2 * time.Second, Logger: quietLogger()}
}
