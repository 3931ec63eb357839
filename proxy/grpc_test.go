package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/internal/grpctest"
	"github.com/switchyard/switchyard/upstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcGateway serves routes through a Handler over HTTP/2: h2c, or TLS with cert when cert
// is non-nil. The upstream clients trust caFile ("" for system roots). It returns the
// gateway's address and its handler.
func grpcGateway(t *testing.T, cert *grpctest.Cert, caFile string, routes ...*Route) (string, *Handler) {
	t.Helper()
	return grpcGatewayOn(t, cert, caFile, routes...)
}

// grpcGatewayPaced is grpcGateway (h2c) with client pacing.
func grpcGatewayPaced(t *testing.T, pacing *ClientPacing, routes ...*Route) string {
	t.Helper()
	addr, h := grpcGatewayOn(t, nil, "", routes...)
	h.pacing = pacing
	return addr
}

// grpcGatewayB is grpcGateway for benchmarks: h2c, system roots.
func grpcGatewayB(b *testing.B, routes ...*Route) (string, *Handler) {
	b.Helper()
	return grpcGatewayOn(b, nil, "", routes...)
}

func grpcGatewayOn(t testing.TB, cert *grpctest.Cert, caFile string, routes ...*Route) (string, *Handler) {
	t.Helper()
	tc := config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	if caFile != "" {
		tc.TLS = &config.TLS{CAFile: caFile}
	}
	tr, err := NewTransport(tc)
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Transport: tr})
	h.SetTable(NewTable(routes, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if cert != nil {
			_ = srv.ServeTLS(lis, "", "")
		} else {
			_ = srv.Serve(lis)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		tr.CloseIdleConnections()
	})
	return lis.Addr().String(), h
}

// grpcRoute is a route to backends over protocol with retries off unless retry is set.
func grpcRoute(t *testing.T, prefix, protocol string, retry *config.Retry, policy *recordingPolicy, backends ...string) *Route {
	t.Helper()
	retries := 0
	if retry != nil {
		retries = 2
	}
	return routeSpec{prefix: prefix, protocol: protocol, timeout: 5 * time.Second, retry: retry, retries: retries,
		policy: policy, backends: backends}.build(t)
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGRPCCallKinds runs every kind of gRPC call through the gateway, over h2c on both sides
// and over TLS on both sides: unary, a 4 MiB message each way, server, client and
// bidirectional streams (lock step: each message must arrive before the next is sent, so a
// relay that buffered instead of flushing per message would hang), a status error the
// backend answers Trailers-Only, and the standard health service.
func TestGRPCCallKinds(t *testing.T) {
	cert := grpctest.NewCert(t)
	for _, tc := range []struct {
		name     string
		tls      bool
		protocol string
	}{
		{"h2c", false, "h2c"},
		{"h2c declared by the endpoint", false, ""},
		{"tls", true, "h2"},
		{"tls by alpn", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var backendTLS *tls.Config
			var roots *x509.CertPool
			var gwCert *grpctest.Cert
			caFile, scheme := "", ""
			if tc.tls {
				backendTLS, roots, gwCert, caFile, scheme = cert.ServerTLS(), cert.Roots, &cert, cert.CAFile, "https"
			}
			b := grpctest.Start(t, grpctest.Options{TLS: backendTLS})
			spec := routeSpec{prefix: "/", protocol: tc.protocol, scheme: scheme, timeout: 5 * time.Second, backends: []string{b.Addr}}
			rt := spec.build(t)
			if tc.protocol == "" && !tc.tls {
				// Declared by the endpoint, as a registry entry's meta would.
				rt = declaredH2C(t, spec, b.Addr)
			}
			addr, _ := grpcGateway(t, gwCert, caFile, rt)
			cc := grpctest.Dial(t, addr, roots)
			client := testpb.NewTestServiceClient(cc)
			ctx := callCtx(t)

			res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10})
			if err != nil || len(res.GetPayload().GetBody()) != 10 {
				t.Fatalf("unary: %v, %d bytes", err, len(res.GetPayload().GetBody()))
			}

			big := make([]byte, 4<<20)
			res, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 4 << 20, Payload: &testpb.Payload{Body: big}})
			if err != nil || len(res.GetPayload().GetBody()) != 4<<20 {
				t.Fatalf("4 MiB each way: %v", err)
			}

			out, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
				ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}}})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 3; i++ {
				m, err := out.Recv()
				if err != nil || len(m.GetPayload().GetBody()) != i {
					t.Fatalf("server stream message %d: %v", i, err)
				}
			}
			if _, err := out.Recv(); err != io.EOF {
				t.Fatalf("server stream end: %v, want EOF (status OK in the trailers)", err)
			}

			in, err := client.StreamingInputCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{5, 6, 7} {
				if err := in.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := in.CloseAndRecv()
			if err != nil || sum.GetAggregatedPayloadSize() != 18 {
				t.Fatalf("client stream: %v, sum %d", err, sum.GetAggregatedPayloadSize())
			}

			bidi, err := client.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 5; i++ {
				if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(i)}}}); err != nil {
					t.Fatal(err)
				}
				m, err := bidi.Recv()
				if err != nil || len(m.GetPayload().GetBody()) != i {
					t.Fatalf("bidi round %d: %v", i, err)
				}
			}
			if err := bidi.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := bidi.Recv(); err != io.EOF {
				t.Fatalf("bidi end: %v", err)
			}

			_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such user: ü"}})
			if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such user: ü" {
				t.Fatalf("trailers-only error: %v", err)
			}

			// A server stream without messages: the OK status alone must arrive.
			empty, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := empty.Recv(); err != io.EOF {
				t.Fatalf("empty server stream: %v %v, want EOF (status OK)", m, err)
			}

			hc, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health: %v %v", hc, err)
			}
		})
	}
}

