package lb

import (
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/upstream"
)

// pickSequence makes n picks, ending each at once, and returns the member indices.
func pickSequence(t *testing.T, p upstream.Picker, ms []upstream.Member, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		m, err := p.Pick(nil, upstream.Excluded{})
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		out[i] = indexOf(t, ms, m)
		m.State.Done(upstream.Outcome{Status: 200})
	}
	return out
}

// TestSmoothWRRSequence checks the exact nginx sequences, GCD reduction included.
func TestSmoothWRRSequence(t *testing.T) {
	tests := []struct {
		weights []int
		want    string // one period; letters name members in key order
	}{
		{[]int{5, 1, 1}, "aabacaa"},
		{[]int{10, 2, 2}, "aabacaa"}, // reduced by the GCD to 5,1,1
		{[]int{2, 1}, "aba"},
		{[]int{1, 2}, "bab"},
		{[]int{4, 3, 2}, "abcabacba"},
		{[]int{1, 1, 1}, "abc"}, // equal weights: plain round robin in key order
		{[]int{7}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			ms, _ := makeMembers(tt.weights...)
			drainAfter(t, ms)
			seq := pickSequence(t, Weighted{}.Build(ms), ms, 3*len(tt.want))
			var b strings.Builder
			for _, i := range seq {
				b.WriteByte(byte('a' + i))
			}
			if got, want := b.String(), strings.Repeat(tt.want, 3); got != want {
				t.Fatalf("weights %v: sequence %q, want %q", tt.weights, got, want)
			}
		})
	}
}

// nginxSWRR is the reference: nginx's ngx_http_upstream_get_peer, step by step, on the
// unreduced weights.
func nginxSWRR(weights []int, n int) []int {
	cur := make([]int, len(weights))
	total := 0
	for _, w := range weights {
		total += w
	}
	out := make([]int, n)
	for s := range out {
		best := -1
		for i, w := range weights {
			cur[i] += w
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out[s] = best
	}
	return out
}

// TestSmoothWRRMatchesNginx compares the precomputed schedule with the reference for random
// weight sets over several periods.
func TestSmoothWRRMatchesNginx(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		weights := make([]int, 1+r.IntN(12))
		total := 0
		for i := range weights {
			weights[i] = 1 + r.IntN(20)
			total += weights[i]
		}
		ms, _ := makeMembers(weights...)
		got := pickSequence(t, Weighted{}.Build(ms), ms, 3*total)
		want := nginxSWRR(weights, 3*total)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("trial %d, weights %v: pick %d is member %d, nginx picks %d", trial, weights, i, got[i], want[i])
			}
		}
		requireDrained(t, statesOf(ms))
	}
}

// TestInterleavedExactAndSmooth checks the table-free weighted picker: every window of one
// period, wherever it starts, holds each member exactly weight times, and a member's picks
// are spread through the period rather than bunched.
func TestInterleavedExactAndSmooth(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"skewed", []int{1000, 1, 1, 1, 3, 1, 1, 1}},
		{"ramp", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}},
		{"primes", []int{97, 89, 83, 79, 73}},
		{"gcd", []int{600, 300, 900, 1200}}, // reduces to 2,1,3,4
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, _ := makeMembers(tt.weights...)
			drainAfter(t, ms)
			p, ok := Weighted{MaxSchedule: 8}.Build(ms).(*interleavePicker)
			if !ok {
				t.Fatalf("Build did not choose the interleaved picker")
			}
			period := int(p.period)
			seq := pickSequence(t, p, ms, 3*period)
			g := 0
			for _, w := range tt.weights {
				g = int(gcd(uint64(g), uint64(w)))
			}
			for _, start := range []int{0, 1, period / 3, period + 7} {
				counts := make([]int, len(ms))
				for _, i := range seq[start : start+period] {
					counts[i]++
				}
				for i, w := range tt.weights {
					if counts[i] != w/g {
						t.Fatalf("window from %d: member %d picked %d times, want %d", start, i, counts[i], w/g)
					}
				}
			}
			// Smoothness: no gap between two picks of a member is more than three times
			// its fair spacing (bunching would leave gaps near a whole period).
			last := make([]int, len(ms))
			for i := range last {
				last[i] = -1
			}
			for s, i := range seq {
				if last[i] >= 0 {
					fair := float64(period) / float64(tt.weights[i]/g)
					if gap := float64(s - last[i]); gap > 3*fair+1 {
						t.Fatalf("member %d (weight %d): gap %v between picks, fair spacing %.1f", i, tt.weights[i]/g, gap, fair)
					}
				}
				last[i] = s
			}
		})
	}
}

