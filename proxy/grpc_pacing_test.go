package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/filter"
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
