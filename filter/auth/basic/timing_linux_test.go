//go:build linux

package basic

import (
	"net/http"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/filter/auth"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID, which package syscall does not
// name.
const clockThreadCPUTime = 3

// threadCPUTime is the CPU time the calling thread has used, to the nanosecond. Unlike the
// wall clock it does not advance while other processes hold the CPU, so timing samples
// taken with it stay comparable on a loaded machine (getrusage's thread times only move
// by scheduler ticks, too coarse here).
func threadCPUTime(t *testing.T) time.Duration {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	return time.Duration(ts.Nano())
}

// TestUnknownUserTiming: a wrong password for a real user and any password for a user that
// does not exist cost the same, one bcrypt comparison at the same cost. The samples are
// the thread's CPU time (bcrypt runs on the calling goroutine, locked to its thread), the
// two kinds interleaved and only their medians compared, with a bound (1.5x) that noise
// does not reach; answering unknown users without a comparison makes them hundreds of
// times cheaper.
func TestUnknownUserTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing samples")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg := testConfig(t)
	cfg.Users = map[string][]byte{"alice": mustHash(t, "wonderland", bcrypt.MinCost+1)}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	known := request(basicHeader("alice", "wrong"))
	unknown := request(basicHeader("mallory", "wrong"))
	measure := func(r *http.Request) time.Duration {
		start := threadCPUTime(t)
		for range 2 {
			if d := m.Authenticate(nil, r, nil); d.Result != auth.Invalid {
				t.Fatalf("decision %+v", d)
			}
		}
		return threadCPUTime(t) - start
	}
	const samples = 15
	var knownTimes, unknownTimes []time.Duration
	for range samples {
		knownTimes = append(knownTimes, measure(known))
		unknownTimes = append(unknownTimes, measure(unknown))
	}
	mk, mu := median(knownTimes), median(unknownTimes)
	t.Logf("median CPU time of 2 checks: wrong password %v, unknown user %v", mk, mu)
	if ratio := float64(mu) / float64(mk); ratio > 1.5 || ratio < 1/1.5 {
		t.Errorf("median wrong password %v, unknown user %v: ratio %.2f, want about 1", mk, mu, ratio)
	}
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