// declaredH2C rebuilds spec's route with its endpoint declaring h2c in its metadata.
func declaredH2C(t *testing.T, spec routeSpec, addr string) *Route {
	t.Helper()
	rt := spec.build(t)
	snap := rt.Pool.View().Snapshot.Endpoints()
	eps := append(snap[:0:0], snap...)
	eps[0].Meta = map[string]string{"protocol": "h2c"}
	eps[0].Protocol = 0 // as a registry reader leaves it before NewSnapshot
	rt.Pool.Update(upstream.NewSnapshot(eps))
	if rt.Pool.View().Members[0].Key != addr {
		t.Fatal("pool lost the endpoint")
	}
	return rt
}

// TestGRPCRoutesPerServiceAndMetadata routes two gRPC services of one gateway to different
// backends by path prefix (/grpc.testing.TestService/ and /grpc.health.v1.Health/), and
// one service's calls by a header matcher on gRPC metadata.
func TestGRPCRoutesPerServiceAndMetadata(t *testing.T) {
	tests := grpctest.Start(t, grpctest.Options{Name: "tests"})
	canary := grpctest.Start(t, grpctest.Options{Name: "canary"})
	health := grpctest.Start(t, grpctest.Options{Name: "health"})
	health.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	canaryRoute := routeSpec{prefix: "/grpc.testing.TestService", protocol: "h2c", timeout: 5 * time.Second, backends: []string{canary.Addr}}.build(t)
	canaryRoute.Name = "canary"
	canaryRoute.conditions = newConditions(&config.Match{Headers: map[string]config.ValueMatch{"X-Track": {Exact: "canary"}}}, false)
	addr, _ := grpcGateway(t, nil, "",
		canaryRoute,
		routeSpec{prefix: "/grpc.testing.TestService", protocol: "h2c", timeout: 5 * time.Second, backends: []string{tests.Addr}}.build(t),
		routeSpec{prefix: "/grpc.health.v1.Health", protocol: "h2c", timeout: 5 * time.Second, backends: []string{health.Addr}}.build(t),
	)
	cc := grpctest.Dial(t, addr, nil)
	ctx := callCtx(t)
	res, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
	if err != nil || res.GetUsername() != "tests" {
		t.Fatalf("TestService call answered by %q: %v", res.GetUsername(), err)
	}
	res, err = testpb.NewTestServiceClient(cc).UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-track", "canary"), &testpb.SimpleRequest{})
	if err != nil || res.GetUsername() != "canary" {
		t.Fatalf("call with x-track: canary answered by %q: %v", res.GetUsername(), err)
	}
	hc, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health call went to the wrong backend: %v %v", hc, err)
	}
	// A service no route serves: the gateway's 404, as gRPC's UNIMPLEMENTED.
	err = cc.Invoke(ctx, "/other.v1.Other/Get", &testpb.SimpleRequest{}, &testpb.SimpleResponse{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "no route") {
		t.Fatalf("unrouted service: %v", err)
	}
}

