package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Errors returned by Client.RoundTrip, and how the proxy should read them:
//
//   - dial or TLS handshake failure: *net.OpError with Op "dial" (IsDialError);
//     the upstream was never reached, so the request is safe to send elsewhere.
//   - req.Context() ended: an error for which errors.Is(err, context.Canceled)
//     or errors.Is(err, context.DeadlineExceeded) holds (IsContextError); the
//     client's doing, never the upstream's. This includes a request that was
//     still waiting for a connection under MaxConnsPerHost (its text says
//     "waiting for a free connection"): it took no connection and sent
//     nothing. Whether such a wait means a slow upstream is the caller's
//     call: the caller knows which of its deadlines ended the context.
//   - ResponseHeaderTimeout: ErrResponseHeaderTimeout, a net.Error whose
//     Timeout() is true.
//   - the upstream closed the connection before a response: an error wrapping
//     io.ErrUnexpectedEOF; a reset wraps syscall.ECONNRESET (IsConnReset).
//   - a malformed or ambiguous response (including a status outside
//     100-599 or a version other than HTTP/1.x): *ProtocolError; the proxy
//     should answer 502.
//   - reading the caller's request body failed: *RequestBodyError.
//   - invalid outgoing request (bad header bytes, bad URL): *RequestError;
//     nothing was sent.
var (
	// ErrClosed is returned by RoundTrip after Close.
	ErrClosed = errors.New("h1: client closed")

	// ErrResponseHeaderTimeout is returned when Options.ResponseHeaderTimeout
	// elapses before the response headers arrive. It is a net.Error with
	// Timeout() true so generic timeout classification keeps working.
	ErrResponseHeaderTimeout net.Error = &timeoutError{"h1: timeout awaiting response headers"}

	errBodyClosed       = errors.New("h1: read on closed response body")
	errConcurrentRead   = errors.New("h1: concurrent Read on response body")
	errHeaderTooLarge   = errors.New("h1: response headers exceed MaxResponseHeaderBytes")
	errTooMany1xx       = errors.New("h1: too many 1xx informational responses")
	errAmbiguousFraming = errors.New("h1: response has both Content-Length and Transfer-Encoding")
	errBadFieldName     = errors.New("h1: whitespace in response header field name")
	errBadStatus        = errors.New("h1: response status outside 100-599")
	errBadVersion       = errors.New("h1: response version is not HTTP/1.x")
)

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// ProtocolError reports a response that violates HTTP/1.1 framing or syntax.
// The connection it arrived on is always closed: after any doubt about where
// one message ends, reusing the connection invites response splitting.
type ProtocolError struct{ Err error }

func (e *ProtocolError) Error() string { return "h1: malformed response: " + e.Err.Error() }

// Unwrap returns the underlying parse error.
func (e *ProtocolError) Unwrap() error { return e.Err }

// RequestBodyError reports that reading the outgoing request body failed or
// that it was shorter than its ContentLength. The fault lies with whoever
// supplies the body (usually the downstream client), not with the upstream.
type RequestBodyError struct{ Err error }

func (e *RequestBodyError) Error() string { return "h1: reading request body: " + e.Err.Error() }

// Unwrap returns the body's error.
func (e *RequestBodyError) Unwrap() error { return e.Err }

// RequestError reports an outgoing request that cannot be written safely
// (for example a header value containing CR or LF). Nothing was sent.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return "h1: invalid request: " + e.Msg }

// IsDialError reports whether err is a failure to establish the upstream
// connection (TCP connect or TLS handshake), meaning no request byte left.
func IsDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// IsContextError reports whether err was caused by the request's context
// ending (client went away or the caller's deadline passed).
func IsContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// IsConnReset reports whether the upstream closed or reset the connection
// before a complete response arrived.
func IsConnReset(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// ctxError wraps the context's error so errors.Is matches context.Canceled or
// context.DeadlineExceeded; the I/O error that the abort provoked (an
// i/o timeout) is kept only as text so it is not mistaken for an upstream
// timeout.
func ctxError(ctx context.Context, op string, ioErr error) error {
	if ioErr == nil {
		return fmt.Errorf("h1: %s: %w", op, ctx.Err())
	}
	return fmt.Errorf("h1: %s: %w (%v)", op, ctx.Err(), ioErr)
}

// isDeadline reports whether err came from a conn deadline.
func isDeadline(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// isStaleConnErr reports whether err looks like a peer that had already
// closed a kept-alive connection: EOF, reset, broken pipe.
func isStaleConnErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}
