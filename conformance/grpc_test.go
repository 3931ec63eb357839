package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/grpctest"
	"github.com/switchyard/switchyard/register"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestGRPC runs a stock grpc-go client and server through the gateway binary: every call
// kind over h2c on both sides and over TLS on both sides (the backend named by an h2c://
// URL, by upstream_protocol: h2, and by a registry entry's "protocol" metadata); a deadline
// and a cancel reaching the backend; a backend killed mid-stream; an UNAVAILABLE backend
// ejected by passive health; a backend failing its gRPC health check taken out of the pool;
// and the access log and metrics showing the gRPC status.
func TestGRPC(t *testing.T) {
	t.Parallel()
	cert := grpctest.NewCert(t)

	t.Run("h2c", func(t *testing.T) {
		t.Parallel()
		b := grpctest.Start(t, grpctest.Options{})
		gw := startGateway(t, gatewaySpec{routes: fmt.Sprintf("  - { prefix: /, upstreams: [%q] }\n", "h2c://"+b.Addr)})
		grpctest.Exercise(t, grpctest.Dial(t, gw.addr, nil))
	})

	t.Run("tls", func(t *testing.T) {
		t.Parallel()
		b := grpctest.Start(t, grpctest.Options{TLS: cert.ServerTLS()})
		gw := startGateway(t, gatewaySpec{
			server: fmt.Sprintf("tls: { cert_file: %q, key_file: %q }", cert.CertFile, cert.KeyFile),
			top:    fmt.Sprintf("transport: { tls: { ca_file: %q } }\n", cert.CAFile),
			routes: fmt.Sprintf("  - { prefix: /, upstreams: [%q], upstream_protocol: h2 }\n", "https://"+b.Addr)})
		grpctest.Exercise(t, grpctest.Dial(t, gw.addr, cert.Roots))
	})

	t.Run("registry metadata", func(t *testing.T) {
		t.Parallel()
		b := grpctest.Start(t, grpctest.Options{})
		gw := startGateway(t, gatewaySpec{routes: "  - { prefix: /, service: users }\n"})
		// Registered as a gRPC service registers itself: its metadata says it speaks h2c.
		reg, err := register.Open("etcd://"+strings.TrimPrefix(gw.etcd, "http://"),
			register.Instance{Service: "users", Address: b.Addr, Meta: map[string]string{register.MetaProtocol: "h2c"}},
			register.Options{TTL: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Register(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = reg.Deregister(context.Background()) })
		cc := grpctest.Dial(t, gw.addr, nil)
		if err := waitUntil(10*time.Second, func() error {
			_, err := testpb.NewTestServiceClient(cc).EmptyCall(context.Background(), &testpb.Empty{})
			if status.Code(err) != codes.Unimplemented { // the backend's own answer: reached
				return fmt.Errorf("call: %v", err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		grpctest.Exercise(t, cc)
	})

	t.Run("deadline, cancel and a backend killed mid-stream", func(t *testing.T) {
		t.Parallel()
		b := grpctest.Start(t, grpctest.Options{})
		gw := startGateway(t, gatewaySpec{routes: fmt.Sprintf("  - { prefix: /, upstreams: [%q] }\n", "h2c://"+b.Addr)})
		client := testpb.NewTestServiceClient(grpctest.Dial(t, gw.addr, nil))
		signal := func(c <-chan struct{}, what string) {
			t.Helper()
			select {
			case <-c:
			case <-time.After(10 * time.Second):
				t.Fatal(what)
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := client.UnaryCall(ctx, grpctest.Block())
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("call past its deadline: %v", err)
		}
		signal(b.Started(), "the call never reached the backend")
		signal(b.Canceled(), "the deadline did not end the backend's call")

		ctx, cancel = context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := client.UnaryCall(ctx, grpctest.Block()); errc <- err }()
		signal(b.Started(), "the call never reached the backend")
		cancel()
		signal(b.Canceled(), "the client's cancel did not reach the backend")
		if err := <-errc; status.Code(err) != codes.Canceled {
			t.Fatalf("canceled call: %v", err)
		}

		bidi, err := client.FullDuplexCall(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 8}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := bidi.Recv(); err != nil {
			t.Fatal(err)
		}
		b.Stop()
		_, err = bidi.Recv()
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "upstream broke mid-stream") {
			t.Fatalf("stream whose backend died: %v, want the gateway's UNAVAILABLE", err)
		}
	})

	t.Run("unavailable ejected and logged", func(t *testing.T) {
		t.Parallel()
		bad := grpctest.Start(t, grpctest.Options{Name: "bad"})
		good := grpctest.Start(t, grpctest.Options{Name: "good"})
		bad.FailWith(codes.Unavailable)
		gw := startGateway(t, gatewaySpec{server: "access_log: true", flags: []string{"-log-format", "json"},
			defaults: "defaults: { passive_health: { consecutive_failures: 2, ejection_time: 1m }, breaker: { enabled: false }, retry: { enabled: false } }\n",
			routes:   fmt.Sprintf("  - { prefix: /, upstreams: [%q, %q] }\n", "h2c://"+bad.Addr, "h2c://"+good.Addr)})
		client := testpb.NewTestServiceClient(grpctest.Dial(t, gw.addr, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var unavailable int
		for range 10 {
			res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			switch {
			case status.Code(err) == codes.Unavailable:
				unavailable++
			case err != nil || res.GetUsername() != "good":
				t.Fatalf("call: %v (answered by %q)", err, res.GetUsername())
			}
		}
		if unavailable != 2 {
			t.Errorf("%d calls failed, want 2: the failing backend ejected after its second UNAVAILABLE", unavailable)
		}
		calls := bad.Calls()
		for range 10 {
			if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
				t.Fatalf("after ejection: %v", err)
			}
		}
		if bad.Calls() != calls {
			t.Errorf("the ejected backend got %d more calls", bad.Calls()-calls)
		}

		var statuses []string
		if err := waitUntil(readTimeout, func() error {
			statuses = statuses[:0]
			for _, l := range logged(gatewayLines(gw.jsonLog(t)), "access") {
				statuses = append(statuses, l.str("grpc_status"))
			}
			if len(statuses) < 20 {
				return fmt.Errorf("%d access lines", len(statuses))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(strings.Join(statuses, " "), "UNAVAILABLE"); got != 2 || strings.Count(strings.Join(statuses, " "), "OK") != 18 {
			t.Errorf("access log grpc_status values %v, want 2 UNAVAILABLE and 18 OK", statuses)
		}
		_, body, err := get(gw.admin, gw.admin, "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`switchyard_grpc_responses_total{code="UNAVAILABLE",route="/"} 2`, `switchyard_grpc_responses_total{code="OK",route="/"} 18`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("auth and rate limit refusals", func(t *testing.T) {
		t.Parallel()
		b := grpctest.Start(t, grpctest.Options{})
		sum := sha256.Sum256([]byte("sk-grpc"))
		keys := filepath.Join(t.TempDir(), "keys.yaml")
		writeFile(t, keys, "keys:\n  - { name: grpc, sha256: "+hex.EncodeToString(sum[:])+" }\n")
		gw := startGateway(t, gatewaySpec{routes: fmt.Sprintf(
			"  - { prefix: /, upstreams: [%q], auth: { api_key: { keys_file: %q } }, rate_limit: { rps: 0.01, burst: 1, key: identity } }\n",
			"h2c://"+b.Addr, keys)})
		client := testpb.NewTestServiceClient(grpctest.Dial(t, gw.addr, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), "request id") {
			t.Fatalf("call without a key: %v, want UNAUTHENTICATED from the gateway", err)
		}
		keyed := metadata.AppendToOutgoingContext(ctx, "x-api-key", "sk-grpc")
		if _, err := client.UnaryCall(keyed, &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("call with the key: %v", err)
		}
		_, err = client.UnaryCall(keyed, &testpb.SimpleRequest{}) // the burst of 1 is spent
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "rate limited") {
			t.Fatalf("call over the rate limit: %v, want RESOURCE_EXHAUSTED", err)
		}
	})

	t.Run("grpc health check", func(t *testing.T) {
		t.Parallel()
		sick := grpctest.Start(t, grpctest.Options{Name: "sick"})
		well := grpctest.Start(t, grpctest.Options{Name: "well"})
		sick.Health.SetServingStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_NOT_SERVING)
		well.Health.SetServingStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_SERVING)
		gw := startGateway(t, gatewaySpec{routes: fmt.Sprintf(
			"  - { prefix: /, upstreams: [%q, %q], health_check: { grpc: true, service: grpc.testing.TestService, interval: 50ms, unhealthy_threshold: 1 } }\n",
			"h2c://"+sick.Addr, "h2c://"+well.Addr)})
		client := testpb.NewTestServiceClient(grpctest.Dial(t, gw.addr, nil))
		// Once the first round has marked it down, the sick backend gets no call.
		if err := waitUntil(10*time.Second, func() error {
			for range 4 {
				res, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
				if err != nil || res.GetUsername() != "well" {
					return fmt.Errorf("answered by %q: %v", res.GetUsername(), err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}
