package proxy

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/upstream"
)

// This file is what the request path does differently for gRPC (content-type
// application/grpc*): gateway errors as gRPC statuses, grpc-timeout as the call's deadline,
// and grpc-status read from the upstream's answer for health, retries and the access log.

// noGRPCStatus marks an exchange that has no gRPC status (yet).
const noGRPCStatus = -1

// fail answers the request with the gateway's error for status: a gRPC status for a gRPC
// request, else the JSON body.
func (x *exchange) fail(w http.ResponseWriter, status int) {
	if x.grpc {
		x.grpcCode = filter.GRPCCode(status)
		filter.WriteGRPCError(w, status, x.reqID)
		return
	}
	writeError(w, status, x.reqID)
}

// startGRPC marks x as a gRPC exchange and sets its deadline from grpc-timeout: the
// caller's deadline covers the whole call, response stream included, as it does for the
// caller. The route's timeout still caps the wait for response headers (attemptContext), so
// a unary call never waits longer than either, while a stream that has begun may run to the
// caller's deadline. A missing or malformed grpc-timeout leaves only the route timeout.
func (x *exchange) startGRPC() {
	x.grpc = true
	x.grpcCode = noGRPCStatus
	if d, ok := parseGRPCTimeout(x.r.Header["Grpc-Timeout"]); ok {
		x.deadline = x.start.Add(d)
	}
}

// maxGRPCTimeout is the longest grpc-timeout taken as a deadline; a longer one (8 digits
// of hours reach 11,000 years, past time.Duration's range) means no deadline.
const maxGRPCTimeout = 10 * 365 * 24 * time.Hour

// parseGRPCTimeout reads a grpc-timeout header: 1 to 8 ASCII digits and a unit (H, M, S, m,
// u, n). Anything else is not a timeout.
func parseGRPCTimeout(v []string) (time.Duration, bool) {
	if len(v) != 1 || len(v[0]) < 2 || len(v[0]) > 9 {
		return 0, false
	}
	s := v[0]
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var n int64
	for i := 0; i < len(s)-1; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if time.Duration(n) > maxGRPCTimeout/unit {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// encodeGRPCTimeout writes d as grpc-timeout in the finest unit that fits 8 digits,
// rounding up so the upstream never gets less than what is left.
func encodeGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	for _, u := range [...]struct {
		d    time.Duration
		name byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}} {
		n := (d + u.d - 1) / u.d
		if n <= 99999999 {
			var b [9]byte
			return string(append(strconv.AppendInt(b[:0], int64(n), 10), u.name))
		}
	}
	return "99999999H"
}

