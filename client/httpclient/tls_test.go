package httpclient

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
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// certFor returns a self-signed certificate for dnsName alone (no IP SAN), and a pool that
// trusts it.
func certFor(t *testing.T, dnsName string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: dnsName},
		DNSNames:              []string{dnsName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestHTTPSInstance: an instance registered with scheme https is called over TLS, with the
// service name as Host and as the name its certificate is verified against: the
// certificate names "users" and no IP, so verifying it against the instance's address
// (what a plain Transport does with the rewritten URL, the control case) fails.
func TestHTTPSInstance(t *testing.T) {
	cert, roots := certFor(t, "users")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-TLS", fmt.Sprint(r.TLS != nil))
		w.Header().Set("X-SNI", r.TLS.ServerName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing cases' handshake errors
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")

	for _, tc := range []struct {
		name    string
		base    func() *http.Transport
		url     string
		wantErr string // empty: success
	}{
		{"service name verified", func() *http.Transport {
			return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
		}, "http://users/", ""},
		{"Base's own ServerName kept", func() *http.Transport {
			return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "orders"}}
		}, "http://users/", "orders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newFakeRegistry()
			reg.mu.Lock()
			reg.snap, reg.set = upstream.NewSnapshot([]upstream.Endpoint{{Key: addr, Scheme: "https"}}), true
			reg.mu.Unlock()
			base := tc.base()
			t.Cleanup(base.CloseIdleConnections)
			c, _ := newClient(t, reg, Options{Base: base})
			resp, err := c.Get(tc.url)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Header.Get("X-TLS") != "true" || resp.Header.Get("X-Host") != "users" || resp.Header.Get("X-SNI") != "users" {
				t.Fatalf("TLS %q, Host %q, SNI %q", resp.Header.Get("X-TLS"), resp.Header.Get("X-Host"), resp.Header.Get("X-SNI"))
			}
		})
	}

	// The control: the same roots, verifying against the address, fail; so the success
	// above is the server name's doing.
	plain := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(plain.CloseIdleConnections)
	if resp, err := (&http.Client{Transport: plain}).Get("https://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("the certificate verified against the IP address; the test proves nothing")
	}
}
