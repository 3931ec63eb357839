package breaker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"

	"github.com/switchyard/switchyard/upstream"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// This file is the active check of gRPC backends: one grpc.health.v1.Health/Check call per
// endpoint and round, over HTTP/2 (h2c for plain endpoints, TLS with ALPN h2 for https
// ones), through the gateway's own upstream clients when the checker was given them.

// protocolTransport is implemented by the gateway's upstream client (proxy.Transport): it
// returns the client for an endpoint's protocol.
type protocolTransport interface {
	For(p upstream.Protocol, scheme string) http.RoundTripper
}

// grpcCheckPath is the method the check calls.
const grpcCheckPath = "/grpc.health.v1.Health/Check"

// maxHealthAnswer bounds the Check answer read: a HealthCheckResponse is a few bytes.
const maxHealthAnswer = 4 << 10

// WithProtocol sets the upstream_protocol of the route the checker's pool serves, so HTTP
// checks speak each endpoint's protocol (see upstream.Endpoint.Resolve); the default is
// auto. It returns c.
func (c *ActiveChecker) WithProtocol(p upstream.Protocol) *ActiveChecker {
	c.protocol = p
	return c
}

// roundTripper is the client for a probe of m: the gateway's client for the endpoint's
// protocol (HTTP/2 always for gRPC checks) when the checker has it, else the checker's own.
func (c *ActiveChecker) roundTripper(m *upstream.Member) http.RoundTripper {
	p := m.Resolve(c.protocol)
	if c.grpc {
		p = upstream.ProtocolH2C // HTTP/2: h2c for a plain endpoint, TLS h2 for https
	}
	if pt, ok := c.client.Transport.(protocolTransport); ok {
		return pt.For(p, m.Scheme)
	}
	if c.grpc && c.ownHTTP2 != nil {
		return c.ownHTTP2
	}
	if c.client.Transport != nil {
		return c.client.Transport
	}
	return http.DefaultTransport
}

// probeGRPC calls Health/Check for the configured service on m; it passes when the answer
// is SERVING with grpc-status 0.
func (c *ActiveChecker) probeGRPC(ctx context.Context, m *upstream.Member) (ok bool, detail string) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: c.service})
	if err != nil {
		return false, err.Error()
	}
	body := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	body = append(body, msg...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Scheme+"://"+m.Key+grpcCheckPath, bytes.NewReader(body))
	if err != nil {
		return false, err.Error()
	}
	req.Header["Content-Type"] = []string{"application/grpc"}
	req.Header["Te"] = []string{"trailers"}
	req.Header["User-Agent"] = []string{"switchyard-health-check"}
	res, err := c.roundTripper(m).RoundTrip(req)
	if err != nil {
		return false, err.Error()
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, maxHealthAnswer))
	if err != nil {
		return false, err.Error()
	}
	if res.StatusCode != http.StatusOK {
		return false, res.Status
	}
	grpcStatus := res.Trailer.Get("Grpc-Status")
	if grpcStatus == "" {
		grpcStatus = res.Header.Get("Grpc-Status") // Trailers-Only
	}
	if grpcStatus != "0" {
		return false, fmt.Sprintf("grpc-status %s: %s", grpcStatus, truncate(res.Trailer.Get("Grpc-Message")+res.Header.Get("Grpc-Message"), 128))
	}
	st, err := parseHealthAnswer(answer)
	if err != nil {
		return false, err.Error()
	}
	return st == healthpb.HealthCheckResponse_SERVING, st.String()
}

// parseHealthAnswer reads the one length-prefixed, uncompressed HealthCheckResponse of a
// Check answer.
func parseHealthAnswer(b []byte) (healthpb.HealthCheckResponse_ServingStatus, error) {
	if len(b) < 5 {
		return 0, fmt.Errorf("health answer of %d bytes has no message", len(b))
	}
	if b[0] != 0 {
		return 0, fmt.Errorf("health answer is compressed (flag %d); checks ask for none", b[0])
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if uint64(n) != uint64(len(b)-5) {
		return 0, fmt.Errorf("health answer framing: message of %d bytes in %d", n, len(b)-5)
	}
	var res healthpb.HealthCheckResponse
	if err := proto.Unmarshal(b[5:], &res); err != nil {
		return 0, fmt.Errorf("health answer: %w", err)
	}
	return res.GetStatus(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
