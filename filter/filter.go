// Package filter is the per-route filter chain's contract: the request filters that run before
// a request is forwarded (and may answer it themselves: 403, 413, 429, a CORS preflight), and
// the response filters that wrap the client's ResponseWriter (header edits, CORS headers,
// compression). Each filter lives in its own package under filter/ with a constructor that
// returns nil when its config block is off; a route's Chain is compiled once per table build,
// so a route without filters pays nothing. The proxy runs the chain once per request and stays
// the terminal forwarder: a retry replays the request the filters produced, never the filters.
package filter

import (
	"io"
	"net/http"
	"strconv"
)

// Request is what a filter knows about a request besides the *http.Request.
type Request struct {
	ClientIP  string // the client's address as resolved through trusted_proxies
	RequestID string // the X-Request-Id the gateway uses for this request
	Route     string // the route's name (metric label)
	// Path is the request's path as the gateway matched it and forwards it (before any
	// rewrite): dot-segments resolved, still escaped. A filter that judges a request by
	// its path (forward auth's X-Forwarded-Uri) must use it, not r.RequestURI: the raw
	// "/public/%2e%2e/admin" reaches the upstream as "/admin". Empty for a request built
	// outside the proxy.
	Path string
	// Identity is who auth admitted, as mechanism:name (api_key:billing, jwt:SUB,
	// basic:alice, forward:VALUE); empty when the route has no auth or named nobody. It is
	// never a secret: logs and rate limit keys use it.
	Identity string
	// Status is the status a request filter answered with, for logs and metrics; 0 while
	// the request goes on.
	Status int
	// GRPC is set by the proxy for a gRPC request (content-type application/grpc*): refusals
	// are then gRPC-shaped (see WriteGRPCError).
	GRPC bool
}

// Refuse answers the request with the gateway's JSON error body (a gRPC status for a gRPC
// request) and records status.
func (q *Request) Refuse(w http.ResponseWriter, status int) {
	q.Status = status
	if q.GRPC {
		WriteGRPCError(w, status, q.RequestID)
		return
	}
	WriteError(w, status, q.RequestID)
}

// RefuseMessage is Refuse with the body's error text given, for a status whose usual text
// would mislead (auth's 503 is not "no healthy upstream").
func (q *Request) RefuseMessage(w http.ResponseWriter, status int, message string) {
	q.Status = status
	if q.GRPC {
		WriteGRPCErrorMessage(w, status, q.RequestID, message)
		return
	}
	WriteErrorMessage(w, status, q.RequestID, message)
}

// RequestFilter runs before the request is forwarded.
type RequestFilter interface {
	// ServeRequest may change r (headers, body) for what follows, or answer the request
	// itself through w, set q.Status and return false to stop the chain.
	ServeRequest(w http.ResponseWriter, r *http.Request, q *Request) bool
}

// ResponseFilter sees the response on its way to the client.
type ResponseFilter interface {
	// WrapResponse returns the writer the rest of the request writes to, and a function to
	// call once the response is complete (nil when there is nothing to finish). Wrappers
	// must implement Unwrap (http.ResponseController reaches the connection through it) and
	// pass 1xx responses through untouched.
	WrapResponse(w http.ResponseWriter, r *http.Request, q *Request) (http.ResponseWriter, func())
}

// Chain is one route's compiled filters. The zero Chain (and a nil *Chain) runs nothing.
type Chain struct {
	// Request filters, in the order they run (outermost first).
	Request []RequestFilter
	// Response filters, in the order they see the response: the first wraps the writer the
	// proxy writes to, the last writes to the client.
	Response []ResponseFilter
}

// Empty reports whether the chain has no filter at all.
func (c *Chain) Empty() bool { return c == nil || len(c.Request) == 0 && len(c.Response) == 0 }

// ServeRequest runs the request filters in order; false means one answered the request.
func (c *Chain) ServeRequest(w http.ResponseWriter, r *http.Request, q *Request) bool {
	if c == nil {
		return true
	}
	for _, f := range c.Request {
		if !f.ServeRequest(w, r, q) {
			return false
		}
	}
	return true
}

// WrapResponse wraps w in the response filters and returns the writer to write to and a
// function that finishes every wrapper, innermost first. It must be called once per request.
func (c *Chain) WrapResponse(w http.ResponseWriter, r *http.Request, q *Request) (http.ResponseWriter, func()) {
	if c == nil || len(c.Response) == 0 {
		return w, noop
	}
	var finishers []func()
	for i := len(c.Response) - 1; i >= 0; i-- {
		var done func()
		w, done = c.Response[i].WrapResponse(w, r, q)
		if done != nil {
			finishers = append(finishers, done)
		}
	}
	if len(finishers) == 0 {
		return w, noop
	}
	return w, func() {
		// The wrapper the proxy writes to finishes first, so what it flushes still passes
		// through the wrappers closer to the client.
		for i := len(finishers) - 1; i >= 0; i-- {
			finishers[i]()
		}
	}
}

func noop() {}

// Close releases what the chain's filters hold beyond a request (forward auth's idle
// connections): every filter that implements io.Closer is closed once. The gateway calls it
// when a reload drops the route; requests still running on it finish unharmed.
func (c *Chain) Close() {
	if c == nil {
		return
	}
	closed := make(map[io.Closer]bool)
	closeOnce := func(f any) {
		if cl, ok := f.(io.Closer); ok && !closed[cl] {
			closed[cl] = true
			_ = cl.Close()
		}
	}
	for _, f := range c.Request {
		closeOnce(f)
	}
	for _, f := range c.Response {
		closeOnce(f)
	}
}

// ErrorMessage is the short text of the gateway's error answers for status.
func ErrorMessage(status int) string {
	if msg := errorMessages[status]; msg != "" {
		return msg
	}
	return http.StatusText(status)
}

// errorMessages are the small, fixed texts of the JSON error bodies.
var errorMessages = map[int]string{
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "no route",
	http.StatusRequestEntityTooLarge: "request body too large",
	http.StatusTooManyRequests:       "rate limited",
	http.StatusBadGateway:            "upstream unreachable",
	http.StatusServiceUnavailable:    "no healthy upstream",
	http.StatusGatewayTimeout:        "upstream timeout",
	http.StatusBadRequest:            "bad request",
}

// WriteError sends the gateway's small JSON error body,
// {"error":"...","status":N,"request_id":"..."}, with status.
func WriteError(w http.ResponseWriter, status int, reqID string) {
	WriteErrorMessage(w, status, reqID, ErrorMessage(status))
}

// WriteErrorMessage is WriteError with the error text given.
func WriteErrorMessage(w http.ResponseWriter, status int, reqID, msg string) {
	b := make([]byte, 0, 96)
	b = append(b, `{"error":`...)
	b = strconv.AppendQuote(b, msg)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	if reqID != "" {
		b = append(b, `,"request_id":`...)
		b = strconv.AppendQuote(b, reqID)
	}
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
