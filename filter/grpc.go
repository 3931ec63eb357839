package filter

import (
	"net/http"
	"strconv"
	"strings"
)

// gRPC status codes the gateway answers with (google.golang.org/grpc/codes).
const (
	GRPCOK                = 0
	GRPCCanceled          = 1
	GRPCUnknown           = 2
	GRPCDeadlineExceeded  = 4
	GRPCPermissionDenied  = 7
	GRPCResourceExhausted = 8
	GRPCUnimplemented     = 12
	GRPCInternal          = 13
	GRPCUnavailable       = 14
	GRPCUnauthenticated   = 16
)

// IsGRPC reports whether a request or response with header h is gRPC: its content type is
// application/grpc, alone or with a suffix (+proto, -web, ;charset=...).
func IsGRPC(h http.Header) bool {
	v := h["Content-Type"]
	if len(v) == 0 {
		return false
	}
	ct := v[0]
	const prefix = "application/grpc"
	if len(ct) < len(prefix) || !strings.EqualFold(ct[:len(prefix)], prefix) {
		return false
	}
	if len(ct) == len(prefix) {
		return true
	}
	switch ct[len(prefix)] {
	case '+', '-', ';':
		return true
	}
	return false
}

// GRPCCode is the gRPC status a gateway answer of HTTP status carries: UNAVAILABLE for 502
// and 503 (nothing usable answered: a client may retry elsewhere), DEADLINE_EXCEEDED for 504,
// RESOURCE_EXHAUSTED for 429 and 413, UNAUTHENTICATED for 401, PERMISSION_DENIED for 403, and
// otherwise grpc-go's mapping of HTTP statuses (400 INTERNAL, 404 UNIMPLEMENTED, the rest
// UNKNOWN).
func GRPCCode(status int) int {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return GRPCUnavailable
	case http.StatusGatewayTimeout:
		return GRPCDeadlineExceeded
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		return GRPCResourceExhausted
	case http.StatusUnauthorized:
		return GRPCUnauthenticated
	case http.StatusForbidden:
		return GRPCPermissionDenied
	case http.StatusBadRequest:
		return GRPCInternal
	case http.StatusNotFound:
		return GRPCUnimplemented
	}
	return GRPCUnknown
}

// WriteGRPCError answers a gRPC request the gateway refuses or cannot serve: a
// Trailers-Only response (HTTP 200 and a header block that is also the end of the stream)
// with grpc-status (GRPCCode of status) and grpc-message naming the error and the request
// id, so a gRPC client reports a status instead of a protocol error. It writes no body; the
// response must not be flushed before the handler returns, or the stream would not end with
// its header block.
func WriteGRPCError(w http.ResponseWriter, status int, reqID string) {
	WriteGRPCErrorMessage(w, status, reqID, ErrorMessage(status))
}

// WriteGRPCErrorMessage is WriteGRPCError with the error text given.
func WriteGRPCErrorMessage(w http.ResponseWriter, status int, reqID, text string) {
	msg := "switchyard: " + text
	if reqID != "" {
		msg += " (request id " + reqID + ")"
	}
	h := w.Header()
	delete(h, "Content-Length")
	h["Content-Type"] = []string{"application/grpc"}
	h["Grpc-Status"] = []string{strconv.Itoa(GRPCCode(status))}
	h["Grpc-Message"] = []string{EncodeGRPCMessage(msg)}
	w.WriteHeader(http.StatusOK)
}

// EncodeGRPCMessage percent-encodes s as grpc-message requires: every byte outside
// printable ASCII, and '%' itself.
func EncodeGRPCMessage(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}
