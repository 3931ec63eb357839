package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

// BenchmarkProxy compares, in one run against the same loopback backend, a request through
// the gateway's handler with its features on (route match, X-Forwarded-*, request ID,
// metrics, health accounting, retry budget) and through a bare httputil.ReverseProxy.
// Client, backend and proxy all run in this process, so the ratio, not the absolute ns/op,
// is the figure to read.
func BenchmarkProxy(b *testing.B) {
	payload := make([]byte, 64)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(payload)
	}))
	defer be.Close()
	beURL, _ := url.Parse(be.URL)

	run := func(b *testing.B, h http.Handler) {
		gw := httptest.NewServer(h)
		defer gw.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := client.Get(gw.URL + "/api/users/42")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}

	b.Run("httputil", func(b *testing.B) {
		rp := httputil.NewSingleHostReverseProxy(beURL)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
		run(b, rp)
	})
	tc := config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	for _, tr := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"gateway-h1", mustTransport(b, tc)},
		{"gateway-nethttp", newNetHTTPTransport(tc, nil)},
	} {
		b.Run(tr.name, func(b *testing.B) {
			h := New(Options{Transport: tr.rt, Metrics: NewMetrics(nil)})
			rt := routeSpec{prefix: "/api", backends: []string{beURL.Host}, timeout: 30 * time.Second, retries: 1, retry: defaultRetry()}.build(b)
			h.SetTable(NewTable(append(makeRoutes(100), rt), nil))
			run(b, h)
			tr.rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
		})
	}
}

func mustTransport(b *testing.B, c config.Transport) http.RoundTripper {
	tr, err := NewTransport(c)
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// cannedTransport answers every request at once from memory, so BenchmarkHandler measures
// the gateway's own per-request work (match, headers, pick, accounting, copy) without the
// network. It is a benchmark fixture, not a test double.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"64"}},
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       r,
	}, nil
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkHandler is the handler's own cost per request, with resilience (passive health,
// breaker, retry budget, rate limit) on and off.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct {
		name string
		on   bool
	}{{"features-off", false}, {"features-on", true}} {
		b.Run(tc.name, func(b *testing.B) {
			h := New(Options{Transport: cannedTransport{body: make([]byte, 64)}, Metrics: NewMetrics(nil)})
			spec := routeSpec{prefix: "/api", backends: []string{"127.0.0.1:9", "127.0.0.1:10"}, timeout: 30 * time.Second}
			if tc.on {
				spec.retries, spec.retry = 1, defaultRetry()
			}
			rt := spec.build(b)
			if tc.on {
				rt = resilientRoute(b, spec)
			}
			h.SetTable(NewTable(append(makeRoutes(100), rt), nil))
			req := httptest.NewRequest(http.MethodGet, "http://gw.test/api/users/42?x=1", nil)
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			w := &discardWriter{h: make(http.Header, 8)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}
