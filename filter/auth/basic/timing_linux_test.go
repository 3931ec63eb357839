//go:build linux

package basic

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/filter/auth"
	"github.com/switchyard/switchyard/internal/testkit"
)

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
		start := testkit.ThreadCPUTime(t)
		for range 2 {
			if d := m.Authenticate(nil, r, nil); d.Result != auth.Invalid {
				t.Fatalf("decision %+v", d)
			}
		}
		return testkit.ThreadCPUTime(t) - start
	}
	const samples = 15
	var knownTimes, unknownTimes []time.Duration
	for range samples {
		knownTimes = append(knownTimes, measure(known))
		unknownTimes = append(unknownTimes, measure(unknown))
	}
	mk, mu := testkit.MedianDuration(knownTimes), testkit.MedianDuration(unknownTimes)
	t.Logf("median CPU time of 2 checks: wrong password %v, unknown user %v", mk, mu)
	if ratio := float64(mu) / float64(mk); ratio > 1.5 || ratio < 1/1.5 {
		t.Errorf("median wrong password %v, unknown user %v: ratio %.2f, want about 1", mk, mu, ratio)
	}
}
