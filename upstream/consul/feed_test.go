package consul

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// TestFeedSharing checks the feed's promises to its Watches: Watches of one name share one
// service (one read serves every Target), and a Watch whose update blocks holds up no other.
func TestFeedSharing(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	register(t, admin, &api.AgentServiceRegistration{ID: "sh-1", Name: "shared", Address: "10.0.0.1", Port: 80, Tags: []string{"v2"}}, "")
	register(t, admin, &api.AgentServiceRegistration{ID: "sh-2", Name: "shared", Address: "10.0.0.2", Port: 80}, "")
	register(t, admin, &api.AgentServiceRegistration{ID: "other-1", Name: "other", Address: "10.0.1.1", Port: 80}, "")
	d := New(newClient(t, agent.Addr), Options{})

	all, tagged, other := &testkit.Recorder{}, &testkit.Recorder{}, &testkit.Recorder{}
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	startWatch(t, d, upstream.Target{Service: "shared"}, all.Update)
	startWatch(t, d, upstream.Target{Service: "shared", Tags: []string{"v2"}}, tagged.Update)
	// This Watch's update never returns until the end: the others must not notice.
	startWatch(t, d, upstream.Target{Service: "other"}, func(s upstream.Snapshot) {
		other.Update(s)
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-release
	})
	t.Cleanup(func() { close(release) }) // runs before the Watches' cleanups
	all.WaitFor(t, 0, "both instances", testkit.HasKeys("10.0.0.1:80", "10.0.0.2:80"))
	n := tagged.WaitFor(t, 0, "tagged instance", testkit.HasKeys("10.0.0.1:80"))
	select {
	case <-blocked:
	case <-time.After(waitLimit):
		t.Fatal("the blocking Watch got no first snapshot")
	}

	f := d.feeds[""]
	f.mu.Lock()
	services, subs := len(f.services), len(f.services["shared"].subs)
	f.mu.Unlock()
	if services != 2 || subs != 2 {
		t.Errorf("%d services in the feed, %d Watches on shared; want 2 and 2", services, subs)
	}

	// The blocked Watch's service changes too; the others still follow theirs.
	register(t, admin, &api.AgentServiceRegistration{ID: "other-2", Name: "other", Address: "10.0.1.2", Port: 80}, "")
	register(t, admin, &api.AgentServiceRegistration{ID: "sh-3", Name: "shared", Address: "10.0.0.3", Port: 80, Tags: []string{"v2"}}, "")
	tagged.WaitFor(t, n+1, "new tagged instance", testkit.HasKeys("10.0.0.1:80", "10.0.0.3:80"))
	all.WaitFor(t, 0, "three instances", testkit.HasKeys("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"))
}

// TestReadRateLimit flips one service's check many times in a row: the feed sees every flip,
// but the service is read at most MinInterval apart after a short burst, and the last state
// is delivered.
func TestReadRateLimit(t *testing.T) {
	const (
		minInterval = 100 * time.Millisecond
		flips       = 21 // odd: the last state is critical
	)
	agent := consultest.Start(t)
	admin := agent.Client(t)
	register(t, admin, &api.AgentServiceRegistration{ID: "flap-1", Name: "flap", Address: "10.0.0.1", Port: 80}, "")
	proxy := newCountingProxy(t, agent)
	d := New(newClient(t, proxy.Listener.Addr().String()), Options{MinInterval: minInterval})
	rec := &testkit.Recorder{}
	startWatch(t, d, upstream.Target{Service: "flap"}, rec.Update)
	n := rec.WaitFor(t, 0, "first snapshot", testkit.HasKeys("10.0.0.1:80"))

	before := proxy.health.Load()
	start := time.Now()
	for i := range flips {
		status := api.HealthCritical
		if i%2 == 1 {
			status = api.HealthPassing
		}
		if err := admin.Agent().UpdateTTL("service:flap-1", "", status); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitFor(t, n+1, "critical", testkit.HasKeys())
	rec.WaitKeys(t) // and the last state delivered is that one
	reads := proxy.health.Load() - before
	elapsed := time.Since(start)
	if limit := int64(elapsed/minInterval) + minIntervalBurst + 1; reads > limit {
		t.Errorf("%d reads in %v for %d flips; want at most %d", reads, elapsed, flips, limit)
	}
	t.Logf("%d flips in %v caused %d reads", flips, elapsed.Round(time.Millisecond), reads)
}
