package testkit

import (
	"runtime"
	"time"
)

// HeapKept runs build and returns the heap that what it built keeps (live heap after a GC,
// minus before it; 0 if the heap shrank) and how long build took. Tests of shared loaded
// tables (many routes over one keys or users file) assert on the first.
func HeapKept(build func() any) (heap uint64, took time.Duration) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	built := build()
	took = time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(built)
	if after.HeapAlloc < before.HeapAlloc {
		return 0, took
	}
	return after.HeapAlloc - before.HeapAlloc, took
}
