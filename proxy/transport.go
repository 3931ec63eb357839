package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy/h1"
)

// NewTransport returns the one upstream client all routes share, tuned from config. It is
// proxy/h1, a pooled HTTP/1.1 client that runs each exchange on the request's own goroutine
// (about half of http.Transport's cost per request, see BenchmarkProxy); http.Transport is
// used instead when max_conns_per_host is set, since h1 does not cap connections. Either way:
// a large idle pool per host, dial and idle timeouts, no transparent decompression (the client
// gets exactly the upstream's bytes), and no HTTP proxy from the environment.
func NewTransport(c config.Transport) (http.RoundTripper, error) {
	tlsConf, err := ClientTLS(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("transport.tls: %w", err)
	}
	if c.MaxConnsPerHost <= 0 {
		return h1.New(h1.Options{
			DialTimeout:           c.DialTimeout,
			IdleConnTimeout:       c.IdleConnTimeout,
			ResponseHeaderTimeout: c.ResponseHeaderTimeout,
			MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
			TLSConfig:             tlsConf,
		}), nil
	}
	return newNetHTTPTransport(c, tlsConf), nil
}

// newNetHTTPTransport is the standard library's client, tuned the same way.
func newNetHTTPTransport(c config.Transport, tlsConf *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    c.DialTimeout,
		MaxIdleConnsPerHost:    c.MaxIdleConnsPerHost,
		MaxConnsPerHost:        c.MaxConnsPerHost,
		IdleConnTimeout:        c.IdleConnTimeout,
		ResponseHeaderTimeout:  c.ResponseHeaderTimeout,
		DisableCompression:     true,
		MaxResponseHeaderBytes: h1.DefaultMaxResponseHeaderBytes,
		ReadBufferSize:         16 << 10,
		WriteBufferSize:        16 << 10,
	}
}

// ClientTLS builds a client TLS config from the config block (nil block: system roots).
func ClientTLS(t *config.TLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t == nil {
		return c, nil
	}
	c.ServerName = t.ServerName
	c.InsecureSkipVerify = t.InsecureSkipVerify
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
