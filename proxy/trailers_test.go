package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/headers"
	"golang.org/x/net/http2"
)

// Trailers an upstream did not announce are relayed for gRPC only, and the route's response
// header removals apply to trailers too: neither can carry a field past the header edits.
func TestTrailersRelayedAndEdited(t *testing.T) {
	be := serveH2C(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Announced, Server")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Announced", "a")
		w.Header().Set("Server", "leaky/1.0")                     // announced, but removed by the route
		w.Header().Set(http.TrailerPrefix+"X-Unannounced", "u")   // never announced
		w.Header().Set(http.TrailerPrefix+"X-Powered-By", "leak") // never announced, and removed
	})
	edits := headers.New(&config.HeaderRules{Response: &config.HeaderEdits{Remove: []string{"Server", "X-Powered-By"}}})
	rt := routeSpec{prefix: "/", protocol: "h2c", timeout: 5 * time.Second, backends: []string{be},
		filters: &filter.Chain{Response: []filter.ResponseFilter{edits}}}.build(t)
	addr, _ := grpcGateway(t, nil, "", rt)
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()

	tests := []struct {
		contentType string
		want        map[string]string // trailer -> value; "" must be absent
	}{
		{"text/plain", map[string]string{"X-Announced": "a", "Server": "", "X-Unannounced": "", "X-Powered-By": ""}},
		{"application/grpc", map[string]string{"X-Announced": "a", "Server": "", "X-Unannounced": "u", "X-Powered-By": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "http://"+addr+"/x", strings.NewReader("q"))
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Te", "trailers")
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			for k, want := range tt.want {
				if got := res.Trailer.Get(k); got != want {
					t.Errorf("trailer %s = %q, want %q (all: %v)", k, got, want, res.Trailer)
				}
			}
		})
	}
}
