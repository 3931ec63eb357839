package grpctest

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// Exercise runs every kind of call on cc and fails t on the first one that does not work:
// unary, 4 MiB each way, a server stream, a client stream, a bidirectional stream in lock
// step (each message must arrive before the next is sent, so a relay that buffers instead
// of flushing per message hangs until the deadline), a status error answered Trailers-Only,
// and a health Check. Each call has 10 s.
func Exercise(t testing.TB, cc grpc.ClientConnInterface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := testpb.NewTestServiceClient(cc)

	res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10})
	if err != nil || len(res.GetPayload().GetBody()) != 10 {
		t.Fatalf("unary: %v", err)
	}
	res, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 4 << 20, Payload: &testpb.Payload{Body: make([]byte, 4<<20)}})
	if err != nil || len(res.GetPayload().GetBody()) != 4<<20 {
		t.Fatalf("4 MiB each way: %v", err)
	}

	out, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if m, err := out.Recv(); err != nil || len(m.GetPayload().GetBody()) != i {
			t.Fatalf("server stream message %d: %v", i, err)
		}
	}
	if _, err := out.Recv(); err != io.EOF {
		t.Fatalf("server stream end: %v, want EOF", err)
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
	if sum, err := in.CloseAndRecv(); err != nil || sum.GetAggregatedPayloadSize() != 18 {
		t.Fatalf("client stream: %v", err)
	}

	bidi, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(i)}}}); err != nil {
			t.Fatal(err)
		}
		if m, err := bidi.Recv(); err != nil || len(m.GetPayload().GetBody()) != i {
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

	if hc, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hc, err)
	}
}
