//go:build linux

package testkit

import (
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID, which package syscall does not
// name.
const clockThreadCPUTime = 3

// ThreadCPUTime is the CPU time the calling thread has used, to the nanosecond; the caller
// locks its goroutine to the thread (runtime.LockOSThread). Unlike the wall clock it does
// not advance while other processes hold the CPU, so timing samples taken with it stay
// comparable on a loaded machine (getrusage's thread times only move by scheduler ticks,
// too coarse). The timing tests of auth mechanisms compare medians of such samples.
func ThreadCPUTime(t testing.TB) time.Duration {
	t.Helper()
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	return time.Duration(ts.Nano())
}

// MedianDuration sorts d and returns its median.
func MedianDuration(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
