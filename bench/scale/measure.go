// Package scale holds what the scale tests and benchmarks share: reading the process's memory
// the same way everywhere, and latency percentiles. The tests live beside the code they
// measure (upstream/etcd, upstream/zookeeper) and here (the gateway at 100,000 endpoints);
// run.sh runs the large sizes and docs/scale.md records what they printed.
package scale

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Memory is one reading of the test process's memory.
type Memory struct {
	HeapBytes  uint64 // Go heap in use after a full collection (runtime.MemStats.HeapAlloc)
	StackBytes uint64 // goroutine stacks (runtime.MemStats.StackInuse): not in the heap
	RSSBytes   uint64 // resident set size (VmRSS), 0 where /proc is missing
	Goroutines int
}

// ReadMemory collects garbage twice (the second pass frees what finalizers released) and
// reads the heap, the resident set and the goroutine count.
func ReadMemory() Memory {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Memory{HeapBytes: ms.HeapAlloc, StackBytes: ms.StackInuse, RSSBytes: residentBytes(), Goroutines: runtime.NumGoroutine()}
}

// Growth is what changed from before to after; negative differences are reported as 0 (a
// collection between the readings can free more than the work allocated).
func Growth(before, after Memory) Memory {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return Memory{
		HeapBytes:  sub(after.HeapBytes, before.HeapBytes),
		StackBytes: sub(after.StackBytes, before.StackBytes),
		RSSBytes:   sub(after.RSSBytes, before.RSSBytes),
		Goroutines: max(after.Goroutines-before.Goroutines, 0),
	}
}

// MiB converts bytes to mebibytes, for logs and benchmark metrics.
func MiB(b uint64) float64 { return float64(b) / (1 << 20) }

// residentBytes reads this process's VmRSS; 0 when it cannot.
func residentBytes() uint64 { return readVmRSS("/proc/self/status") }

// ProcessRSS is the resident set size of another process (a registry server the test
// started), 0 when it cannot be read.
func ProcessRSS(pid int) uint64 { return readVmRSS("/proc/" + strconv.Itoa(pid) + "/status") }

func readVmRSS(path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds "VmRSS:  123 kB" in a /proc status file.
func parseVmRSS(f *os.File) uint64 {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// CPUTime is the processor time (user and system) this process has used so far: on a shared
// machine it shows what work cost where wall time also counts waiting for other processes.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Percentile returns the p-th quantile (0 <= p <= 1) of ds by the nearest-rank method,
// sorting ds in place; 0 for an empty slice.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// WaitWithin waits for wg, at most d, and reports whether it finished in time. (On false, a
// goroutine stays parked on wg until it finishes: callers fail their test then.)
func WaitWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// Millis converts a duration to fractional milliseconds, for logs and benchmark metrics.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