// grpcStatusOf returns the grpc-status of an upstream answer: from its trailers, or from its
// headers for a Trailers-Only answer. ok is false when there is none (yet) or it is not a
// number.
func grpcStatusOf(res *http.Response) (code int, ok bool) {
	v := res.Trailer["Grpc-Status"]
	if len(v) == 0 {
		v = res.Header["Grpc-Status"]
	}
	if len(v) != 1 || len(v[0]) == 0 || len(v[0]) > 3 {
		return 0, false
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// trailersOnly reports whether res is a gRPC Trailers-Only answer: its status is in the
// header block, which ends the stream, so no message came before it.
func trailersOnly(res *http.Response) bool {
	_, ok := res.Header["Grpc-Status"]
	return ok
}

// httpStatusForGRPC maps a gRPC status to the HTTP status health accounting sees, as Envoy
// does for outlier detection: with the default passive_health.failure_statuses, UNAVAILABLE
// (503), DEADLINE_EXCEEDED (504), INTERNAL, UNKNOWN and DATA_LOSS (500) count as failures of
// the endpoint, while the statuses a caller's request causes (NOT_FOUND, INVALID_ARGUMENT,
// PERMISSION_DENIED...) map to 4xx and do not.
func httpStatusForGRPC(code int) int {
	switch code {
	case 0:
		return http.StatusOK
	case 1: // CANCELLED
		return StatusClientClosed
	case 3, 9, 11: // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
		return http.StatusBadRequest
	case 4:
		return http.StatusGatewayTimeout
	case 5:
		return http.StatusNotFound
	case 6, 10: // ALREADY_EXISTS, ABORTED
		return http.StatusConflict
	case 7:
		return http.StatusForbidden
	case 8:
		return http.StatusTooManyRequests
	case 12:
		return http.StatusNotImplemented
	case 14:
		return http.StatusServiceUnavailable
	case 16:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError // UNKNOWN, INTERNAL, DATA_LOSS and codes not yet defined
}

// outcomeStatus is the status res reports to the endpoint's health: for a gRPC answer with
// HTTP 200, its grpc-status mapped by httpStatusForGRPC (read after the body, when the
// trailers are in).
func (x *exchange) outcomeStatus(res *http.Response) int {
	if !x.grpc || res.StatusCode != http.StatusOK {
		return res.StatusCode
	}
	code, ok := grpcStatusOf(res)
	if !ok {
		return res.StatusCode
	}
	x.grpcCode = code
	if code == filter.GRPCDeadlineExceeded && x.pastDeadline() {
		// The upstream ran out of the deadline the caller gave it: not the endpoint's
		// failure, so it is reported as a call the client ended.
		return StatusClientClosed
	}
	return httpStatusForGRPC(code)
}

// retryStatus is the status retry.on_status is checked against: for a gRPC Trailers-Only
// UNAVAILABLE (no response message was sent, so a retry cannot duplicate one) it is 503;
// every other gRPC answer keeps its HTTP status (200), so DEADLINE_EXCEEDED and
// application errors are never retried by the gateway.
func (x *exchange) retryStatus(res *http.Response) int {
	if x.grpc && res.StatusCode == http.StatusOK && trailersOnly(res) {
		if code, ok := grpcStatusOf(res); ok && code == filter.GRPCUnavailable {
			return http.StatusServiceUnavailable
		}
	}
	return res.StatusCode
}

// grpcLogStatus is the gRPC status the access log shows for a gRPC exchange that ended with
// HTTP status: the upstream's, the gateway's own answer's, CANCELLED when the client left
// (DEADLINE_EXCEEDED when its deadline had passed), UNKNOWN when the upstream gave none.
func (x *exchange) grpcLogStatus(status int) int {
	switch {
	case status == StatusClientClosed && x.pastDeadline():
		return filter.GRPCDeadlineExceeded
	case status == StatusClientClosed:
		return filter.GRPCCanceled
	case x.grpcCode == noGRPCStatus && status != http.StatusOK:
		return filter.GRPCCode(status)
	case x.grpcCode == noGRPCStatus:
		return filter.GRPCUnknown // an answer without grpc-status, or a stream reset midway
	}
	return x.grpcCode
}

// attemptContext returns the context an attempt runs under and the timeout bounding its
// wait for response headers (the route's, per try). A gRPC call with grpc-timeout runs
// under its deadline, which also bounds the response stream; the header wait ends by then
// too (whichever of the two comes first), and the upstream is sent what is left as its
// grpc-timeout.
func (x *exchange) attemptContext() (context.Context, context.CancelFunc, time.Duration) {
	timeout := x.rt.tryTimeout()
	if x.deadline.IsZero() {
		ctx, cancel := context.WithCancel(x.r.Context())
		return ctx, cancel, timeout
	}
	left := time.Until(x.deadline)
	if timeout <= 0 || left < timeout {
		timeout = max(left, time.Nanosecond)
	}
	x.header["Grpc-Timeout"] = []string{encodeGRPCTimeout(left)}
	ctx, cancel := context.WithDeadline(x.r.Context(), x.deadline)
	return ctx, cancel, timeout
}

// pastDeadline reports whether a gRPC call's deadline has passed: nothing more is tried.
func (x *exchange) pastDeadline() bool {
	return !x.deadline.IsZero() && !time.Now().Before(x.deadline)
}

// callersDeadline reports whether a failure of kind is the gRPC caller's own deadline
// running out (its grpc-timeout, before the route's timeout): the endpoint is not blamed for
// it, since a client with tight deadlines would otherwise eject every endpoint.
func (x *exchange) callersDeadline(kind upstream.ErrorKind) bool {
	return kind == upstream.ErrTimeout && x.pastDeadline()
}

// refusedGRPCStatus is the gRPC status logged for a gRPC request refused with status before
// it was forwarded (noGRPCStatus for other requests).
func refusedGRPCStatus(grpc bool, status int) int {
	if !grpc {
		return noGRPCStatus
	}
	return filter.GRPCCode(status)
}

// grpcRelay passes a gRPC response body through and tracks its message framing (a 5-byte
// prefix: flag and big-endian length, then the message), so a stream the upstream breaks
// can still end with a status when the client has received whole messages only.
type grpcRelay struct {
	dst     io.Writer
	prefix  [5]byte
	have    int    // bytes of the current prefix seen
	pending uint64 // message bytes still to come after a complete prefix
}

func (g *grpcRelay) Write(p []byte) (int, error) {
	n, err := g.dst.Write(p)
	g.track(p[:n])
	return n, err
}

func (g *grpcRelay) track(p []byte) {
	for len(p) > 0 {
		if g.pending > 0 {
			k := min(uint64(len(p)), g.pending)
			g.pending -= k
			p = p[k:]
			continue
		}
		k := copy(g.prefix[g.have:], p)
		g.have += k
		p = p[k:]
		if g.have == len(g.prefix) {
			g.pending = uint64(binary.BigEndian.Uint32(g.prefix[1:]))
			g.have = 0
		}
	}
}

// atBoundary reports whether every message relayed so far is complete.
func (g *grpcRelay) atBoundary() bool { return g.have == 0 && g.pending == 0 }

// endBroken ends a gRPC response whose upstream broke at a message boundary with the
// trailers UNAVAILABLE and the request id, instead of resetting the stream (which grpc-go
// reports as INTERNAL): the client learns the call failed for want of a backend, and may
// retry it. It reports false when the break was mid-message: then only a reset is honest.
func (x *exchange) endBroken(g *grpcRelay) bool {
	if g == nil || !g.atBoundary() {
		return false
	}
	x.grpcCode = filter.GRPCUnavailable
	wh := x.w.Header()
	wh[http.TrailerPrefix+"Grpc-Status"] = []string{strconv.Itoa(filter.GRPCUnavailable)}
	wh[http.TrailerPrefix+"Grpc-Message"] = []string{filter.EncodeGRPCMessage("switchyard: upstream broke mid-stream (request id " + x.reqID + ")")}
	return true
}

// trailerKey is the header key that sends trailer k after the body (http.TrailerPrefix+k),
// without building the string for the trailers every gRPC response has.
func trailerKey(k string) string {
	switch k {
	case "Grpc-Status":
		return http.TrailerPrefix + "Grpc-Status"
	case "Grpc-Message":
		return http.TrailerPrefix + "Grpc-Message"
	case "Grpc-Status-Details-Bin":
		return http.TrailerPrefix + "Grpc-Status-Details-Bin"
	}
	return http.TrailerPrefix + k
}
