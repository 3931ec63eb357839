package grpcresolver

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		scheme, target string
		want           upstream.Target
		err            string
	}{
		{"etcd", "etcd:///users", upstream.Target{Service: "users"}, ""},
		{"zookeeper", "zookeeper:///users", upstream.Target{Service: "users"}, ""},
		{"consul", "consul:///users?tag=v2&dc=dc1", upstream.Target{Service: "users", Tags: []string{"v2"}, Datacenter: "dc1"}, ""},
		{"consul", "consul:///users?tag=v2&tag=eu&warning=true", upstream.Target{Service: "users", Tags: []string{"v2", "eu"}, IncludeWarning: true}, ""},
		{"consul", "consul:///users", upstream.Target{Service: "users"}, ""},
		{"consul", "consul://agent:8500/users", upstream.Target{}, `names a host "agent:8500"`},
		{"etcd", "etcd:///", upstream.Target{}, "one path segment"},
		{"etcd", "etcd:///a/b", upstream.Target{}, "one path segment"},
		{"etcd", "etcd:///.", upstream.Target{}, "one path segment"},
		{"zookeeper", "zookeeper:///..", upstream.Target{}, "one path segment"},
		{"etcd", "etcd:///us%20ers", upstream.Target{}, "invalid service name"},
		{"etcd", "etcd:///users%00", upstream.Target{}, "invalid service name"},
		{"etcd", "etcd:///users?tag=v2", upstream.Target{}, "etcd targets take no query"},
		{"consul", "consul:///users?tags=v2", upstream.Target{}, `unknown query key "tags"`},
		{"consul", "consul:///users?tag=", upstream.Target{}, "empty tag"},
		{"consul", "consul:///users?dc=a&dc=b", upstream.Target{}, "want one non-empty dc"},
		{"consul", "consul:///users?warning=yes", upstream.Target{}, "warning must be true or false"},
		{"consul", "consul:///users?tag=%zz", upstream.Target{}, "query"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			u, err := url.Parse(tc.target)
			if err != nil {
				// Go's URL parser refuses the query only when read: build it by hand.
				u = &url.URL{Scheme: tc.scheme, Path: "/users", RawQuery: strings.SplitN(tc.target, "?", 2)[1]}
			}
			got, err := ParseTarget(tc.scheme, *u)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Service != tc.want.Service || got.Datacenter != tc.want.Datacenter ||
				got.IncludeWarning != tc.want.IncludeWarning || !slices.Equal(got.Tags, tc.want.Tags) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStateAddresses(t *testing.T) {
	s := upstream.NewSnapshot([]upstream.Endpoint{
		{Key: "127.0.0.1:9002", Weight: 3, Meta: map[string]string{"zone": "b"}},
		{Key: "127.0.0.1:9001"},
		{Key: "127.0.0.1:9002", Weight: 5}, // a duplicate: the last entry wins
	})
	st := State(s, "users")
	if got := addrs(st); !slices.Equal(got, []string{"127.0.0.1:9001", "127.0.0.1:9002"}) {
		t.Fatalf("addresses %v, want sorted and deduplicated", got)
	}
	if len(st.Endpoints) != 2 || st.Endpoints[1].Addresses[0].Addr != "127.0.0.1:9002" {
		t.Fatalf("endpoints %+v", st.Endpoints)
	}
	for _, a := range st.Addresses {
		if a.ServerName != "users" {
			t.Fatalf("%s: ServerName %q, want users", a.Addr, a.ServerName)
		}
	}
	if w := Weight(st.Addresses[0]); w != 1 {
		t.Fatalf("weight %d, want 1", w)
	}
	if w := Weight(st.Addresses[1]); w != 5 {
		t.Fatalf("weight %d, want 5", w)
	}
	if m := Metadata(st.Addresses[0]); m != nil {
		t.Fatalf("metadata %v, want none", m)
	}
	if w := Weight(resolver.Address{Addr: "x:1"}); w != 1 {
		t.Fatalf("weight of a bare address %d, want 1", w)
	}
	withMeta := State(upstream.NewSnapshot([]upstream.Endpoint{{Key: "h:1", Meta: map[string]string{"zone": "b"}}}), "users")
	if m := Metadata(withMeta.Addresses[0]); m["zone"] != "b" {
		t.Fatalf("metadata %v", m)
	}
	// Equal states must compare equal (attributes with a map need an Equal method).
	if !withMeta.Addresses[0].Equal(State(upstream.NewSnapshot([]upstream.Endpoint{{Key: "h:1", Meta: map[string]string{"zone": "b"}}}), "users").Addresses[0]) {
		t.Fatal("identical addresses with metadata compare unequal")
	}
}

// build starts a resolver for target on a recording conn; it is closed at cleanup.
func build(t *testing.T, b *Builder, target string) (*recordingConn, resolver.Resolver) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	cc := newRecordingConn()
	r, err := b.Build(resolver.Target{URL: *u}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return cc, r
}

// TestEmptyAnswerKeepsLastAddresses: an empty registry answer is reported as an error and
// the addresses sent before stay in force (no UpdateState with nothing in it); the next
// non-empty answer is sent even when it is the same set as before the empty one.
func TestEmptyAnswerKeepsLastAddresses(t *testing.T) {
	reg := newFakeRegistry()
	b := New(config.RegistryEtcd, reg, Options{Logger: quietLogger()})
	cc, _ := build(t, b, "etcd:///users")

	reg.Set("127.0.0.1:9002", "127.0.0.1:9001")
	cc.waitFor(t, "the first state", func(s []resolver.State, _ []error) bool { return len(s) == 1 })

	reg.Set()
	cc.waitFor(t, "an error for the empty answer", func(_ []resolver.State, e []error) bool { return len(e) == 1 })
	states, _ := cc.counts()
	if states != 1 {
		t.Fatalf("%d states after the empty answer, want the first one only", states)
	}
	if !errors.Is(cc.errs[0], errNoInstances) || !strings.Contains(cc.errs[0].Error(), "etcd:///users") {
		t.Fatalf("error %v", cc.errs[0])
	}

	reg.Set("127.0.0.1:9001", "127.0.0.1:9002")
	cc.waitFor(t, "the set again", func(s []resolver.State, _ []error) bool { return len(s) == 2 })
	for i, s := range cc.states {
		if got := addrs(s); !slices.Equal(got, []string{"127.0.0.1:9001", "127.0.0.1:9002"}) {
			t.Fatalf("state %d: %v", i, got)
		}
	}
}

// TestFirstAnswerEmpty: a registry that knows no instance yet is an error, not a state.
func TestFirstAnswerEmpty(t *testing.T) {
	reg := newFakeRegistry()
	reg.Set()
	cc, _ := build(t, New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), "etcd:///users")
	cc.waitFor(t, "an error", func(_ []resolver.State, e []error) bool { return len(e) == 1 })
	if states, _ := cc.counts(); states != 0 {
		t.Fatalf("%d states, want none", states)
	}
}

// TestResolveNowStartsNoWatch: gRPC's ResolveNow (sent on every lost connection) neither
// starts another Watch nor stops the running one, so a ZooKeeper watch registers no new
// go-zookeeper watchers per call, and the registry's next change still arrives.
func TestResolveNowStartsNoWatch(t *testing.T) {
	reg := newFakeRegistry()
	reg.Set("127.0.0.1:9001")
	cc, r := build(t, New(config.RegistryZooKeeper, reg, Options{Logger: quietLogger()}), "zookeeper:///users")
	cc.waitFor(t, "the first state", func(s []resolver.State, _ []error) bool { return len(s) == 1 })
	for range 1000 {
		r.ResolveNow(resolver.ResolveNowOptions{})
	}
	reg.Set("127.0.0.1:9001", "127.0.0.1:9002")
	cc.waitFor(t, "the change", func(s []resolver.State, _ []error) bool { return len(s) == 2 })
	if n := reg.watches.Load(); n != 1 {
		t.Fatalf("%d Watch calls after 1000 ResolveNow, want the first one only", n)
	}
	if n := reg.live.Load(); n != 1 {
		t.Fatalf("%d watches running, want 1", n)
	}
}

// TestEmptyAnswerKeepLastFor: the addresses kept after an empty answer are dropped (an
// empty state) once KeepLastFor passes, and not when a non-empty answer comes first.
func TestEmptyAnswerKeepLastFor(t *testing.T) {
	const keep = 200 * time.Millisecond
	for _, tc := range []struct {
		name      string
		refill    bool // a non-empty answer comes within keep
		wantEmpty bool
	}{
		{"stays empty", false, true},
		{"refilled in time", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newFakeRegistry()
			reg.Set("127.0.0.1:9001")
			cc, _ := build(t, New(config.RegistryEtcd, reg, Options{KeepLastFor: keep, Logger: quietLogger()}), "etcd:///users")
			cc.waitFor(t, "the first state", func(s []resolver.State, _ []error) bool { return len(s) == 1 })
			reg.Set()
			cc.waitFor(t, "the empty answer's error", func(_ []resolver.State, e []error) bool { return len(e) == 1 })
			if tc.refill {
				reg.Set("127.0.0.1:9002")
				cc.waitFor(t, "the new set", func(s []resolver.State, _ []error) bool { return len(s) == 2 })
			}
			time.Sleep(3 * keep)
			last := cc.lastState()
			if gotEmpty := len(last.Addresses) == 0; gotEmpty != tc.wantEmpty {
				t.Fatalf("last state %v; want empty %v", addrs(last), tc.wantEmpty)
			}
			if states, _ := cc.counts(); states != 2 {
				t.Fatalf("%d states, want 2", states)
			}
		})
	}
}