// TestGRPCGatewayErrorsAreGRPCStatuses checks the gateway's own answers to gRPC requests:
// a status (never a JSON body) that names the request id, for a dead upstream, a refused
// request (a filter's 401, 403 and 429) and an upstream that takes too long.
func TestGRPCGatewayErrorsAreGRPCStatuses(t *testing.T) {
	slow := grpctest.Start(t, grpctest.Options{})
	slowRoute := routeSpec{prefix: "/grpc.testing.TestService/UnaryCall", protocol: "h2c", timeout: 200 * time.Millisecond, backends: []string{slow.Addr}}.build(t)
	refused := func(status int) *Route {
		return routeSpec{prefix: "/refused" + http.StatusText(status)[:3], protocol: "h2c", backends: []string{slow.Addr},
			filters: &filter.Chain{Request: []filter.RequestFilter{refuseWith(status)}}}.build(t)
	}
	addr, _ := grpcGateway(t, nil, "",
		slowRoute,
		routeSpec{prefix: "/grpc.testing.TestService", protocol: "h2c", backends: []string{deadAddr(t)}}.build(t),
		refused(http.StatusUnauthorized), refused(http.StatusForbidden), refused(http.StatusTooManyRequests),
	)
	cc := grpctest.Dial(t, addr, nil)
	ctx := callCtx(t)
	for _, c := range []struct {
		method string
		want   codes.Code
		text   string
	}{
		{"/grpc.testing.TestService/EmptyCall", codes.Unavailable, "upstream unreachable"},
		{"/grpc.testing.TestService/UnaryCall", codes.DeadlineExceeded, "upstream timeout"},
		{"/refusedUna/x", codes.Unauthenticated, "unauthorized"},
		{"/refusedFor/x", codes.PermissionDenied, "forbidden"},
		{"/refusedToo/x", codes.ResourceExhausted, "rate limited"},
	} {
		var hdr metadata.MD // a Trailers-Only answer's header block is the call's trailer
		var req any = &testpb.Empty{}
		if strings.HasSuffix(c.method, "UnaryCall") {
			req = grpctest.Block()
		}
		err := cc.Invoke(ctx, c.method, req, &testpb.Empty{}, grpc.Trailer(&hdr))
		st := status.Convert(err)
		if st.Code() != c.want || !strings.Contains(st.Message(), c.text) || !strings.Contains(st.Message(), "request id ") {
			t.Errorf("%s: %v, want %v with %q and the request id", c.method, err, c.want, c.text)
		}
		if ids := hdr.Get("x-request-id"); len(ids) != 1 || !strings.Contains(st.Message(), ids[0]) {
			t.Errorf("%s: x-request-id %v not in the message %q", c.method, ids, st.Message())
		}
	}
	select {
	case <-slow.Canceled(): // the gateway's timeout ended the upstream call too
	case <-time.After(5 * time.Second):
		t.Error("the backend's call did not end when the gateway timed out")
	}
}

// refuseWith is a request filter that refuses every request with status.
type refuseWith int

func (s refuseWith) ServeRequest(w http.ResponseWriter, _ *http.Request, q *filter.Request) bool {
	q.Refuse(w, int(s))
	return false
}

// TestGRPCErrorBody checks the wire form of a gateway error to a gRPC request: HTTP 200,
// content-type application/grpc, grpc-status and a percent-encoded grpc-message in the one
// header block, no body. The request goes over HTTP/1.1 here so the raw answer is visible.
func TestGRPCErrorBody(t *testing.T) {
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{deadAddr(t)}}.build(t))
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/pkg.Svc/Get", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc+proto")
	req.Header.Set("X-Request-Id", "id-%1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/grpc" || res.Header.Get("Grpc-Status") != "14" ||
		res.Header.Get("Grpc-Message") != "switchyard: upstream unreachable (request id id-%251)" || len(body) != 0 {
		t.Fatalf("answer %d %v body %q", res.StatusCode, res.Header, body)
	}
}

// TestGRPCDeadlineAndCancel checks that grpc-timeout bounds the call at the gateway and is
// forwarded, and that a client's cancellation reaches the backend.
func TestGRPCDeadlineAndCancel(t *testing.T) {
	b := grpctest.Start(t, grpctest.Options{})
	policy := &recordingPolicy{}
	addr, _ := grpcGateway(t, nil, "", grpcRoute(t, "/", "h2c", nil, policy, b.Addr))
	client := testpb.NewTestServiceClient(grpctest.Dial(t, addr, nil))

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := client.UnaryCall(ctx, grpctest.Block())
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("blocked call with a deadline: %v", err)
	}
	waitSignal(t, b.Canceled(), "the deadline did not reach the backend")
	if d := b.LastDeadline(); d <= 0 || d > 300*time.Millisecond {
		t.Errorf("backend's call had %v left, want a deadline within the client's 300ms", d)
	}
	waitSignal(t, b.Started(), "the call did not start")

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := client.UnaryCall(ctx, grpctest.Block())
		errc <- err
	}()
	waitSignal(t, b.Started(), "the call did not start")
	cancel()
	waitSignal(t, b.Canceled(), "the client's cancel did not reach the backend")
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("canceled call: %v", err)
	}
	// Neither the client's deadline nor its cancel is the endpoint's failure.
	for _, o := range policy.of(b.Addr).all() {
		if o.Err != 0 && o.Err.String() != "canceled" || o.Status >= 500 {
			t.Errorf("outcome %+v counted against the endpoint", o)
		}
	}
}

