package basic

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/filter/auth"
)

func TestCacheSkipsBcrypt(t *testing.T) {
	cfg := testConfig(t)
	cfg.Allow = []string{"alice"}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c counting
	c.wrap(m, nil)
	steps := []struct {
		user, password string
		want           auth.Result
		compares       int64 // total so far
	}{
		{"alice", "wonderland", auth.Admitted, 1},
		{"alice", "wonderland", auth.Admitted, 1}, // cached
		{"alice", "wonderland", auth.Admitted, 1},
		{"alice", "wrong", auth.Invalid, 2}, // failures are never cached
		{"alice", "wrong", auth.Invalid, 3},
		{"mallory", "wonderland", auth.Invalid, 4}, // nor unknown users
		{"mallory", "wonderland", auth.Invalid, 5},
		{"bob", "builder:can we fix it", auth.Forbidden, 6}, // a verified password is cached...
		{"bob", "builder:can we fix it", auth.Forbidden, 6}, // ...and allow still applies
		{"alice", "wonderland", auth.Admitted, 6},
	}
	for i, s := range steps {
		d := m.Authenticate(nil, request(basicHeader(s.user, s.password)), nil)
		if d.Result != s.want {
			t.Fatalf("step %d (%s): %+v, want result %v", i, s.user, d, s.want)
		}
		if got := c.calls.Load(); got != s.compares {
			t.Fatalf("step %d (%s): %d compares so far, want %d", i, s.user, got, s.compares)
		}
	}
}

func TestCacheBoundToStoredHash(t *testing.T) {
	cfg := testConfig(t)
	old, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := old.Authenticate(nil, request(basicHeader("alice", "wonderland")), nil); d.Result != auth.Admitted {
		t.Fatalf("old password: %+v", d)
	}
	// alice changes her password; the new mechanism shares the old cache (and HMAC key),
	// as one whose entries outlived a reload would.
	cfg.Users["alice"] = mustHash(t, "looking-glass", bcrypt.MinCost)
	changed, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	changed.cache, changed.scratch.New = old.cache, old.scratch.New
	var c counting
	c.wrap(changed, nil)
	if d := changed.Authenticate(nil, request(basicHeader("alice", "wonderland")), nil); d.Result != auth.Invalid {
		t.Errorf("old password after the change: %+v, want invalid", d)
	}
	if c.calls.Load() != 1 {
		t.Errorf("the stale entry answered without bcrypt (%d compares)", c.calls.Load())
	}
	if d := changed.Authenticate(nil, request(basicHeader("alice", "looking-glass")), nil); d.Result != auth.Admitted {
		t.Errorf("new password: %+v", d)
	}
}

func TestCacheExpires(t *testing.T) {
	m, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.cache.now = func() time.Time { return now }
	var c counting
	c.wrap(m, nil)
	alice := request(basicHeader("alice", "wonderland"))
	for i, step := range []struct {
		advance  time.Duration
		compares int64
	}{
		{0, 1},
		{5*time.Minute - time.Nanosecond, 1}, // still fresh
		{time.Nanosecond, 2},                 // expired at exactly ttl: checked again, cached anew
		{time.Minute, 2},
	} {
		now = now.Add(step.advance)
		if d := m.Authenticate(nil, alice, nil); d.Result != auth.Admitted {
			t.Fatalf("step %d: %+v", i, d)
		}
		if got := c.calls.Load(); got != step.compares {
			t.Errorf("step %d: %d compares, want %d", i, got, step.compares)
		}
	}
}

func TestCacheBounded(t *testing.T) {
	c := newVerifiedCache(8, time.Minute)
	for i := range 100 {
		c.add(cacheKey{byte(i)}, "u", []byte("h"))
	}
	if n := c.entries.Len(); n != 8 {
		t.Errorf("%d entries, want the bound 8", n)
	}
	if name, ok := c.has(cacheKey{99}, []byte("h")); !ok || name != "u" {
		t.Errorf("the newest entry: %q, %v; want u, true", name, ok)
	}
	if _, ok := c.has(cacheKey{0}, []byte("h")); ok {
		t.Error("the oldest entry is kept")
	}
	if _, ok := c.has(cacheKey{98}, []byte("other hash")); ok {
		t.Error("an entry for another hash counted")
	}
	if _, ok := c.has(cacheKey{98}, []byte("h")); ok {
		t.Error("an entry was kept after failing to match")
	}
}

