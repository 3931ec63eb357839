package proxy

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/grpctest"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestGRPCBackendKilledMidStream: a backend that dies with a stream open ends the client's
// call with an error promptly (no hang), and the endpoint's health hears of a failure.
func TestGRPCBackendKilledMidStream(t *testing.T) {
	b := grpctest.Start(t, grpctest.Options{})
	policy := &recordingPolicy{}
	addr, _ := grpcGateway(t, nil, "", grpcRoute(t, "/", "h2c", nil, policy, b.Addr))
	client := testpb.NewTestServiceClient(grpctest.Dial(t, addr, nil))
	bidi, err := client.FullDuplexCall(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 3}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	_, err = bidi.Recv()
	// The break came between messages: the gateway ends the stream with UNAVAILABLE.
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "upstream broke mid-stream") {
		t.Fatalf("stream after the backend died: %v, want UNAVAILABLE from the gateway", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(policy.of(b.Addr).all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := policy.of(b.Addr).all(); len(got) != 1 || got[0].Err == 0 {
		t.Fatalf("outcomes %+v, want one failure", got)
	}
}

// TestGRPCQuietClientStream: a bidirectional stream whose client stays quiet longer than the
// body idle timeout and below the minimum rate is not cut (pacing is for uploads, not for
// gRPC streams).
func TestGRPCQuietClientStream(t *testing.T) {
	b := grpctest.Start(t, grpctest.Options{})
	addr := grpcGatewayPaced(t, &ClientPacing{Idle: 100 * time.Millisecond, MinRate: 1 << 20, Grace: 50 * time.Millisecond},
		grpcRoute(t, "/", "h2c", nil, nil, b.Addr))
	bidi, err := testpb.NewTestServiceClient(grpctest.Dial(t, addr, nil)).FullDuplexCall(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // quiet past Idle, far below MinRate
		}
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := bidi.Recv(); err != nil {
			t.Fatalf("round %d after a quiet spell: %v", i, err)
		}
	}
	if err := bidi.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// TestGRPCStreamOutlivesRouteTimeout: the route timeout bounds the wait for response headers
// only; a stream that has begun runs on to the caller's own deadline.
func TestGRPCStreamOutlivesRouteTimeout(t *testing.T) {
	b := grpctest.Start(t, grpctest.Options{})
	rt := routeSpec{prefix: "/", protocol: "h2c", timeout: 150 * time.Millisecond, backends: []string{b.Addr}}.build(t)
	addr, _ := grpcGateway(t, nil, "", rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // sent as grpc-timeout
	defer cancel()
	bidi, err := testpb.NewTestServiceClient(grpctest.Dial(t, addr, nil)).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			time.Sleep(200 * time.Millisecond) // each pause alone is past the route timeout
		}
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := bidi.Recv(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if err := bidi.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if d := b.LastDeadline(); d < 9*time.Second {
		t.Errorf("backend's deadline was %v, want the caller's ~10s", d)
	}
}
