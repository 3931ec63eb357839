package lb

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// TestLeastTimeAvoidsFailingMember: a member whose attempts all fail without a response
// (resets, refusals) gets few first attempts under least_time, because each failure counts
// as a latency penalty; before failures counted, it stayed unmeasured and idle, cost 0, and
// won every pair it was drawn into (about 2/n of the picks, 50% here). Round robin is the
// control: it gives the failing member its 1/n regardless. No health layer sets the
// member aside here (fakeHealth stays up), as with passive health disabled.
func TestLeastTimeAvoidsFailingMember(t *testing.T) {
	const (
		members = 4
		picks   = 2000
	)
	for _, tc := range []struct {
		name     string
		builder  upstream.PickerBuilder
		minShare float64
		maxShare float64
	}{
		{"least_time", LeastTime{}, 0, 0.10},
		{"round_robin", RoundRobin{}, 0.24, 0.26},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, _ := makeMeasuredMembers(equalWeights(members)...)
			p := tc.builder.Build(ms)
			failing := 0
			for range picks {
				m, err := p.Pick(nil, upstream.Excluded{})
				if err != nil {
					t.Fatal(err)
				}
				if indexOf(t, ms, m) == 0 { // member 0 resets every connection
					failing++
					m.State.Done(upstream.Outcome{Err: upstream.ErrReset, Latency: 200 * time.Microsecond})
				} else {
					m.State.Done(upstream.Outcome{Status: 200, Latency: 2 * time.Millisecond})
				}
			}
			share := float64(failing) / picks
			t.Logf("failing member's share %.3f", share)
			if share < tc.minShare || share > tc.maxShare {
				t.Fatalf("failing member got %.3f of %d picks, want between %.2f and %.2f", share, picks, tc.minShare, tc.maxShare)
			}
			requireDrained(t, statesOf(ms))
		})
	}
}
