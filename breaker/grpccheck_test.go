package breaker

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/grpctest"
	"github.com/switchyard/switchyard/upstream"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// protocolsFor is a protocolTransport that answers every protocol with one client.
type protocolsFor struct{ rt http.RoundTripper }

func (p protocolsFor) For(upstream.Protocol, string) http.RoundTripper { return p.rt }

func (p protocolsFor) RoundTrip(r *http.Request) (*http.Response, error) { return p.rt.RoundTrip(r) }

// TestGRPCHealthProbe checks real grpc-go health servers, over h2c with the checker's own
// client and over TLS through a given client.
func TestGRPCHealthProbe(t *testing.T) {
	cert := grpctest.NewCert(t)
	plain := grpctest.Start(t, grpctest.Options{})
	secure := grpctest.Start(t, grpctest.Options{TLS: cert.ServerTLS()})
	plain.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_SERVING)
	plain.Health.SetServingStatus("orders.v1.Orders", healthpb.HealthCheckResponse_NOT_SERVING)
	notGRPC := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notGRPC.Close)
	notGRPCAddr, _ := url.Parse(notGRPC.URL)
	tlsTransport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Roots, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	t.Cleanup(tlsTransport.CloseIdleConnections)
	tlsClient := &http.Client{Transport: protocolsFor{tlsTransport}}

	for _, c := range []struct {
		name    string
		ep      upstream.Endpoint
		service string
		client  *http.Client
		pass    bool
		detail  string
	}{
		{"server serving", upstream.Endpoint{Key: plain.Addr, Scheme: "http"}, "", nil, true, "SERVING"},
		{"service serving", upstream.Endpoint{Key: plain.Addr, Scheme: "http"}, "users.v1.Users", nil, true, "SERVING"},
		{"service not serving", upstream.Endpoint{Key: plain.Addr, Scheme: "http"}, "orders.v1.Orders", nil, false, "NOT_SERVING"},
		{"unknown service", upstream.Endpoint{Key: plain.Addr, Scheme: "http"}, "nope.v1.Nope", nil, false, "grpc-status 5"},
		{"tls", upstream.Endpoint{Key: secure.Addr, Scheme: "https"}, "", tlsClient, true, "SERVING"},
		{"not a gRPC server", upstream.Endpoint{Key: notGRPCAddr.Host, Scheme: "http"}, "", nil, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			pool := upstream.NewPool("svc", rrBuilder{}, upstream.PoolOptions{})
			hc := &config.HealthCheck{GRPC: true, Service: c.service, Interval: time.Second, Timeout: 2 * time.Second}
			ch := NewActiveChecker(pool, hc, c.client, nil, nil)
			m := upstream.Member{Endpoint: c.ep}
			ok, detail := ch.probeGRPC(context.Background(), &m)
			if ok != c.pass || !strings.Contains(detail, c.detail) {
				t.Fatalf("probe = %v %q, want %v %q", ok, detail, c.pass, c.detail)
			}
			if ch.ownHTTP2 != nil {
				ch.ownHTTP2.CloseIdleConnections()
			}
			if ch.ownTransport != nil {
				ch.ownTransport.CloseIdleConnections()
			}
		})
	}
}

// TestGRPCHealthCheckMarksDown runs the checker against a backend that stops serving.
func TestGRPCHealthCheckMarksDown(t *testing.T) {
	b := grpctest.Start(t, grpctest.Options{})
	b.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_SERVING)
	hc := &config.HealthCheck{GRPC: true, Service: "users.v1.Users", Interval: 5 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2}
	hp := NewRoutePolicy("svc", &config.Policy{HealthCheck: hc}, nil, nil)
	pool := upstream.NewPool("svc", rrBuilder{}, upstream.PoolOptions{Health: hp})
	// A second, healthy endpoint keeps the pool out of panic mode.
	other := grpctest.Start(t, grpctest.Options{})
	other.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_SERVING)
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{{Key: b.Addr}, {Key: other.Addr}}))
	var h upstream.Health
	for _, m := range pool.View().Members {
		if m.Key == b.Addr {
			h = m.State.Health()
		}
	}
	runChecker(t, pool, hc, nil)
	b.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_NOT_SERVING)
	eventually(t, "endpoint marked unhealthy", func() bool { return !h.Available() })
	b.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_SERVING)
	eventually(t, "endpoint healthy again", h.Available)
}
