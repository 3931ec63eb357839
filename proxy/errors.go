package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/proxy/h1"
	"github.com/switchyard/switchyard/upstream"
	"golang.org/x/net/http2"
)

// StatusClientClosed is logged and counted when the client went away before the response
// (nginx's 499). It is never sent: there is nobody left to send it to.
const StatusClientClosed = 499

// classify maps a transport error to the kind health, breaker and retries act on. clientGone
// and timedOut come from the request's own contexts, which are more reliable than the error.
//
// A request still waiting for a connection under transport.max_conns_per_host when its
// context ends gets the context's error from h1 and is classified as if it had been waiting
// for the upstream's answer, on purpose: if the route timeout fired it is a timeout (504,
// counted against the endpoint, and retried on another one under retry.on_timeout), because
// every connection to that endpoint stayed busy for the whole timeout, which is how an
// overloaded upstream looks and what outlier detection should see; if the client left it is
// canceled (499 logged, never counted).
func classify(err error, clientGone, timedOut bool) upstream.ErrorKind {
	var bodyErr *h1.RequestBodyError
	switch {
	case clientGone, errors.As(err, &bodyErr):
		// The client left, or its own request body broke mid-send: not the upstream's fault.
		return upstream.ErrCanceled
	case timedOut, errors.Is(err, context.DeadlineExceeded):
		return upstream.ErrTimeout
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return upstream.ErrConnect // even a dial timeout: nothing was sent, safe to retry
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return upstream.ErrConnect
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return upstream.ErrTimeout
	}
	if errors.Is(err, context.Canceled) {
		return upstream.ErrCanceled
	}
	var streamErr http2.StreamError
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &streamErr) {
		// (An HTTP/2 upstream that resets the stream breaks it as a closed connection does.)
		return upstream.ErrReset
	}
	return upstream.ErrProtocol
}

// statusFor is the status the client gets for a failed upstream exchange.
func statusFor(k upstream.ErrorKind) int {
	switch k {
	case upstream.ErrTimeout:
		return http.StatusGatewayTimeout
	case upstream.ErrCanceled:
		return StatusClientClosed
	default:
		return http.StatusBadGateway
	}
}

// writeError sends the gateway's small JSON error body (see filter.WriteError).
func writeError(w http.ResponseWriter, status int, reqID string) { filter.WriteError(w, status, reqID) }

// refuse answers a request that reaches no route with a small JSON error (a gRPC status
// for a gRPC request).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int) {
	reqID := requestID(r.Header)
	w.Header()["X-Request-Id"] = []string{reqID}
	if filter.IsGRPC(r.Header) {
		filter.WriteGRPCError(w, status, reqID)
	} else {
		writeError(w, status, reqID)
	}
	if status == http.StatusNotFound {
		h.unmatched.Inc()
	}
}
