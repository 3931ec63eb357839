// Package grpcprobe is the active health check of gRPC backends: one
// grpc.health.v1.Health/Check call per endpoint and round, over HTTP/2 (h2c for plain
// endpoints, TLS with ALPN h2 for https ones), through the gateway's own upstream clients when
// it is given them. It is a breaker.Probe, plugged in with breaker.ActiveChecker.WithProbe; it
// lives apart from package breaker so that breaker's users (client/httpclient) link no gRPC.
package grpcprobe

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// protocolTransport is implemented by the gateway's upstream client (proxy.Transport): it
// returns the client for an endpoint's protocol.
type protocolTransport interface {
	For(p upstream.Protocol, scheme string) http.RoundTripper
}

// grpcCheckPath is the method the check calls.
const grpcCheckPath = "/grpc.health.v1.Health/Check"

// maxHealthAnswer bounds the Check answer read: a HealthCheckResponse is a few bytes.
const maxHealthAnswer = 4 << 10

// Probe calls Health/Check for one service; it is a breaker.Probe. Its zero value is not
// usable: make one with New.
type Probe struct {
	service string
	client  *http.Client    // the caller's; nil when the probe has its own transport
	own     *http.Transport // HTTP/2 only; nil when the caller gave a client
}

// New returns the probe of hc's service (hc.Service, "" for the whole server), completed with
// config.WithDefaults. client is the gateway's health client (its transport chooses the
// HTTP/2 client per endpoint when it is the proxy's); nil makes the probe a private HTTP/2
// transport whose idle connections CloseIdleConnections closes.
func New(hc *config.HealthCheck, client *http.Client) *Probe {
	hc = config.WithDefaults(hc)
	p := &Probe{service: hc.Service, client: client}
	if client == nil {
		p.own = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * hc.Interval, Protocols: new(http.Protocols)}
		p.own.Protocols.SetHTTP2(true)
		p.own.Protocols.SetUnencryptedHTTP2(true)
	}
	return p
}

// CloseIdleConnections closes the idle connections of the probe's own transport, if it has
// one; the checker calls it when its Run returns.
func (p *Probe) CloseIdleConnections() {
	if p.own != nil {
		p.own.CloseIdleConnections()
	}
}

// roundTripper is the client for a probe of m: the gateway's HTTP/2 client for the endpoint
// when the probe has it, else the probe's own.
func (p *Probe) roundTripper(m *upstream.Member) http.RoundTripper {
	switch {
	case p.own != nil:
		return p.own
	case p.client.Transport == nil:
		return http.DefaultTransport
	}
	if pt, ok := p.client.Transport.(protocolTransport); ok {
		return pt.For(upstream.ProtocolH2C, m.Scheme) // HTTP/2: h2c for a plain endpoint, TLS h2 for https
	}
	return p.client.Transport
}

// Check calls Health/Check for the probe's service on m; it passes when the answer is SERVING
// with grpc-status 0. ctx carries the check's timeout.
func (p *Probe) Check(ctx context.Context, m *upstream.Member) (passed bool, detail string) {
	msg, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: p.service})
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
	res, err := p.roundTripper(m).RoundTrip(req)
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
