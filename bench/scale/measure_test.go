package scale

import (
	"os"
	"sync"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: Percentile sorts
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd", ms(3, 1, 2), 0.5, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"max", ms(hundred...), 1, 100 * time.Millisecond},
		{"min", ms(hundred...), 0, 1 * time.Millisecond},
	} {
		if got := Percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(p=%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestGrowth(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after Memory
		want          Memory
	}{
		{"grew", Memory{100, 10, 1000, 5}, Memory{300, 30, 4000, 9}, Memory{200, 20, 3000, 4}},
		{"shrank counts as zero", Memory{300, 30, 4000, 9}, Memory{100, 10, 1000, 5}, Memory{}},
	} {
		if got := Growth(tc.before, tc.after); got != tc.want {
			t.Errorf("%s: Growth = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestReadMemory(t *testing.T) {
	m := ReadMemory()
	if m.HeapBytes == 0 || m.Goroutines == 0 {
		t.Fatalf("ReadMemory = %+v: heap and goroutines must be read", m)
	}
	if m.RSSBytes < m.HeapBytes/2 {
		t.Errorf("RSS %d bytes is implausibly below the heap (%d bytes): VmRSS misread", m.RSSBytes, m.HeapBytes)
	}
}

func TestProcessRSS(t *testing.T) {
	if ProcessRSS(os.Getpid()) == 0 {
		t.Error("ProcessRSS(self) = 0")
	}
	if got := ProcessRSS(-1); got != 0 {
		t.Errorf("ProcessRSS(-1) = %d, want 0", got)
	}
}

func TestCPUTime(t *testing.T) {
	before := CPUTime()
	for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline); {
	}
	if after := CPUTime(); after <= before {
		t.Errorf("CPUTime did not advance over 20 ms of spinning: %v -> %v", before, after)
	}
}

func TestWaitWithin(t *testing.T) {
	var wg sync.WaitGroup
	if !WaitWithin(&wg, time.Second) {
		t.Error("WaitWithin of a finished group = false")
	}
	wg.Add(1)
	if WaitWithin(&wg, 10*time.Millisecond) {
		t.Error("WaitWithin of a group still running = true")
	}
	wg.Done() // lets the parked waiter end before goleak-free exit
}
