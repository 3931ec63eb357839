package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/grpctest"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"
)

// TestGRPCTimeoutEnforcedByGateway sends a blocking call with grpc-timeout: 200m from a raw
// HTTP/2 client that never cancels (unlike grpc-go, which ends the call on its own
// deadline): the gateway itself must end it with DEADLINE_EXCEEDED, and the backend must
// have been sent what was left of the deadline, not more.
func TestGRPCTimeoutEnforcedByGateway(t *testing.T) {
	b := grpctest.Start(t, grpctest.Options{})
	addr, _ := grpcGateway(t, nil, "", grpcRoute(t, "/", "h2c", nil, &recordingPolicy{}, b.Addr))

	msg, err := proto.Marshal(grpctest.Block())
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)

	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	// The client's own context is far longer than the call's deadline: only the gateway ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/grpc.testing.TestService/UnaryCall", bytes.NewReader(frame))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "200m")
	start := time.Now()
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	took := time.Since(start)

	st := res.Header.Get("Grpc-Status") // a Trailers-Only answer
	if st == "" {
		st = res.Trailer.Get("Grpc-Status")
	}
	if st != "4" {
		t.Fatalf("grpc-status %q (HTTP %d), want 4 (DEADLINE_EXCEEDED) from the gateway", st, res.StatusCode)
	}
	if took > 2*time.Second {
		t.Errorf("call ended after %v, want about its 200ms deadline", took)
	}
	waitSignal(t, b.Canceled(), "the deadline did not reach the backend")
	if d := b.LastDeadline(); d <= 0 || d > 200*time.Millisecond {
		t.Errorf("backend's call had %v left, want a grpc-timeout within the caller's 200ms", d)
	}
}
