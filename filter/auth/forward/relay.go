package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
	"golang.org/x/net/http/httpguts"
)

// maxConnectionTokens bounds the options one answer's Connection header may name; real
// servers name one or two. The bound keeps the header filtering linear when a hostile
// service names thousands (the proxy's rule, issue #11).
const maxConnectionTokens = 64

// relay writes the auth service's non-2xx answer to the client, or fails closed when the
// answer cannot be relayed as it came (see the package doc), with the cause. Nothing is
// written to w before the whole answer has been read and checked. A gRPC request (q.GRPC)
// gets the answer's status in gRPC form instead of its body, as every filter's refusal:
// a gRPC client cannot read an HTTP error page.
func (m *Mechanism) relay(ctx, parent context.Context, w http.ResponseWriter, res *http.Response, q *filter.Request) (auth.Decision, error) {
	defer res.Body.Close()
	bad := auth.Decision{Result: auth.Unavailable, Reason: reasonUnavailable}
	if res.StatusCode < 200 {
		// net/http returns a 101 as final; nothing asked for an upgrade, and a client cannot
		// be sent an informational status as an answer.
		return bad, errInformational
	}
	body, err := readBody(res)
	if errors.Is(err, errBodyTooLarge) {
		return bad, err
	}
	if err != nil {
		return failure(ctx, parent), err
	}
	nominated, ok := connectionOptions(res.Header["Connection"])
	if !ok {
		return bad, errConnectionOptions
	}
	h := w.Header()
	for name, values := range res.Header {
		if isHopByHop(name) || isManagedResponseField(name) || containsName(nominated, name) ||
			!httpguts.ValidHeaderFieldName(name) || !validValues(values) {
			continue // net/http's client keeps "Name :" fields under a name that is not a token
		}
		h[name] = values
	}
	denied := auth.Decision{Result: auth.Answered, Reason: reasonDenied, Status: res.StatusCode}
	if q.GRPC {
		// The service's fields stay (a challenge, say); its status becomes the gRPC one.
		filter.WriteGRPCError(w, res.StatusCode, q.RequestID)
		return denied, nil
	}
	if _, ok := res.Header["Content-Type"]; !ok {
		h["Content-Type"] = nil // relay no type rather than let net/http sniff one
	}
	if bodyAllowed(res.StatusCode) {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	} else {
		delete(h, "Content-Length")
		body = nil
	}
	w.WriteHeader(res.StatusCode)
	if len(body) > 0 {
		_, _ = w.Write(body) // a client gone now is the server's to notice
	}
	return denied, nil
}

// readBody reads the whole answer body, refusing one over MaxRelayedBody; a declared length
// over it is refused before reading anything.
func readBody(res *http.Response) ([]byte, error) {
	if res.ContentLength > MaxRelayedBody {
		return nil, errBodyTooLarge
	}
	if res.ContentLength >= 0 {
		// net/http ends the body at the declared length and reports a short one.
		body := make([]byte, res.ContentLength)
		_, err := io.ReadFull(res.Body, body)
		return body, err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxRelayedBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxRelayedBody {
		return nil, errBodyTooLarge
	}
	return body, nil
}

// bodyAllowed reports whether a response with status may carry a body (RFC 9110 6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// connectionOptions returns the canonical field names the Connection values nominate, or
// false when they name more than maxConnectionTokens. Tokens that name no field to drop
// anyway ("close", "keep-alive", "upgrade") are skipped.
func connectionOptions(values []string) ([]string, bool) {
	var names []string
	for _, v := range values {
		for token := range strings.SplitSeq(v, ",") {
			token = strings.Trim(token, " \t")
			if token == "" || strings.EqualFold(token, "close") || strings.EqualFold(token, "keep-alive") || strings.EqualFold(token, "upgrade") {
				continue
			}
			if len(names) == maxConnectionTokens {
				return nil, false
			}
			names = append(names, http.CanonicalHeaderKey(token))
		}
	}
	return names, true
}

// containsName reports whether names holds name; names has at most maxConnectionTokens.
func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// isHopByHop reports whether name (canonical) is a hop-by-hop field of RFC 9110 7.6.1, a
// legacy one every proxy strips, or HTTP2-Settings: none is ever passed on.
func isHopByHop(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings":
		return true
	}
	return false
}

// isManagedResponseField reports whether name is a response field the gateway writes
// itself: the framing it sets for the relayed body, its request id, and Alt-Svc (which
// would advertise the auth service's own endpoints to the client).
func isManagedResponseField(name string) bool {
	switch name {
	case "Content-Length", "X-Request-Id", "Alt-Svc":
		return true
	}
	return false
}

// isSetBySubrequest reports whether name is one of the fields every subrequest carries.
func isSetBySubrequest(name string) bool {
	switch name {
	case headerMethod, headerProto, headerHost, headerURI, headerFor, headerRequestID:
		return true
	}
	return false
}