// TestFlood sends 200 concurrent wrong passwords through two bcrypt slots. While every slot
// is held, a cached user is still admitted (no bcrypt needed) and an uncached one is told
// busy; at no time do more than two comparisons run.
func TestFlood(t *testing.T) {
	const slots, flood = 2, 200
	m, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	m.slots = make(compareSlots, slots)
	m.wait = 20 * time.Millisecond
	if d := m.Authenticate(nil, request(basicHeader("alice", "wonderland")), nil); d.Result != auth.Admitted {
		t.Fatalf("warming alice: %+v", d)
	}

	// The first comparisons to start hold their slots until the checks below are done.
	hold := make(chan struct{})
	held := make(chan struct{}, slots)
	var c counting
	c.wrap(m, func() {
		select {
		case held <- struct{}{}:
			<-hold
		default:
		}
	})

	results := make(chan auth.Decision, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			results <- m.Authenticate(nil, request(basicHeader("alice", "guess"+strconv.Itoa(i))), nil)
		})
	}
	for range slots {
		<-held
	}
	if d := m.Authenticate(nil, request(basicHeader("alice", "wonderland")), nil); d.Result != auth.Admitted {
		t.Errorf("cached user during the flood: %+v, want admitted", d)
	}
	if d := m.Authenticate(nil, request(basicHeader("bob", "builder:can we fix it")), nil); d != (auth.Decision{Result: auth.Unavailable, Reason: "busy"}) {
		t.Errorf("uncached user while every slot is held: %+v, want unavailable/busy", d)
	}
	close(hold)
	wg.Wait()
	close(results)

	count := map[auth.Decision]int{}
	for d := range results {
		count[d]++
	}
	invalid := count[auth.Decision{Result: auth.Invalid, Reason: "invalid"}]
	busy := count[auth.Decision{Result: auth.Unavailable, Reason: "busy"}]
	if invalid+busy != flood || invalid < slots {
		t.Errorf("flood decisions %v: want only invalid (at least %d) and busy", count, slots)
	}
	if peak := c.maxRunning.Load(); peak > slots {
		t.Errorf("%d bcrypt comparisons ran at once, want at most %d", peak, slots)
	}
	if got := c.calls.Load(); got != int64(invalid) {
		t.Errorf("%d comparisons for %d wrong passwords checked", got, invalid)
	}
	if len(m.slots) != 0 {
		t.Errorf("%d slots still taken after the flood", len(m.slots))
	}
}

// TestConcurrentChecksCoalesce sends one user's right password from many requests at once
// while the first comparison is held: every request is admitted on that one comparison,
// by waiting for it or by finding its cache entry, whatever the scheduling.
func TestConcurrentChecksCoalesce(t *testing.T) {
	const requests = 50
	m, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	held := make(chan struct{}, 1)
	var c counting
	c.wrap(m, func() {
		select {
		case held <- struct{}{}:
			<-hold
		default:
		}
	})
	results := make(chan auth.Decision, requests)
	var wg sync.WaitGroup
	for range requests {
		wg.Go(func() {
			results <- m.Authenticate(nil, request(basicHeader("bob", "builder:can we fix it")), nil)
		})
	}
	<-held
	// Give the other requests time to reach the comparison in flight; if they do not,
	// they find the cache entry instead, and the counts below hold all the same.
	time.Sleep(20 * time.Millisecond)
	close(hold)
	wg.Wait()
	close(results)
	for d := range results {
		if d.Result != auth.Admitted {
			t.Errorf("decision %+v, want admitted", d)
		}
	}
	if got := c.calls.Load(); got != 1 {
		t.Errorf("%d comparisons for one user's concurrent requests, want 1", got)
	}
}

func TestWaiterLeavesWhenContextEnds(t *testing.T) {
	var f checksInFlight
	release := make(chan struct{})
	started := make(chan struct{})
	leader := make(chan verdict)
	go func() {
		leader <- f.do(context.Background(), cacheKey{1}, func() verdict {
			close(started)
			<-release
			return matched
		})
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v := f.do(ctx, cacheKey{1}, func() verdict { t.Error("a second comparison ran"); return matched }); v != busy {
		t.Errorf("waiter with an ended context got %v, want busy", v)
	}
	close(release)
	if v := <-leader; v != matched {
		t.Errorf("leader got %v", v)
	}
	if len(f.checks) != 0 {
		t.Errorf("%d checks left in flight", len(f.checks))
	}
}

// TestSlotsSharedByProcess: every mechanism (every route, old and new config) draws from
// one set of GOMAXPROCS slots, so together they never run more comparisons than cores.
func TestSlotsSharedByProcess(t *testing.T) {
	a, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.slots != processSlots || b.slots != processSlots {
		t.Error("a mechanism has slots of its own")
	}
	if cap(processSlots) != runtime.GOMAXPROCS(0) {
		t.Errorf("%d slots, want GOMAXPROCS %d", cap(processSlots), runtime.GOMAXPROCS(0))
	}
}
