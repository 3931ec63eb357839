// Package grpctest runs real grpc-go servers for tests: grpc-go's interop TestService (unary,
// server, client and bidirectional streams) and the standard grpc.health.v1 service, on a
// loopback listener, in cleartext (h2c) or TLS, with hooks to make calls fail, block or
// report what the server saw.
package grpctest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MaxMessage is the largest message the servers and Dial's clients accept: above grpc-go's
// 4 MiB default, so a 4 MiB payload (plus its framing) fits.
const MaxMessage = 16 << 20

// Server is one running gRPC backend.
type Server struct {
	Addr   string // host:port on 127.0.0.1
	Health *health.Server
	GRPC   *grpc.Server

	service *service
}

// Options configure a Server.
type Options struct {
	// TLS serves TLS (ALPN h2) with this config instead of cleartext h2c.
	TLS *tls.Config
	// Name is returned as UnaryCall's Username, so a test can tell which backend answered.
	// (Not as header metadata: grpc-go then sends a failing call's status after a header
	// block instead of Trailers-Only.)
	Name string
}

// Start serves a TestService and the health service on 127.0.0.1 until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessage), grpc.MaxSendMsgSize(MaxMessage)}
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	s := &Server{Addr: lis.Addr().String(), GRPC: grpc.NewServer(opts...), Health: health.NewServer()}
	s.service = &service{name: o.Name, canceled: make(chan struct{}, 16), started: make(chan struct{}, 16)}
	testpb.RegisterTestServiceServer(s.GRPC, s.service)
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.GRPC.Serve(lis)
	}()
	t.Cleanup(func() {
		s.GRPC.Stop()
		<-done
	})
	return s
}

// Stop closes the listener and every connection at once, cutting calls in flight: a
// backend that dies.
func (s *Server) Stop() { s.GRPC.Stop() }

// FailWith makes every UnaryCall and StreamingOutputCall fail with code from now on
// (codes.OK: answer normally again). A streaming call sends its first message first.
func (s *Server) FailWith(code codes.Code) { s.service.fail.Store(uint32(code)) }

// Calls is the number of calls the TestService received.
func (s *Server) Calls() int64 { return s.service.calls.Load() }

// Canceled receives once per blocking call (see Block) whose context ended on the server:
// the client's cancellation or deadline reached the backend.
func (s *Server) Canceled() <-chan struct{} { return s.service.canceled }

// Started receives once per blocking call when it has started on the server.
func (s *Server) Started() <-chan struct{} { return s.service.started }

// LastDeadline is the time the last call had left when it arrived, by its deadline (the
// grpc-timeout it came with); 0 when it had none.
func (s *Server) LastDeadline() time.Duration {
	s.service.mu.Lock()
	defer s.service.mu.Unlock()
	return s.service.lastDeadline
}

// LastMetadata is the metadata the last call arrived with.
func (s *Server) LastMetadata() metadata.MD {
	s.service.mu.Lock()
	defer s.service.mu.Unlock()
	return s.service.lastMD
}

// Block is a SimpleRequest that makes UnaryCall wait until the call's context ends.
func Block() *testpb.SimpleRequest {
	return &testpb.SimpleRequest{FillUsername: true}
}

// service implements TestService.
type service struct {
	testpb.UnimplementedTestServiceServer
	name     string
	fail     atomic.Uint32
	calls    atomic.Int64
	canceled chan struct{}
	started  chan struct{}

	mu           sync.Mutex
	lastDeadline time.Duration
	lastMD       metadata.MD
}

func (s *service) begin(ctx context.Context) error {
	s.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.lastMD = md
	s.lastDeadline = 0
	if d, ok := ctx.Deadline(); ok {
		s.lastDeadline = time.Until(d)
	}
	s.mu.Unlock()
	return nil
}

func (s *service) failure() error {
	if c := codes.Code(s.fail.Load()); c != codes.OK {
		return status.Error(c, "backend told to fail")
	}
	return nil
}

// UnaryCall answers with a payload of the requested size, the requested status, or (Block)
// waits for the call's context to end.
func (s *service) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	_ = s.begin(ctx)
	if in.GetFillUsername() {
		s.started <- struct{}{}
		<-ctx.Done()
		s.canceled <- struct{}{}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err := s.failure(); err != nil {
		return nil, err
	}
	if st := in.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: make([]byte, in.GetResponseSize())}, Username: s.name}, nil
}

// StreamingOutputCall sends one message per ResponseParameters (after the first, the
// FailWith status if one is set), then the requested status. Lock-step exchanges, where
// the client must see each message before the next is sent, use FullDuplexCall.
func (s *service) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	_ = s.begin(stream.Context())
	for i, p := range in.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
		if i == 0 {
			if err := s.failure(); err != nil {
				return err
			}
		}
	}
	if st := in.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return nil
}

// StreamingInputCall sums the sizes of the payloads it receives.
func (s *service) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	_ = s.begin(stream.Context())
	var total int32
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: total})
		}
		if err != nil {
			return err
		}
		total += int32(len(in.GetPayload().GetBody()))
	}
}

// FullDuplexCall answers each request as it arrives, one message per ResponseParameters,
// so a client can run the stream in lock step (send, receive, send...). A request with a
// ResponseStatus ends the call with that status.
func (s *service) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	_ = s.begin(stream.Context())
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if st := in.GetResponseStatus(); st != nil && st.GetCode() != 0 {
			return status.Error(codes.Code(st.GetCode()), st.GetMessage())
		}
		for _, p := range in.GetResponseParameters() {
			if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

// Dial returns a client of addr (cleartext h2c, or TLS trusting roots when roots is
// non-nil), closed when the test ends.
func Dial(t testing.TB, addr string, roots *x509.CertPool) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if roots == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage), grpc.MaxCallSendMsgSize(MaxMessage)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Cert is a self-signed certificate for 127.0.0.1 and ::1 (httptest's), with the pool
// that trusts it, that pool's PEM in a file (for config's ca_file), and the certificate
// and key in PEM files (for server.tls).
type Cert struct {
	TLS                       tls.Certificate
	Roots                     *x509.CertPool
	CAFile, CertFile, KeyFile string
}

// NewCert returns httptest's loopback certificate, its trust pool and a CA file for it.
func NewCert(t testing.TB) Cert {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	c := Cert{TLS: srv.TLS.Certificates[0], Roots: x509.NewCertPool()}
	leaf := srv.Certificate()
	srv.Close()
	c.Roots.AddCert(leaf)
	dir := t.TempDir()
	c.CAFile, c.CertFile, c.KeyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	key, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	for path, b := range map[string][]byte{c.CAFile: certPEM, c.CertFile: certPEM,
		c.KeyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// ServerTLS is a server config presenting c, offering h2.
func (c Cert) ServerTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
}