// TestFirstAnswerTimeout: a registry that never answers for the target (a wrong Consul dc)
// is reported as an error after FirstAnswerTimeout, and the watch goes on, so a late
// first answer is still sent.
func TestFirstAnswerTimeout(t *testing.T) {
	reg := newFakeRegistry() // nothing set: the watch never calls update
	cc, _ := build(t, New(config.RegistryEtcd, reg, Options{FirstAnswerTimeout: 50 * time.Millisecond, Logger: quietLogger()}), "etcd:///users")
	cc.waitFor(t, "an error", func(_ []resolver.State, e []error) bool { return len(e) == 1 })
	if !errors.Is(cc.errs[0], errNoAnswer) {
		t.Fatalf("error %v, want errNoAnswer", cc.errs[0])
	}
	reg.Set("127.0.0.1:9001")
	cc.waitFor(t, "the late first state", func(s []resolver.State, _ []error) bool { return len(s) == 1 })
}

// TestCloseStopsWatch: Close returns only once the Watch has returned (goleak in TestMain
// checks no goroutine is left), and a second Close is harmless.
func TestCloseStopsWatch(t *testing.T) {
	reg := newFakeRegistry()
	reg.Set("127.0.0.1:9001")
	cc, r := build(t, New(config.RegistryEtcd, reg, Options{Logger: quietLogger()}), "etcd:///users")
	cc.waitFor(t, "the first state", func(s []resolver.State, _ []error) bool { return len(s) == 1 })
	r.ResolveNow(resolver.ResolveNowOptions{})
	r.Close()
	r.Close()
	if n := reg.live.Load(); n != 0 {
		t.Fatalf("%d watches still running after Close", n)
	}
}

