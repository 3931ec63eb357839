package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/upstream"
)

// An HTTP/1.1 upload cannot escape the slow-client rules by calling itself gRPC: only an
// HTTP/2 stream to an HTTP/2 upstream gets the gRPC stream rule.
func TestGRPCLabelDoesNotSwitchOffPacing(t *testing.T) {
	for _, ct := range []string{"text/plain", "application/grpc"} {
		t.Run(ct, func(t *testing.T) {
			be := backend(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
			rt := routeSpec{prefix: "/", protocol: "http1", timeout: 10 * time.Second, backends: []string{be}}.build(t)
			gw, h := startGateway(t, nil, rt)
			h.pacing = &ClientPacing{Idle: 200 * time.Millisecond}
			c, err := net.Dial("tcp", gw.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// One chunk, then silence well past the idle limit.
			fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", ct)
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer to a stalled upload: %v", err)
			}
			// A gRPC-labelled request gets the 408 in its gRPC form.
			status, grpcStatus := res.StatusCode, res.Header.Get("Grpc-Status")
			if filter.IsGRPC(http.Header{"Content-Type": {ct}}) {
				want := strconv.Itoa(filter.GRPCCode(http.StatusRequestTimeout))
				if status != http.StatusOK || grpcStatus != want {
					t.Fatalf("status %d grpc-status %q, want 200 with %s (408)", status, grpcStatus, want)
				}
			} else if status != http.StatusRequestTimeout {
				t.Fatalf("status %d, want 408", status)
			}
		})
	}
}

func TestGRPCStreamPacingRule(t *testing.T) {
	configured := &ClientPacing{Idle: time.Second, MinRate: 100, ReadTimeout: time.Hour}
	r, _ := http.NewRequest("POST", "/", strings.NewReader("x"))
	tests := []struct {
		name       string
		streams    bool
		upstreamH2 bool
		want       ClientPacing
	}{
		{"http1 client", false, true, *configured},
		{"h2 client, http1 upstream", true, false, *configured},
		{"h2 client, h2 upstream", true, true, ClientPacing{Idle: grpcStreamIdle, ReadTimeout: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newClientBody(r, nil, configured, time.Now())
			if tt.streams {
				b.allowStreams()
			}
			b.useStreamPacing(tt.upstreamH2)
			if got := *b.pacing.Load(); got != tt.want {
				t.Fatalf("pacing %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A client whose body breaks after the upstream answered is the client's failure: over
// HTTP/2 the upstream client aborts the stream with the client's error, which the response
// read then returns, and it must not count against the endpoint as a reset. The response is
// either being relayed (then it is aborted) or, with retries left, held whole before
// relaying (then the client gets the body's failure status, in gRPC form). (An HTTP/1.1
// upstream client sends the whole body before reading the answer, so only HTTP/2 meets
// this case.)
func TestClientBodyBreakingMidResponseIsNotTheUpstreams(t *testing.T) {
	idempotent := defaultRetry()
	idempotent.Idempotent = true
	tests := []struct {
		name    string
		retry   *config.Retry
		retries int
		length  string // the answer's Content-Length: a small known length is held
	}{
		{"relayed", nil, 0, ""},
		{"held for a retry", idempotent, 1, "10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answered := make(chan struct{})
			be := serveH2C(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/grpc")
				if tt.length != "" {
					w.Header().Set("Content-Length", tt.length)
				}
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				close(answered)
				_, _ = io.Copy(w, r.Body)
			})
			policy := &recordingPolicy{}
			rt := routeSpec{prefix: "/", protocol: "h2c", timeout: 10 * time.Second, backends: []string{be},
				policy: policy, retry: tt.retry, retries: tt.retries}.build(t)
			gw, _ := startGateway(t, nil, rt)
			c, err := net.Dial("tcp", gw.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			waitSignal(t, answered, "the backend did not answer")
			time.Sleep(50 * time.Millisecond) // the answer's headers reach the gateway
			fmt.Fprintf(c, "zz\r\nbroken")    // not a chunk size: the body's framing breaks
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no response headers: %v", err)
			}
			_, readErr := io.ReadAll(res.Body)
			if tt.retry == nil && readErr == nil {
				t.Fatal("relayed response ended cleanly, want it aborted")
			}
			if want := strconv.Itoa(filter.GRPCCode(http.StatusBadRequest)); tt.retry != nil && res.Header.Get("Grpc-Status") != want {
				t.Fatalf("held response: %d %v, want grpc-status %s (a broken body's 400)", res.StatusCode, res.Header, want)
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				outcomes := policy.of(be).all()
				if len(outcomes) == 1 {
					if o := outcomes[0]; o.Err != upstream.ErrCanceled {
						t.Fatalf("outcome %+v, want ErrCanceled (the client's failure)", o)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("outcomes %+v, want one", outcomes)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