// TestInterleavedOwner compares the bucketed owner search with a linear one at every
// position of a period, including pools where one bucket spans many members.
func TestInterleavedOwner(t *testing.T) {
	for _, weights := range [][]int{
		{1, 1, 1, 5000, 1, 1, 1, 1, 1, 2},
		{5000, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21},
	} {
		ms, _ := makeMembers(weights...)
		p := Weighted{MaxSchedule: 8}.Build(ms).(*interleavePicker)
		for pos := range p.period {
			want := 0
			for p.ends[want] <= pos {
				want++
			}
			if got := p.owner(pos); got != want {
				t.Fatalf("weights %v: owner(%d) = %d, want %d", weights, pos, got, want)
			}
		}
	}
}

// TestInterleavedWidePeriod covers periods beyond 2^32, where the stride product needs 128
// bits: position must equal (t mod L) x P mod L computed with big integers, and weights
// above the cap are clamped rather than overflowing the period.
func TestInterleavedWidePeriod(t *testing.T) {
	ms, _ := makeMembers(1<<40, 3, 1<<31+1, 7)
	p := Weighted{}.Build(ms).(*interleavePicker)
	if !p.wide {
		t.Fatalf("period %d should use the 128-bit path", p.period)
	}
	if want := uint64(maxWeight + 3 + 1<<31 + 1 + 7); p.period != want {
		t.Fatalf("period %d, want %d (first weight clamped to %d)", p.period, want, uint64(maxWeight))
	}
	if gcd(p.stride, p.period) != 1 {
		t.Fatalf("stride %d shares a factor with period %d", p.stride, p.period)
	}
	r := rand.New(rand.NewPCG(3, 4))
	L, P := new(big.Int).SetUint64(p.period), new(big.Int).SetUint64(p.stride)
	for range 1000 {
		tk := r.Uint64()
		want := new(big.Int).SetUint64(tk)
		want.Mod(want, L).Mul(want, P).Mod(want, L)
		if got := p.position(tk); got != want.Uint64() {
			t.Fatalf("position(%d) = %d, want %s", tk, got, want)
		}
	}
}

// TestInterleavedTableMatches: the precomputed interleaved table and the per-pick
// computation give the same sequence, so the table-size limit only changes the cost.
func TestInterleavedTableMatches(t *testing.T) {
	weights := append(benchWeights(3000), 7)
	ms, _ := makeMembers(weights...)
	tab, ok := Weighted{}.Build(ms).(*schedulePicker)
	if !ok || tab.smooth {
		t.Fatalf("Build did not choose the interleaved table")
	}
	live := Weighted{MaxSchedule: len(tab.schedule) - 1}.Build(ms).(*interleavePicker)
	a := pickSequence(t, tab, ms, len(tab.schedule)+10)
	b := pickSequence(t, live, ms, len(tab.schedule)+10)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("pick %d: table says member %d, per-pick computation %d", i, a[i], b[i])
		}
	}
	requireDrained(t, statesOf(ms))
}

// TestWeightedPickerChoice pins which implementation Build chooses, since the choice decides
// both the sequence (exact nginx or interleaved) and the build cost.
func TestWeightedPickerChoice(t *testing.T) {
	tests := []struct {
		name    string
		b       Weighted
		weights []int
		want    string
	}{
		{"equal", Weighted{}, []int{4, 4, 4}, "*lb.rrPicker"},
		{"small", Weighted{}, []int{5, 1, 1}, "*lb.schedulePicker"},
		{"over MaxSchedule", Weighted{MaxSchedule: 6}, []int{5, 1, 1}, "*lb.interleavePicker"},
		{"at MaxSchedule", Weighted{MaxSchedule: 7}, []int{5, 1, 1}, "*lb.schedulePicker"},
		{"over work bound", Weighted{}, append(equalWeights(2999), 2), "interleaved table"},
		{"over work bound and MaxSchedule", Weighted{MaxSchedule: 3000}, append(equalWeights(2999), 2), "*lb.interleavePicker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, _ := makeMembers(tt.weights...)
			if got := typeName(tt.b.Build(ms)); got != tt.want {
				t.Fatalf("Build chose %s, want %s", got, tt.want)
			}
		})
	}
}

func typeName(p upstream.Picker) string {
	switch p := p.(type) {
	case *rrPicker:
		return "*lb.rrPicker"
	case *schedulePicker:
		if !p.smooth {
			return "interleaved table"
		}
		return "*lb.schedulePicker"
	case *interleavePicker:
		return "*lb.interleavePicker"
	}
	return "other"
}