func TestBuildRejectsBadTarget(t *testing.T) {
	b := New(config.RegistryEtcd, newFakeRegistry(), Options{})
	u, _ := url.Parse("etcd://host/users")
	if _, err := b.Build(resolver.Target{URL: *u}, newRecordingConn(), resolver.BuildOptions{}); err == nil {
		t.Fatal("Build accepted a target with a host")
	}
}

func TestOpen(t *testing.T) {
	closed := 0
	var opener upstream.Opener = func(_ context.Context, d *config.Discovery, _ upstream.OpenOptions) (upstream.Discoverer, func(), error) {
		if d.Etcd == nil {
			return nil, func() { closed++ }, nil
		}
		return newFakeRegistry(), func() { closed++ }, nil
	}
	if _, err := Open(t.Context(), config.RegistryEtcd, opener, &config.Discovery{}, Options{}); err == nil || closed != 1 {
		t.Fatalf("Open of an unconfigured registry: err %v, closed %d", err, closed)
	}
	b, err := Open(t.Context(), config.RegistryEtcd, opener, &config.Discovery{Etcd: &config.Etcd{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Scheme() != config.RegistryEtcd {
		t.Fatalf("scheme %q", b.Scheme())
	}
	b.Close()
	b.Close()
	if closed != 2 {
		t.Fatalf("registry closed %d times in all, want 2", closed)
	}
}

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
