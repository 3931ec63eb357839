// Package forward is forward auth (Traefik's ForwardAuth, nginx's auth_request, Envoy's HTTP
// ext_authz): for every request the gateway asks an HTTP service whether to admit it.
//
// The question is a GET to the configured URL, never carrying the client's body, with only
// these fields: the client's values of the configured request_headers, and X-Forwarded-Method
// (the client's method), X-Forwarded-Proto (https when the connection to the gateway is
// TLS, else http: a TLS-terminating balancer in front is not seen), X-Forwarded-Host (the
// Host the client addressed), X-Forwarded-Uri (the path the gateway routes and forwards,
// dot-segments resolved and still escaped, with the client's query: the auth service judges
// the path the upstream will see, never a raw "/public/%2e%2e/admin"), X-Forwarded-For (the
// client IP resolved through trusted_proxies) and X-Request-Id. No User-Agent or Accept-Encoding is added. A client
// value that is not a valid field value is left out rather than failing the subrequest.
//
// The answer:
//   - 2xx admits. Each configured response_headers field is replaced in the forwarded request
//     by the auth service's values (removed when the service sent none), and the identity is
//     the identity_header's value. An identity with several values or longer than
//     MaxIdentityLength, or a copied value with control characters, is a bad answer.
//   - Any other final status is relayed to the client as the service sent it: its status,
//     its fields except hop-by-hop ones, those its Connection names, Content-Length,
//     Transfer-Encoding, Alt-Svc, X-Request-Id (the gateway's own) and names that are not
//     tokens, and its body with a Content-Length the gateway sets. A redirect is relayed,
//     never followed, so a 302 to a login page reaches the browser; its Location is passed as
//     sent. Without a Content-Type from the service, none is sniffed. One gap: net/http's
//     client deletes a Connection header that says "close" before the gateway sees it, so
//     fields nominated beside "close" are relayed. A gRPC request gets the status in gRPC
//     form instead (HTTP 200, grpc-status and grpc-message, no body), with the same fields.
//   - A body longer than MaxRelayedBody is not relayed: the request fails closed as
//     Unavailable (503) instead. A truncated body is a broken page under its original
//     Content-Type, relaying it would mean inventing a length, and an auth service answering
//     with more than 64 KiB is misbehaving. A declared length over the cap is refused
//     without reading the body.
//   - The subrequest timing out (the timeout covers reading a relayed body too) is
//     Unavailable "timeout"; a connection error, a TLS failure, a malformed or oversized
//     answer, an informational final status or a bad answer as above is Unavailable
//     "unavailable"; the client going away first is Unavailable "canceled". The filter
//     answers Unavailable with 503: fail closed. SetLogger's logger gets the cause of each
//     at debug level.
//
// Forward auth never returns Skipped: there is no credential to look for, the service decides
// on whatever the request carries (a session cookie, nothing at all).
//
// Each Mechanism owns its HTTP/1.1 transport: its own idle pool (bounded, closed idle after
// IdleConnTimeout), a dial bounded by the timeout, TLS 1.2+ verified against the system roots
// for https, no proxy from the environment, no compression, no redirects followed, response
// heads of at most MaxResponseHeaderBytes, and at most MaxConnections connections so a slow
// auth service is not also flooded (a request waiting for one runs into its timeout). A URL
// with credentials (user:password@) is refused: they would not be sent. Close releases the
// idle connections.
package forward

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
	"golang.org/x/net/http/httpguts"
)

// Limits on what one auth service may make the gateway hold or open.
const (
	// MaxRelayedBody is the largest non-2xx body relayed to the client.
	MaxRelayedBody = 64 << 10
	// MaxIdentityLength bounds the identity header's value: it becomes a log field and a
	// rate limit key, so it is a name, not a payload.
	MaxIdentityLength = 512
	// MaxResponseHeaderBytes bounds the auth service's response head (net/http's default is
	// 10 MiB per answer), as the proxy's own client bounds an upstream's.
	MaxResponseHeaderBytes = 64 << 10
	// MaxIdleConnections is the idle pool kept to the auth service.
	MaxIdleConnections = 64
	// MaxConnections bounds the connections open to the auth service at once.
	MaxConnections = 512
	// IdleConnTimeout closes a pooled connection idle for longer.
	IdleConnTimeout = 30 * time.Second
	// drainLimit is how much of a 2xx body is read so its connection can be reused; a
	// longer body costs the connection instead.
	drainLimit = 64 << 10
)

// Reasons this mechanism returns besides the shared ones; see auth.Decision.Reason.
const (
	reasonOK          = "ok"
	reasonDenied      = "denied"
	reasonTimeout     = "timeout"
	reasonUnavailable = "unavailable"
	// reasonCanceled: the client went away before the auth service answered; like the
	// proxy's ErrCanceled, it is not the auth service's failure.
	reasonCanceled = "canceled"
)

