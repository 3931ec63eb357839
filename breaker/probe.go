package breaker

import (
	"context"
	"net/http"

	"github.com/switchyard/switchyard/upstream"
)

// Probe checks one endpoint once for an ActiveChecker. ctx carries the check's timeout;
// detail says what was seen (a status, an error) and is logged when the endpoint's state
// flips. A Probe is called for many endpoints at once and must be safe for that.
//
// A Probe that also has a CloseIdleConnections() method has it called when the checker's Run
// returns, so a probe with a transport of its own does not leave connections behind.
type Probe interface {
	Check(ctx context.Context, m *upstream.Member) (passed bool, detail string)
}

// ProbeFunc adapts a function to a Probe.
type ProbeFunc func(ctx context.Context, m *upstream.Member) (passed bool, detail string)

// Check calls f.
func (f ProbeFunc) Check(ctx context.Context, m *upstream.Member) (bool, string) { return f(ctx, m) }

// idleCloser is the optional part of a Probe (see Probe).
type idleCloser interface{ CloseIdleConnections() }

// protocolTransport is implemented by the gateway's upstream client (proxy.Transport): it
// returns the client for an endpoint's protocol.
type protocolTransport interface {
	For(p upstream.Protocol, scheme string) http.RoundTripper
}

// WithProbe replaces the checker's probe (a GET of the configured path) with p: how gRPC
// backends are checked (breaker/grpcprobe) without this package linking gRPC. It returns c.
func (c *ActiveChecker) WithProbe(p Probe) *ActiveChecker {
	c.probe = p
	return c
}

// WithProtocol sets the upstream_protocol of the route the checker's pool serves, so HTTP
// checks speak each endpoint's protocol (see upstream.Endpoint.Resolve); the default is
// auto. It returns c.
func (c *ActiveChecker) WithProtocol(p upstream.Protocol) *ActiveChecker {
	c.protocol = p
	return c
}

// noGRPCProbe is the probe of a grpc health check nobody plugged the gRPC probe into: it
// fails, so the mistake shows in the log and /admin/upstreams instead of a GET of "/" that
// might pass.
func noGRPCProbe(context.Context, *upstream.Member) (bool, string) {
	return false, "grpc health check without a gRPC probe (ActiveChecker.WithProbe, breaker/grpcprobe)"
}
