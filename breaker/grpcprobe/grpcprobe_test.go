package grpcprobe

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/grpctest"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The probe is what breaker.ActiveChecker.WithProbe takes.
var _ breaker.Probe = (*Probe)(nil)

// protocolsFor is a protocolTransport that answers every protocol with one client.
type protocolsFor struct{ rt http.RoundTripper }

func (p protocolsFor) For(upstream.Protocol, string) http.RoundTripper { return p.rt }

func (p protocolsFor) RoundTrip(r *http.Request) (*http.Response, error) { return p.rt.RoundTrip(r) }

// TestGRPCHealthProbe checks real grpc-go health servers, over h2c with the probe's own
// transport and over TLS through a given client.
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
			hc := &config.HealthCheck{GRPC: true, Service: c.service, Interval: time.Second}
			p := New(hc, c.client)
			defer p.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			m := upstream.Member{Endpoint: c.ep}
			ok, detail := p.Check(ctx, &m)
			if ok != c.pass || !strings.Contains(detail, c.detail) {
				t.Fatalf("probe = %v %q, want %v %q", ok, detail, c.pass, c.detail)
			}
		})
	}
}

// TestGRPCHealthCheckMarksDown runs a checker with the probe against a backend that stops
// serving, as the gateway wires them.
func TestGRPCHealthCheckMarksDown(t *testing.T) {
	b := grpctest.Start(t, grpctest.Options{})
	b.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_SERVING)
	hc := &config.HealthCheck{GRPC: true, Service: "users.v1.Users", Interval: 5 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2}
	hp := breaker.NewRoutePolicy("svc", &config.Policy{HealthCheck: hc}, nil, nil)
	pool := upstream.NewPool("svc", lb.RoundRobin{}, upstream.PoolOptions{Health: hp})
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		breaker.NewActiveChecker(pool, hc, nil, nil, nil).WithProbe(New(hc, nil)).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done }) // no probe outlives the backends
	b.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_NOT_SERVING)
	eventually(t, "endpoint marked unhealthy", func() bool { return !h.Available() })
	b.Health.SetServingStatus("users.v1.Users", healthpb.HealthCheckResponse_SERVING)
	eventually(t, "endpoint healthy again", h.Available)
}

// eventually waits up to 10s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
