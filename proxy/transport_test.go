package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy/h1"
)

// newNetHTTPTransport is the standard library's client tuned as NewTransport tunes h1: the
// baseline BenchmarkProxy measures the gateway's own client against. The gateway no longer
// uses it (h1 caps connections per host itself), so it lives with the tests.
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
