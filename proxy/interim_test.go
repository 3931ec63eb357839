package proxy

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"testing"
	"time"
)

// TestInterimResponsesBounded: an upstream's 103s reach the client up to
// maxInterimResponses; an upstream that sends more fails the attempt with a 502, whatever
// the upstream protocol (proxy/h1 bounds them itself, the HTTP/2 clients leave it to the
// gateway's hook).
func TestInterimResponsesBounded(t *testing.T) {
	hints := func(n int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// Set once: net/http's HTTP/2 server may still be encoding a 1xx's header map
			// when the handler goes on (after the gateway reset the stream), so it is not
			// changed while they are sent.
			w.Header().Set("Link", "</app.css>; rel=preload")
			for range n {
				w.WriteHeader(http.StatusEarlyHints)
			}
			_, _ = io.WriteString(w, "done")
		}
	}
	for _, c := range []struct {
		name     string
		protocol string
		hints    int
		status   int
	}{
		{"h2c few", "h2c", 3, 200},
		{"h2c at the bound", "h2c", maxInterimResponses, 200},
		{"h2c flood", "h2c", 500, 502},
		{"http1 few", "http1", 3, 200},
		{"http1 flood", "http1", 500, 502},
	} {
		t.Run(c.name, func(t *testing.T) {
			var be string
			if c.protocol == "h2c" {
				be = serveH2C(t, hints(c.hints))
			} else {
				be = backend(t, hints(c.hints))
			}
			rt := routeSpec{prefix: "/", protocol: c.protocol, timeout: 5 * time.Second, backends: []string{be}}.build(t)
			gw, _ := startGateway(t, nil, rt)
			relayed := 0
			trace := &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { relayed++; return nil }}
			req, err := http.NewRequest(http.MethodGet, gw.URL+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != c.status {
				t.Errorf("status %d, want %d", res.StatusCode, c.status)
			}
			if want := min(c.hints, maxInterimResponses); relayed > want || c.status == 200 && relayed != want {
				t.Errorf("client got %d 103s, want %d", relayed, want)
			}
		})
	}
}
