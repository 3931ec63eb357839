package consul

import (
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// With allow_stale a read may reach a server behind the one that answered last: its answer,
// at a lower index, must not take the routes back to an older set.
func TestStaleReadNotDelivered(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	register(t, admin, &api.AgentServiceRegistration{ID: "st-1", Name: "st", Address: "10.0.0.1", Port: 80}, "")
	proxy := newCountingProxy(t, agent)
	proxy.record.Store(true)
	d := New(newClient(t, proxy.Listener.Addr().String()), Options{AllowStale: true})
	rec := &testkit.Recorder{}
	startWatch(t, d, upstream.Target{Service: "st"}, rec.Update)
	rec.WaitKeys(t, "10.0.0.1:80")
	proxy.record.Store(false) // keep the answer with one instance

	register(t, admin, &api.AgentServiceRegistration{ID: "st-2", Name: "st", Address: "10.0.0.2", Port: 80}, "")
	rec.WaitKeys(t, "10.0.0.1:80", "10.0.0.2:80")
	newer := rec.Count()

	proxy.replay.Store(true)
	// A change of the service (a critical instance: the passing set stays) makes the feed
	// read it, from the server behind.
	before := proxy.health.Load()
	register(t, admin, &api.AgentServiceRegistration{ID: "st-3", Name: "st", Address: "10.0.0.3", Port: 80}, api.HealthCritical)
	deadline := time.Now().Add(5 * time.Second)
	for proxy.health.Load() < before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if proxy.health.Load() < before+2 {
		t.Fatal("the change was not read from the stale server (twice: once and a retry)")
	}
	for i, keys := range rec.AllKeys()[newer:] {
		if !slices.Equal(keys, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
			t.Errorf("snapshot %d after the stale answers: %v, an older set", newer+i, keys)
		}
	}
	proxy.replay.Store(false)
	// The feed keeps asking; once the server catches up the routes stay on the newest set.
	register(t, admin, &api.AgentServiceRegistration{ID: "st-4", Name: "st", Address: "10.0.0.4", Port: 80}, "")
	rec.WaitKeys(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.4:80")
}

// A resync (an outage, an index that went backwards) forgets the indexes a check change
// explained: after a reset, the same numbers mean other writes.
func TestResyncForgetsExplainedIndexes(t *testing.T) {
	f := &feed{services: map[string]*service{}}
	f.explained.add(42)
	f.checksIndex = 42
	f.resync()
	if f.explained.has(42) {
		t.Error("index 42 still explained after a resync")
	}
	if f.checksIndex != 0 {
		t.Errorf("checks index %d after a resync, want 0 (unknown)", f.checksIndex)
	}
}
