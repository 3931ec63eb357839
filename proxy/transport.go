package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy/h1"
)

// NewTransport returns the one upstream client all routes share, tuned from config: proxy/h1,
// a pooled HTTP/1.1 client that runs each exchange on the request's own goroutine (about half
// of http.Transport's cost per request, see BenchmarkProxy). It keeps a large idle pool per
// host, applies the dial, idle and response-header timeouts, caps each host at
// max_conns_per_host connections when set (requests beyond it wait for a free connection, see
// classify for how a wait that ends is counted), does no transparent decompression (the client
// gets exactly the upstream's bytes) and uses no HTTP proxy from the environment.
func NewTransport(c config.Transport) (http.RoundTripper, error) {
	tlsConf, err := ClientTLS(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("transport.tls: %w", err)
	}
	return h1.New(h1.Options{
		DialTimeout:           c.DialTimeout,
		IdleConnTimeout:       c.IdleConnTimeout,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout,
		MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
		MaxConnsPerHost:       c.MaxConnsPerHost,
		TLSConfig:             tlsConf,
	}), nil
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
