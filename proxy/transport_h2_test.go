package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/grpctest"
	"github.com/switchyard/switchyard/upstream"
)

// serveH2C serves h on a cleartext HTTP/2 (prior knowledge) server.
func serveH2C(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols), ReadHeaderTimeout: 5 * time.Second}
	srv.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return lis.Addr().String()
}

// untrustedTLS is a TLS server offering h2 and http/1.1 with a self-signed certificate the
// gateway does not trust.
func untrustedTLS(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "untrusted"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.NotFoundHandler())
	s.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	s.EnableHTTP2 = true
	s.Config.ErrorLog = discardLog()
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// http1OnlyTLS is a TLS server with cert that offers only http/1.1 by ALPN.
func http1OnlyTLS(t *testing.T, cert *grpctest.Cert) string {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, r.Proto)
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, NextProtos: []string{"http/1.1"}}
	s.Config.ErrorLog = discardLog()
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// TestTLSFailureIsConnectFailure: an endpoint whose TLS handshake fails (an untrusted
// certificate), or that does not agree on HTTP/2 on an h2 route, is a connect failure on
// every protocol: nothing was sent, so POSTs move on to the next endpoint and succeed.
func TestTLSFailureIsConnectFailure(t *testing.T) {
	cert := grpctest.NewCert(t)
	good := protoBackend(t, &cert)
	untrusted := untrustedTLS(t)
	noH2 := http1OnlyTLS(t, &cert)
	for _, c := range []struct {
		name, protocol, bad string
	}{
		{"http1 untrusted", "http1", untrusted},
		{"auto untrusted", "", untrusted},
		{"h2 untrusted", "h2", untrusted},
		{"h2 without ALPN h2", "h2", noH2},
	} {
		t.Run(c.name, func(t *testing.T) {
			policy := &recordingPolicy{}
			rt := routeSpec{prefix: "/", protocol: c.protocol, scheme: "https", timeout: 5 * time.Second,
				backends: []string{c.bad, good}, retries: 1, retry: defaultRetry(), policy: policy}.build(t)
			gw, _ := startGatewayWith(t, Options{Transport: caFile(cert.CAFile)}, nil, rt)
			for i := range 2 { // round robin: one of the two starts on the bad endpoint
				res, err := http.Post(gw.URL+"/x", "text/plain", strings.NewReader("p"))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || !strings.HasSuffix(string(b), " p") {
					t.Errorf("POST %d: %d %q, want 200 from the good endpoint", i, res.StatusCode, b)
				}
			}
			outcomes := policy.of(c.bad).all()
			if len(outcomes) == 0 || slices.ContainsFunc(outcomes, func(o upstream.Outcome) bool { return o.Err != upstream.ErrConnect }) {
				t.Errorf("bad endpoint outcomes %+v, want only connect failures", outcomes)
			}
		})
	}
}

// gatewayWithTransport serves route through a Handler whose upstream clients come from tc.
func gatewayWithTransport(t *testing.T, tc config.Transport, route *Route) string {
	t.Helper()
	tr, err := NewTransport(tc)
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Transport: tr})
	h.SetTable(NewTable([]*Route{route}, NewTrust(nil)))
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv.URL
}

// TestH2SlowClientsBoundGatewayMemory: clients that stop reading hold back their HTTP/2
// upstreams by flow control instead of making the gateway buffer what the upstreams send.
// With the library's default windows, 50 such streams of 8 MiB each cost the gateway about
// 200 MiB; the gateway's windows keep that to a few MiB.
func TestH2SlowClientsBoundGatewayMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends a few hundred MiB over loopback")
	}
	const (
		streams   = 50
		perStream = 8 << 20
		bound     = 40 << 20
	)
	cert := grpctest.NewCert(t)
	for _, c := range []struct {
		name, protocol, scheme string
	}{
		{"h2c", "h2c", ""},
		{"auto over TLS", "", "https"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sent atomic.Int64
			chunk := make([]byte, 32<<10)
			send := func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(perStream))
				for n := 0; n < perStream; n += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return
					}
					sent.Add(int64(len(chunk)))
				}
			}
			var be string
			if c.scheme == "https" {
				s := httptest.NewUnstartedServer(http.HandlerFunc(send))
				s.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
				s.EnableHTTP2 = true
				s.Config.ErrorLog = discardLog()
				s.StartTLS()
				t.Cleanup(s.Close)
				be = s.Listener.Addr().String()
			} else {
				be = serveH2C(t, send)
			}
			url := gatewayWithTransport(t, config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64,
				IdleConnTimeout: 30 * time.Second, TLS: &config.TLS{CAFile: cert.CAFile}},
				routeSpec{prefix: "/", protocol: c.protocol, scheme: c.scheme, timeout: 30 * time.Second, backends: []string{be}}.build(t))
			addr := strings.TrimPrefix(url, "http://")

			before := heapInUse()
			var clients []net.Conn
			defer func() {
				for _, c := range clients {
					_ = c.Close()
				}
			}()
			for range streams {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
				if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
			}
			// Wait until the upstream can send no more: every window and socket buffer is full.
			for last, deadline := int64(-1), time.Now().Add(10*time.Second); time.Now().Before(deadline); {
				time.Sleep(300 * time.Millisecond)
				n := sent.Load()
				if n == last {
					break
				}
				last = n
			}
			grew := heapInUse() - before
			t.Logf("upstream sent %d MiB, gateway heap grew %d MiB", sent.Load()>>20, grew>>20)
			if grew > bound {
				t.Errorf("gateway heap grew %d MiB with %d clients not reading, want under %d MiB", grew>>20, streams, bound>>20)
			}
		})
	}
}

// discardLog silences a test server's log of the handshakes the gateway abandons.
func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
