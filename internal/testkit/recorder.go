// Package testkit holds helpers shared by the tests of several packages: a recorder of the
// snapshots a discoverer emits and a log sink safe for concurrent writes. It is imported only
// by tests.
package testkit

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// DefaultWait bounds every Recorder wait. It only detects a hang: behaviour, not speed, is
// under test, and anything tighter is flaky on a loaded 2-core machine.
const DefaultWait = 20 * time.Second

// Recorder collects every snapshot a Watch emits; pass its Update as the update func.
type Recorder struct {
	// Wait bounds WaitFor and WaitKeys; zero means DefaultWait.
	Wait time.Duration

	mu    sync.Mutex
	snaps []upstream.Snapshot
	wake  chan struct{} // closed and replaced on every snapshot
}

// Update records s. It is the update func given to Discoverer.Watch.
func (r *Recorder) Update(s upstream.Snapshot) {
	r.mu.Lock()
	r.snaps = append(r.snaps, s)
	if r.wake != nil {
		close(r.wake)
	}
	r.wake = make(chan struct{})
	r.mu.Unlock()
}

// Count is the number of snapshots recorded so far.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

// All returns a copy of every snapshot recorded so far, oldest first.
func (r *Recorder) All() []upstream.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.snaps)
}

// AllKeys returns the endpoint keys of every snapshot recorded so far, oldest first.
func (r *Recorder) AllKeys() [][]string {
	all := r.All()
	out := make([][]string, len(all))
	for i, s := range all {
		out[i] = Keys(s)
	}
	return out
}

// Latest returns the last snapshot, and false when there is none yet.
func (r *Recorder) Latest() (upstream.Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return upstream.Snapshot{}, false
	}
	return r.snaps[len(r.snaps)-1], true
}

// LatestKeys lists the endpoint keys of the last snapshot (empty when there is none).
func (r *Recorder) LatestKeys() []string {
	s, _ := r.Latest()
	return Keys(s)
}

// WaitFor waits for the first snapshot, numbered from `from`, that satisfies ok and returns
// its number; what names the condition in the failure message.
func (r *Recorder) WaitFor(t testing.TB, from int, what string, ok func(upstream.Snapshot) bool) int {
	t.Helper()
	wait := r.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for i := from; ; {
		r.mu.Lock()
		for ; i < len(r.snaps); i++ {
			if ok(r.snaps[i]) {
				r.mu.Unlock()
				return i
			}
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			last, _ := r.Latest()
			t.Fatalf("no snapshot with %s after %v; last: %v", what, wait, Keys(last))
		}
	}
}

// WaitKeys waits until the latest snapshot holds exactly want (endpoint keys, sorted) and
// returns it. Unlike WaitFor it looks only at the latest, so a state that was passed through
// does not count.
func (r *Recorder) WaitKeys(t testing.TB, want ...string) upstream.Snapshot {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	wait := r.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		var last upstream.Snapshot
		ok := len(r.snaps) > 0
		if ok {
			last = r.snaps[len(r.snaps)-1]
		}
		r.mu.Unlock()
		if ok && slices.Equal(Keys(last), want) {
			return last
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("snapshot keys %v after %v, want %v", Keys(last), wait, want)
		}
	}
}

// Keys lists a snapshot's endpoint keys in order; never nil, so it compares equal to
// []string{} for an empty snapshot.
func Keys(s upstream.Snapshot) []string {
	out := []string{}
	for _, e := range s.Endpoints() {
		out = append(out, e.Key)
	}
	return out
}

// HasKeys returns a WaitFor condition: the snapshot holds exactly these keys (sorted).
func HasKeys(want ...string) func(upstream.Snapshot) bool {
	if want == nil {
		want = []string{}
	}
	return func(s upstream.Snapshot) bool { return slices.Equal(Keys(s), want) }
}

// SyncBuffer is an io.Writer safe for concurrent writes, for capturing logs written by
// goroutines the test does not own.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// HealthStub gives a test fake of upstream.Health the methods that run off the request path
// (Key, CheckResult, Status), so the fake scripts only Available, Admit and Report: embed it.
// EndpointKey is what Key returns.
type HealthStub struct{ EndpointKey string }

// Key implements upstream.Health.
func (s HealthStub) Key() string { return s.EndpointKey }

// CheckResult implements upstream.Health: active checks never fail a stub.
func (HealthStub) CheckResult(bool, int, int) (failing, changed bool) { return false, false }

// Status implements upstream.Health.
func (HealthStub) Status() upstream.HealthStatus { return upstream.HealthStatus{} }
