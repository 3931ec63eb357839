package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/grpctest"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// cannedGRPC answers every request with one 64-byte gRPC message and grpc-status 0 in the
// trailers, from memory: the handler's own per-call work on the gRPC path without the
// network. A benchmark fixture.
type cannedGRPC struct{ body []byte }

func (c cannedGRPC) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/2.0", ProtoMajor: 2,
		Header:        http.Header{"Content-Type": {"application/grpc"}},
		Trailer:       http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {""}},
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: -1,
		Request:       r,
	}, nil
}

// BenchmarkHandlerGRPC is the handler's own cost per unary gRPC call (compare
// BenchmarkHandler/features-off for HTTP): header checks, grpc-timeout, status from the
// trailers, trailer relay, metrics.
func BenchmarkHandlerGRPC(b *testing.B) {
	for _, tc := range []struct {
		name    string
		timeout string
	}{{"no-deadline", ""}, {"grpc-timeout", "5S"}} {
		b.Run(tc.name, func(b *testing.B) {
			msg := append([]byte{0, 0, 0, 0, 64}, make([]byte, 64)...)
			h := New(Options{Transport: cannedGRPC{body: msg}, Metrics: NewMetrics(nil)})
			rt := routeSpec{prefix: "/users.v1.Users", backends: []string{"127.0.0.1:9", "127.0.0.1:10"}, timeout: 30 * time.Second}.build(b)
			h.SetTable(NewTable(append(makeRoutes(100), rt), nil))
			body := bytes.NewReader(msg)
			req := httptest.NewRequest(http.MethodPost, "http://gw.test/users.v1.Users/Get", body)
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			req.Header.Set("User-Agent", "grpc-go/1.83.2")
			if tc.timeout != "" {
				req.Header.Set("Grpc-Timeout", tc.timeout)
			}
			w := &discardWriter{h: make(http.Header, 8)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				body.Reset(msg)
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkGRPCUnary is a whole unary call on loopback, with a grpc-go client and server in
// this process: straight to the server, and through the handler on an h2c listener (so
// ns/op and allocs/op include the client's and server's own). Calls run one at a time.
func BenchmarkGRPCUnary(b *testing.B) {
	backend := grpctest.Start(b, grpctest.Options{})
	addr, _ := grpcGatewayB(b, routeSpec{prefix: "/", protocol: "h2c", timeout: 30 * time.Second, backends: []string{backend.Addr}}.build(b))
	req := &testpb.SimpleRequest{ResponseSize: 64, Payload: &testpb.Payload{Body: make([]byte, 64)}}
	for _, target := range []struct{ name, addr string }{{"direct", backend.Addr}, {"gateway", addr}} {
		b.Run(target.name, func(b *testing.B) {
			client := testpb.NewTestServiceClient(grpctest.Dial(b, target.addr, nil))
			ctx := context.Background()
			if _, err := client.UnaryCall(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.UnaryCall(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
