package jwt

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// eventually polls cond until it holds or a bound passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeySetsShareAcrossReloads: the same (url, interval, timeout) gets the same set, so a
// reload keeping the URL neither refetches nor loses keys; Prune stops the others.
func TestKeySetsShareAcrossReloads(t *testing.T) {
	rs := rsaSigner(t)
	jsA := newJWKSServer(t, jwksJSON(t, rs))
	jsB := newJWKSServer(t, jwksJSON(t, rs))
	sets := newKeySets(t)
	a := sets.Get(testConfig(jsA.URL))
	b := sets.Get(testConfig(jsB.URL))
	waitLoaded(t, a)
	waitLoaded(t, b)
	if a == b {
		t.Fatal("two URLs share a set")
	}
	// The reload: new config structs, same URL.
	if again := sets.Get(testConfig(jsA.URL)); again != a {
		t.Fatal("same URL, new set")
	}
	otherTimeout := testConfig(jsA.URL)
	otherTimeout.Timeout = time.Second
	if c := sets.Get(otherTimeout); c == a {
		t.Fatal("another timeout shares the set")
	} else {
		waitLoaded(t, c)
	}
	sets.Prune([]*KeySet{a})
	select {
	case <-b.done:
	default:
		t.Fatal("Prune left an unused set running")
	}
	select {
	case <-a.done:
		t.Fatal("Prune stopped a set in use")
	default:
	}
	if got := jsA.requests.Load(); got != 2 { // a and the other-timeout set, once each
		t.Fatalf("JWKS A fetched %d times, want 2", got)
	}
	m := mustNew(t, testConfig(jsA.URL), a)
	if d := m.Authenticate(nil, bearer(rs.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("kept set: %+v", d)
	}
	// A pruned set asked for again starts afresh.
	b2 := sets.Get(testConfig(jsB.URL))
	if b2 == b {
		t.Fatal("Get returned a pruned set")
	}
	waitLoaded(t, b2)
	if !b2.Loaded() || jsB.requests.Load() != 2 {
		t.Fatalf("restarted set: loaded %v after %d fetches", b2.Loaded(), jsB.requests.Load())
	}
}

// TestRotation: the issuer drops its old key for a new one. A token of the new key is
// admitted after the unknown-kid refresh; the old key's tokens are refused after it.
func TestRotation(t *testing.T) {
	oldKey, newKey := rsaSigner(t), rsaSigner2(t)
	js := newJWKSServer(t, jwksJSON(t, oldKey))
	sets := newKeySets(t)
	sets.unknownKeyRefreshEvery = time.Hour // the old kid below must find the limit spent
	cfg := testConfig(js.URL)
	set := sets.Get(cfg)
	m := mustNew(t, cfg, set)
	oldToken, newToken := oldKey.sign(t, validClaims()), newKey.sign(t, validClaims())
	if d := m.Authenticate(nil, bearer(oldToken), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("old key before rotation: %+v", d)
	}
	js.serve(http.StatusOK, jwksJSON(t, newKey))
	if d := m.Authenticate(nil, bearer(newToken), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("new key after rotation: %+v", d)
	}
	if got := js.requests.Load(); got != 2 {
		t.Fatalf("%d fetches, want 2 (start, unknown kid)", got)
	}
	if d := m.Authenticate(nil, bearer(oldToken), &filter.Request{}); d.Result != auth.Invalid || d.Reason != "unknown_key" {
		t.Fatalf("old key after rotation: %+v", d)
	}
	// The old kid's refusal asked for no fetch: the rate limit had just been spent.
	if got := js.requests.Load(); got != 2 {
		t.Fatalf("%d fetches, want 2", got)
	}
}

// TestUnknownKidStorm: many concurrent tokens with random kids cost the JWKS server no more
// fetches than the rate limit allows (one at start, one per period), and good tokens keep
// passing meanwhile.
func TestUnknownKidStorm(t *testing.T) {
	rs, ed := rsaSigner(t), edSigner(t)
	js := newJWKSServer(t, jwksJSON(t, rs))
	sets := newKeySets(t)
	// A period no run outlasts, so the bound below holds however loaded the machine is.
	sets.unknownKeyRefreshEvery = time.Hour
	cfg := testConfig(js.URL)
	set := sets.Get(cfg)
	m := mustNew(t, cfg, set)
	waitLoaded(t, set)
	good := rs.sign(t, validClaims())
	const workers, perWorker = 16, 25
	storm := make([][]string, workers)
	for w := range storm {
		for i := range perWorker {
			s := ed
			s.kid = fmt.Sprintf("random-%d-%d", w, i)
			storm[w] = append(storm[w], s.sign(t, validClaims()))
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for w := range workers {
		wg.Go(func() {
			for _, token := range storm[w] {
				d := m.Authenticate(nil, bearer(token), &filter.Request{})
				mu.Lock()
				results[d.Reason]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if results["unknown_key"] != workers*perWorker {
		t.Fatalf("reasons %v, want every token unknown_key", results)
	}
	if got := js.requests.Load(); got != 2 {
		t.Fatalf("storm of %d random kids made %d fetches, want 2 (start, one refresh)", workers*perWorker, got)
	}
	if d := m.Authenticate(nil, bearer(good), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("good token after the storm: %+v", d)
	}
}

// TestLastGoodKeysKept: a JWKS that goes wrong in any way leaves the last good keys in use.
func TestLastGoodKeysKept(t *testing.T) {
	rs := rsaSigner(t)
	good := jwksJSON(t, rs)
	for _, tc := range []struct {
		name      string
		breakJWKS func(js *jwksServer) (restore func())
	}{
		{"server error", func(js *jwksServer) func() {
			js.serve(http.StatusInternalServerError, good)
			return func() {}
		}},
		{"not found", func(js *jwksServer) func() { js.serve(http.StatusNotFound, nil); return func() {} }},
		{"garbage", func(js *jwksServer) func() { js.serve(http.StatusOK, []byte("<html>oops")); return func() {} }},
		{"empty object", func(js *jwksServer) func() { js.serve(http.StatusOK, []byte("{}")); return func() {} }},
		{"no keys", func(js *jwksServer) func() { js.serve(http.StatusOK, []byte(`{"keys":[]}`)); return func() {} }},
		{"only unusable keys", func(js *jwksServer) func() {
			js.serve(http.StatusOK, []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},{"kty":"RSA","kid":"x","n":"AQ","e":"zz"}]}`))
			return func() {}
		}},
		{"oversized", func(js *jwksServer) func() {
			// A good key set, padded past the bound: refused for its size alone.
			js.serve(http.StatusOK, []byte(`{"pad":"`+strings.Repeat("x", maxJWKSBytes)+`",`+string(good[1:])))
			return func() {}
		}},
		{"gzip bomb", func(js *jwksServer) func() {
			// 8 MiB of JSON in a few KiB: the bound applies to what is decompressed.
			var zipped bytes.Buffer
			zw := gzip.NewWriter(&zipped)
			_, _ = zw.Write([]byte(`{"pad":"`))
			_, _ = zw.Write(bytes.Repeat([]byte("x"), 8*maxJWKSBytes))
			_, _ = zw.Write([]byte(`",`))
			_, _ = zw.Write(good[1:])
			_ = zw.Close()
			js.mu.Lock()
			js.status, js.body, js.encoding = http.StatusOK, zipped.Bytes(), "gzip"
			js.mu.Unlock()
			return func() {}
		}},
		{"slow", func(js *jwksServer) func() { return js.hold() }},
		{"down", func(js *jwksServer) func() { js.Close(); return func() {} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := newJWKSServer(t, good)
			reg := prometheus.NewRegistry()
			sets := NewKeySets(context.Background(), nil, reg)
			defer sets.Close()
			// A short timeout bounds the slow case; should the first fetch miss it on a
			// loaded machine, a quick retry loads the keys.
			sets.firstRetry = 10 * time.Millisecond
			cfg := testConfig(js.URL)
			cfg.Timeout = 200 * time.Millisecond
			set := sets.Get(cfg)
			m := mustNew(t, cfg, set)
			eventually(t, "the keys to load", set.Loaded)
			okBefore := testutil.ToFloat64(sets.metrics.refreshes.WithLabelValues("ok"))
			failedBefore := testutil.ToFloat64(sets.metrics.refreshes.WithLabelValues("failed"))
			restore := tc.breakJWKS(js)
			defer restore()
			if set.refresh() {
				t.Fatal("refresh succeeded against a broken JWKS")
			}
			if d := m.Authenticate(nil, bearer(rs.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Admitted {
				t.Fatalf("last good key: %+v", d)
			}
			ok := testutil.ToFloat64(sets.metrics.refreshes.WithLabelValues("ok"))
			failed := testutil.ToFloat64(sets.metrics.refreshes.WithLabelValues("failed"))
			if ok != okBefore || failed != failedBefore+1 {
				t.Fatalf("refreshes ok=%v failed=%v, want %v and %v", ok, failed, okBefore, failedBefore+1)
			}
			if keys := testutil.ToFloat64(sets.metrics.loaded.WithLabelValues(redactURL(js.URL))); keys != 1 {
				t.Fatalf("keys gauge %v, want 1", keys)
			}
		})
	}
}

// TestBackgroundRefresh: keys change without any token asking, every refresh interval.
func TestBackgroundRefresh(t *testing.T) {
	rs, rs2 := rsaSigner(t), rsaSigner2(t)
	js := newJWKSServer(t, jwksJSON(t, rs))
	sets := newKeySets(t)
	cfg := testConfig(js.URL)
	cfg.RefreshInterval = 20 * time.Millisecond
	set := sets.Get(cfg)
	waitLoaded(t, set)
	js.serve(http.StatusOK, jwksJSON(t, rs, rs2))
	eventually(t, "the background refresh to load two keys", func() bool { return set.current.Load().keys == 2 })
}

// TestRetryAfterFailedStart: a JWKS down at start is retried well before the refresh
// interval, and tokens pass once it answers.
func TestRetryAfterFailedStart(t *testing.T) {
	rs := rsaSigner(t)
	js := newJWKSServer(t, nil)
	js.serve(http.StatusServiceUnavailable, nil)
	sets := newKeySets(t)
	sets.firstRetry = 10 * time.Millisecond
	cfg := testConfig(js.URL) // refresh interval 10 minutes
	set := sets.Get(cfg)
	waitLoaded(t, set)
	if set.Loaded() {
		t.Fatal("loaded from a failing JWKS")
	}
	js.serve(http.StatusOK, jwksJSON(t, rs))
	eventually(t, "a retry to load the keys", set.Loaded)
	m := mustNew(t, cfg, set)
	if d := m.Authenticate(nil, bearer(rs.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("after the retry: %+v", d)
	}
}

func TestNextWait(t *testing.T) {
	s := &KeySet{refreshInterval: 10 * time.Second, firstRetry: time.Second}
	backoff := s.firstRetry
	var got []time.Duration
	for _, ok := range []bool{false, false, false, false, false, false, true, false} {
		got = append(got, s.nextWait(ok, &backoff))
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10, 1}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("waits %v, want %v seconds", got, want)
		}
	}
}

// TestCloseStopsAFetchInFlight: Close returns while the JWKS server holds a fetch, and
// requests waiting on an unknown-kid refresh are released.
func TestCloseStopsAFetchInFlight(t *testing.T) {
	rs := rsaSigner(t)
	js := newJWKSServer(t, jwksJSON(t, rs))
	sets := NewKeySets(context.Background(), nil, nil)
	cfg := testConfig(js.URL)
	set := sets.Get(cfg)
	m := mustNew(t, cfg, set)
	waitLoaded(t, set)
	release := js.hold()
	defer release()
	unknown := rs
	unknown.kid = "unknown"
	token := unknown.sign(t, validClaims())
	done := make(chan auth.Decision)
	go func() { done <- m.Authenticate(nil, bearer(token), &filter.Request{}) }()
	eventually(t, "the unknown-kid fetch to start", func() bool { return js.requests.Load() == 2 })
	sets.Close()
	if d := <-done; d.Result != auth.Invalid || d.Reason != "unknown_key" {
		t.Fatalf("waiting request: %+v", d)
	}
	// After Close, Get hands out a set that never loads and starts nothing.
	late := sets.Get(testConfig(js.URL + "/late"))
	if late.Loaded() {
		t.Fatal("a set after Close loaded")
	}
	if d := mustNew(t, cfg, late).Authenticate(nil, bearer(rs.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Unavailable {
		t.Fatalf("set after Close: %+v", d)
	}
}

// TestUnknownKidRefreshBounded: a token with an unknown kid waits for the refresh no longer
// than the fetch timeout when the JWKS is slow, and the last good keys stay.
func TestUnknownKidRefreshBounded(t *testing.T) {
	rs := rsaSigner(t)
	js := newJWKSServer(t, jwksJSON(t, rs))
	sets := newKeySets(t)
	cfg := testConfig(js.URL)
	cfg.Timeout = 100 * time.Millisecond
	sets.firstRetry = 10 * time.Millisecond // should the first fetch miss the short timeout
	set := sets.Get(cfg)
	m := mustNew(t, cfg, set)
	eventually(t, "the keys to load", set.Loaded)
	release := js.hold()
	defer release()
	unknown := rs
	unknown.kid = "rotated-in"
	if d := m.Authenticate(nil, bearer(unknown.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Invalid || d.Reason != "unknown_key" {
		t.Fatalf("unknown kid against a slow JWKS: %+v", d)
	}
	if d := m.Authenticate(nil, bearer(rs.sign(t, validClaims())), &filter.Request{}); d.Result != auth.Admitted {
		t.Fatalf("known kid after the slow refresh: %+v", d)
	}
}

// TestReloadsWhileServing: tables rebuilt (Get), swapped (Prune) and served (Authenticate)
// at once, as the gateway does; run with -race. Requests holding a pruned set keep its last
// keys.
func TestReloadsWhileServing(t *testing.T) {
	rs := rsaSigner(t)
	js := newJWKSServer(t, jwksJSON(t, rs))
	sets := newKeySets(t)
	token := rs.sign(t, validClaims())
	first := sets.Get(testConfig(js.URL))
	waitLoaded(t, first)
	stop := make(chan struct{})
	m := mustNew(t, testConfig(js.URL), first)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d := m.Authenticate(nil, bearer(token), &filter.Request{}); d.Result != auth.Admitted {
					t.Errorf("while reloading: %+v", d)
					return
				}
			}
		})
	}
	for i := range 50 {
		// Odd reloads move the route to another refresh interval (a new set), even ones
		// back: each swap prunes the set the previous table used.
		cfg := testConfig(js.URL)
		cfg.RefreshInterval = time.Duration(10+i%2) * time.Minute
		set := sets.Get(cfg)
		sets.Prune([]*KeySet{set, first})
	}
	close(stop)
	wg.Wait()
	if got := js.requests.Load(); got > 51 {
		t.Fatalf("%d fetches for 50 reloads", got)
	}
}

// TestGetDefaults: a config without refresh_interval or timeout gets the loader's defaults
// (10m, 5s), sharing the set of a config that spells them out.
func TestGetDefaults(t *testing.T) {
	js := newJWKSServer(t, jwksJSON(t, rsaSigner(t)))
	sets := newKeySets(t)
	bare := sets.Get(&config.JWTAuth{JWKSURL: js.URL})
	if bare != sets.Get(testConfig(js.URL)) {
		t.Fatal("zero interval and timeout did not default to 10m and 5s")
	}
	if bare.refreshInterval != 10*time.Minute || bare.timeout != 5*time.Second || bare.URL() != js.URL {
		t.Fatalf("set: interval %s, timeout %s, url %q", bare.refreshInterval, bare.timeout, bare.URL())
	}
	if m := mustNew(t, testConfig(js.URL), bare); m.KeySet() != bare {
		t.Fatal("KeySet() is not the set the mechanism was built with")
	}
}

// TestStoppedSetNeverBlocksUnknownKid: once a set is stopped, an unknown-kid refresh is
// refused at once. The hard case is a kick left buffered as run returned (run stopped while
// a fetch was in flight and then chose ctx.Done over the kick): sending another kick would
// block forever, holding s.mu, and with it every later unknown-kid request.
func TestStoppedSetNeverBlocksUnknownKid(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, sets *KeySets, js *jwksServer) *KeySet
	}{
		{"stopped with a kick left buffered", func(t *testing.T, sets *KeySets, js *jwksServer) *KeySet {
			// The state run leaves when it returns without taking the kick, built directly
			// since which ready case select takes is random.
			s := newKeySet(sets, keySetID{url: js.URL, refreshInterval: time.Minute, timeout: time.Second})
			s.kick <- struct{}{}
			s.cancel()
			close(s.done)
			close(s.firstAttempt)
			return s
		}},
		{"pruned while fetching", func(t *testing.T, sets *KeySets, js *jwksServer) *KeySet {
			release := js.hold()
			t.Cleanup(release)
			s := sets.Get(testConfig(js.URL))
			eventually(t, "the first fetch to reach the JWKS", func() bool { return js.requests.Load() >= 1 })
			waiting := make(chan bool, 1)
			go func() { waiting <- s.refreshForUnknownKey(context.Background()) }()
			eventually(t, "the kick to be buffered", func() bool { return len(s.kick) == 1 })
			sets.Prune(nil)
			select {
			case <-waiting:
			case <-time.After(5 * time.Second):
				t.Fatal("the request waiting for the refresh outlived the set")
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := newJWKSServer(t, jwksJSON(t, rsaSigner(t)))
			sets := newKeySets(t)
			sets.unknownKeyRefreshEvery = time.Nanosecond // the limiter never stands in the way
			set := tc.stop(t, sets, js)
			for i := range 3 {
				result := make(chan bool, 1)
				go func() { result <- set.refreshForUnknownKey(context.Background()) }()
				select {
				case refreshed := <-result:
					if refreshed {
						t.Fatalf("request %d: a stopped set reported a refresh", i)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("request %d: blocked on a stopped set", i)
				}
			}
		})
	}
}