func waitSignal(t *testing.T, c <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatal(msg)
	}
}

// TestGRPCUnavailableHealthAndRetries: a backend answering UNAVAILABLE is reported to its
// health as a 503 (so outlier detection and breakers count it); a Trailers-Only UNAVAILABLE
// is retried on another endpoint when the route marks its requests idempotent, and not
// otherwise; an UNAVAILABLE after a response message is relayed, never retried.
func TestGRPCUnavailableHealthAndRetries(t *testing.T) {
	bad := grpctest.Start(t, grpctest.Options{Name: "bad"})
	good := grpctest.Start(t, grpctest.Options{Name: "good"})
	bad.FailWith(codes.Unavailable)
	idempotent := defaultRetry()
	idempotent.Idempotent = true
	ctx := callCtx(t)

	t.Run("idempotent route retries", func(t *testing.T) {
		policy := &recordingPolicy{}
		addr, _ := grpcGateway(t, nil, "", grpcRoute(t, "/", "h2c", idempotent, policy, bad.Addr, good.Addr))
		client := testpb.NewTestServiceClient(grpctest.Dial(t, addr, nil))
		before := bad.Calls()
		for range 4 {
			res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			if err != nil || res.GetUsername() != "good" {
				t.Fatalf("%v (answered by %q), want the retry's answer", err, res.GetUsername())
			}
		}
		if bad.Calls() == before {
			t.Fatal("the failing backend was never tried")
		}
		for _, o := range policy.of(bad.Addr).all() {
			if o.Status != http.StatusServiceUnavailable {
				t.Errorf("failing endpoint's outcome %+v, want status 503", o)
			}
		}
		for _, o := range policy.of(good.Addr).all() {
			if o.Status != http.StatusOK {
				t.Errorf("good endpoint's outcome %+v, want status 200", o)
			}
		}
	})

	// Other routes do not, even for a call carrying an Idempotency-Key (which makes an
	// HTTP POST retryable): a gRPC call is repeatable only when its route says so.
	for name, callCtx := range map[string]context.Context{
		"other routes do not":        ctx,
		"idempotency key is ignored": metadata.AppendToOutgoingContext(ctx, "idempotency-key", "k1"),
	} {
		t.Run(name, func(t *testing.T) {
			policy := &recordingPolicy{}
			addr, _ := grpcGateway(t, nil, "", grpcRoute(t, "/", "h2c", defaultRetry(), policy, bad.Addr, good.Addr))
			client := testpb.NewTestServiceClient(grpctest.Dial(t, addr, nil))
			badBefore, goodBefore := bad.Calls(), good.Calls()
			var unavailable int
			for range 2 { // round robin: one call each
				_, err := client.UnaryCall(callCtx, &testpb.SimpleRequest{})
				if status.Code(err) == codes.Unavailable {
					unavailable++
				} else if err != nil {
					t.Fatal(err)
				}
			}
			if unavailable != 1 || bad.Calls()-badBefore != 1 || good.Calls()-goodBefore != 1 {
				t.Fatalf("%d UNAVAILABLE, %d calls to the failing backend and %d to the good one; want 1 each (no retry)",
					unavailable, bad.Calls()-badBefore, good.Calls()-goodBefore)
			}
		})
	}

	t.Run("after a message", func(t *testing.T) {
		policy := &recordingPolicy{}
		addr, _ := grpcGateway(t, nil, "", grpcRoute(t, "/", "h2c", idempotent, policy, bad.Addr))
		client := testpb.NewTestServiceClient(grpctest.Dial(t, addr, nil))
		out, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		msgs := 0
		for ; ; msgs++ {
			if _, err = out.Recv(); err != nil {
				break
			}
		}
		if status.Code(err) != codes.Unavailable || msgs != 1 {
			t.Fatalf("%v after %d messages, want UNAVAILABLE after 1", err, msgs)
		}
		if got := policy.of(bad.Addr).all(); len(got) != 1 || got[0].Status != http.StatusServiceUnavailable {
			t.Errorf("outcomes %+v, want one with status 503", got)
		}
	})
}
