//go:build linux

package apikey

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testkit"
)

// TestLookupTimingIndependentOfPrefix checks that a guess sharing all but the last byte of
// a real key is refused at the same cost as one sharing nothing: a byte-by-byte comparison
// would cost more for the near miss. The samples are the thread's CPU time (the goroutine
// is locked to its thread), the two kinds interleaved and only medians compared, with a
// bound (1.5x) that noise does not reach. With 4 KiB keys a comparison that walks the key
// byte by byte costs about as much as the hash and fails it; a vectorized memcmp's early
// exit is too small for any timing test, which is why the lookup's design (hash first,
// see the package doc) and TestAuthenticate's structural cases carry that guarantee.
func TestLookupTimingIndependentOfPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("timing samples")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	long := strings.Repeat("k", 4096) // long keys make any prefix-dependent work visible
	cfg := &config.APIKeyAuth{Header: "X-Api-Key", Keys: []config.APIKey{entry("long", long)}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nearMiss := long[:len(long)-1] + "x"
	farMiss := "x" + long[1:]
	const samples, perSample = 51, 200
	var near, far []time.Duration
	measure := func(guess string) time.Duration {
		start := testkit.ThreadCPUTime(t)
		for range perSample {
			if m.lookup(guess) != nil {
				t.Fatal("a wrong key was found")
			}
		}
		return testkit.ThreadCPUTime(t) - start
	}
	for range samples {
		near = append(near, measure(nearMiss))
		far = append(far, measure(farMiss))
	}
	mn, mf := testkit.MedianDuration(near), testkit.MedianDuration(far)
	t.Logf("median CPU time of %d lookups: near miss %v, far miss %v", perSample, mn, mf)
	if ratio := float64(mn) / float64(mf); ratio > 1.5 || ratio < 1/1.5 {
		t.Errorf("median near miss %v, far miss %v: ratio %.2f, want about 1", mn, mf, ratio)
	}
}
