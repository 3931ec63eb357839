package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/grpctest"
)

// protoBackend serves the HTTP version each request arrived in and echoes its body: h2c only
// (no HTTP/1.1) when cleartext, or TLS offering h2 and http/1.1 with cert.
func protoBackend(t *testing.T, cert *grpctest.Cert) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Proto, b)
	}), ReadHeaderTimeout: 5 * time.Second, Protocols: new(http.Protocols)}
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetHTTP2(true)
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if cert != nil {
			_ = srv.ServeTLS(lis, "", "")
		} else {
			_ = srv.Serve(lis)
		}
	}()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return lis.Addr().String()
}

// TestUpstreamProtocols sends plain HTTP/1.1 requests through routes of each upstream
// protocol and checks the version the backend saw.
func TestUpstreamProtocols(t *testing.T) {
	cert := grpctest.NewCert(t)
	h2cOnly := protoBackend(t, nil)
	tlsBoth := protoBackend(t, &cert)
	route := func(prefix, protocol, scheme, backend string) *Route {
		return routeSpec{prefix: prefix, protocol: protocol, scheme: scheme, timeout: 5 * time.Second, backends: []string{backend}, strip: true}.build(t)
	}
	gw, _ := startGatewayWith(t, Options{Transport: caFile(cert.CAFile)}, nil,
		route("/h2c", "h2c", "", h2cOnly),
		route("/auto-plain", "", "", h2cOnly), // HTTP/1.1 to an h2c-only server: fails
		route("/h2", "h2", "https", tlsBoth),
		route("/alpn", "", "https", tlsBoth),
		route("/http1", "http1", "https", tlsBoth),
	)
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{"/h2c", "HTTP/2.0 hello", 200},
		{"/auto-plain", "", 502},
		{"/h2", "HTTP/2.0 hello", 200},
		{"/alpn", "HTTP/2.0 hello", 200},
		{"/http1", "HTTP/1.1 hello", 200},
	} {
		res, err := http.Post(gw.URL+c.path+"/x", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || c.status == 200 && string(b) != c.want {
			t.Errorf("%s: %d %q, want %d %q", c.path, res.StatusCode, b, c.status, c.want)
		}
	}
}

// TestH2CRetryAfterRefusedDial: a POST whose first endpoint refuses the connection goes to
// the next one over h2c with its body whole (the first attempt's closing of its body must
// not reach the second's).
func TestH2CRetryAfterRefusedDial(t *testing.T) {
	good := protoBackend(t, nil)
	for i := range 20 {
		rt := routeSpec{prefix: "/", protocol: "h2c", timeout: 5 * time.Second, backends: []string{deadAddr(t), good},
			retries: 1, retry: defaultRetry()}.build(t)
		gw, _ := startGateway(t, nil, rt)
		for range 2 { // round robin: one of the two starts on the dead endpoint
			res, err := http.Post(gw.URL+"/x", "text/plain", strings.NewReader("payload"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(b) != "HTTP/2.0 payload" {
				t.Fatalf("try %d: %d %q, want the body relayed whole to the live endpoint", i, res.StatusCode, b)
			}
		}
	}
}

// TestRetryIdempotentRoute: retry.idempotent makes a route's POSTs retried like GETs.
func TestRetryIdempotentRoute(t *testing.T) {
	unavailable := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok:%s", b)
	})
	marked := defaultRetry()
	marked.Idempotent = true
	gw, _ := startGateway(t, nil,
		routeSpec{prefix: "/marked", backends: []string{unavailable, ok}, retries: 1, retry: marked}.build(t),
		routeSpec{prefix: "/plain", backends: []string{unavailable, ok}, retries: 1, retry: defaultRetry()}.build(t))
	for _, c := range []struct {
		path  string
		fails int
	}{{"/marked", 0}, {"/plain", 2}} {
		fails := 0
		for range 4 {
			res, err := http.Post(gw.URL+c.path, "text/plain", strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				fails++
			} else if string(b) != "ok:body" {
				t.Fatalf("%s: body %q, want the replayed body", c.path, b)
			}
		}
		if fails != c.fails {
			t.Errorf("%s: %d of 4 POSTs failed, want %d", c.path, fails, c.fails)
		}
	}
}
