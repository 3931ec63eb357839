package proxy

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// grpcCodes is the number of gRPC status codes defined (OK through UNAUTHENTICATED).
const grpcCodes = 17

// grpcCodeNames are the codes' names as metric labels show them.
var grpcCodeNames = [grpcCodes]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// grpcMetrics counts one route's gRPC requests by status. The counters are made with the
// route's first gRPC request: a route that never sees one costs a pointer and two words.
type grpcMetrics struct {
	vec   *prometheus.CounterVec
	route string
	codes atomic.Pointer[[grpcCodes + 1]lazyCounter] // the last counts codes not yet defined
}

// observeGRPC counts a gRPC request that ended with status code.
func (rm *routeMetrics) observeGRPC(code int) {
	g := rm.grpc
	if g == nil {
		return
	}
	codes := g.codes.Load()
	if codes == nil {
		codes = new([grpcCodes + 1]lazyCounter)
		for c := range codes {
			name := "OTHER"
			if c < grpcCodes {
				name = grpcCodeNames[c]
			}
			codes[c] = lazyCounter{vec: g.vec, labels: [2]string{g.route, name}}
		}
		// Two first requests at once may both build one; either is fine, the series are the
		// vector's.
		if !g.codes.CompareAndSwap(nil, codes) {
			codes = g.codes.Load()
		}
	}
	if code < 0 || code >= grpcCodes {
		code = grpcCodes
	}
	codes[code].Inc()
}

// grpcStatusName names a gRPC status for logs: its name, or its number if not defined.
func grpcStatusName(code int) string {
	if code >= 0 && code < grpcCodes {
		return grpcCodeNames[code]
	}
	return strconv.Itoa(code)
}