// Mechanism is one route's forward auth. It is safe for concurrent use.
type Mechanism struct {
	template *http.Request // the subrequest without context and header, shared read-only
	// transport is used directly, not through an http.Client: a transport never follows a
	// redirect (the auth service's 302 to a login page is for the client), and the client's
	// redirect bookkeeping (a copy of the header map and URL per request) is not paid.
	transport       *http.Transport
	timeout         time.Duration
	requestHeaders  []string     // canonical, deduplicated
	responseHeaders []string     // canonical, deduplicated
	identityHeader  string       // canonical; "" when not configured
	sendsUserAgent  bool         // User-Agent is a configured request header
	log             *slog.Logger // causes of Unavailable decisions, at debug; nil: none
	closed          atomic.Bool
}

var _ auth.Mechanism = (*Mechanism)(nil)

// New builds the mechanism from cfg, whose defaults the config loader has applied. It
// refuses what it cannot run safely: a URL that is not absolute http or https, a timeout
// that is not positive, header names that are not tokens, request_headers the mechanism
// sets itself or that are hop-by-hop, response_headers the gateway manages, and an
// identity_header that is not one of response_headers.
func New(cfg *config.ForwardAuth) (*Mechanism, error) {
	if cfg == nil {
		return nil, errors.New("forward auth: no configuration")
	}
	target, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("forward auth: timeout %v: must be positive", cfg.Timeout)
	}
	var errs []error
	requestHeaders, err := headerNames("request_headers", cfg.RequestHeaders, unsendable)
	errs = append(errs, err)
	responseHeaders, err := headerNames("response_headers", cfg.ResponseHeaders, uncopyable)
	errs = append(errs, err)
	identity := ""
	if cfg.IdentityHeader != "" {
		identity = http.CanonicalHeaderKey(cfg.IdentityHeader)
		if !slices.Contains(responseHeaders, identity) {
			errs = append(errs, fmt.Errorf("forward auth: identity_header %q must be one of response_headers", cfg.IdentityHeader))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	transport := &http.Transport{
		Proxy:                  nil, // never HTTP_PROXY: the auth service is addressed directly
		DialContext:            (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12}, // nil RootCAs: the system's
		TLSHandshakeTimeout:    cfg.Timeout,
		DisableCompression:     true, // a relayed body goes out as it came, under its own Content-Encoding
		MaxIdleConns:           MaxIdleConnections,
		MaxIdleConnsPerHost:    MaxIdleConnections,
		MaxConnsPerHost:        MaxConnections,
		IdleConnTimeout:        IdleConnTimeout,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
	m := &Mechanism{
		template: &http.Request{
			Method:     http.MethodGet,
			URL:        target,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Host:       target.Host,
		},
		transport:       transport,
		timeout:         cfg.Timeout,
		requestHeaders:  requestHeaders,
		responseHeaders: responseHeaders,
		identityHeader:  identity,
		sendsUserAgent:  slices.Contains(requestHeaders, "User-Agent"),
	}
	return m, nil
}

// Name is config.AuthForward.
func (m *Mechanism) Name() string { return config.AuthForward }

// Challenge is always "": the auth service writes its own challenge, which is relayed.
func (m *Mechanism) Challenge(auth.Decision) string { return "" }

// IdentityHeaders are the response_headers, canonical: the fields set upstream on admission.
func (m *Mechanism) IdentityHeaders() []string { return slices.Clone(m.responseHeaders) }

// Close releases the idle connections to the auth service. Requests still running finish,
// and release their connection when they do. Close is idempotent and always returns nil.
func (m *Mechanism) Close() error {
	m.closed.Store(true)
	m.transport.CloseIdleConnections()
	return nil
}

// parseURL checks the auth service's URL: absolute http or https with a host.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("forward auth: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("forward auth: url %q: must be http:// or https://", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("forward auth: url %q: no host", raw)
	}
	if u.User != nil {
		// The transport would not send them, and a secret in a URL ends up in logs.
		return nil, fmt.Errorf("forward auth: url %q: credentials in the url are not supported", u.Redacted())
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("forward auth: url %q: a fragment is never sent; remove it", raw)
	}
	return u, nil
}

// headerNames canonicalizes and deduplicates names, refusing those that are not field names
// and those refused(name) explains.
func headerNames(field string, names []string, refused func(string) string) ([]string, error) {
	var out []string
	var errs []error
	for _, name := range names {
		if !httpguts.ValidHeaderFieldName(name) {
			errs = append(errs, fmt.Errorf("forward auth: %s: %q is not a valid header name", field, name))
			continue
		}
		name = http.CanonicalHeaderKey(name)
		if why := refused(name); why != "" {
			errs = append(errs, fmt.Errorf("forward auth: %s: %q %s", field, name, why))
			continue
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, errors.Join(errs...)
}

// unsendable says why a client field may not be listed in request_headers, or "".
func unsendable(name string) string {
	switch {
	case isHopByHop(name) || name == "Content-Length" || name == "Host":
		return "is hop-by-hop or framing; it is never sent"
	case isSetBySubrequest(name):
		return "is set by the gateway on every subrequest"
	}
	return ""
}

// uncopyable says why an auth service field may not be listed in response_headers, or "".
func uncopyable(name string) string {
	switch name {
	case "Content-Length", "Host", "X-Request-Id",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-Ip", "Forwarded":
		return "is managed by the gateway; it cannot be copied upstream"
	}
	if isHopByHop(name) {
		return "is hop-by-hop; it cannot be copied upstream"
	}
	return ""
}
