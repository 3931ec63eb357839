package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy/h1"
)

// cannedBackend is a keep-alive HTTP/1.1 server that answers every request with the same
// bytes, so a benchmark's cost is the proxy's, not the backend's. It handles only bodiless
// requests (the benchmark's GETs).
func cannedBackend(b *testing.B) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" + string(bytes.Repeat([]byte("x"), 64)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Read one request head: lines until the empty one.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// BenchmarkProxyLean is BenchmarkProxy with the harness made as cheap as possible (a canned
// raw-TCP backend, the h1 client as load generator for both), so the ratio between the two
// reflects the proxies themselves.
func BenchmarkProxyLean(b *testing.B) {
	beAddr, stop := cannedBackend(b)
	defer stop()
	beURL, _ := url.Parse("http://" + beAddr)
	run := func(b *testing.B, h http.Handler) {
		gw := httptest.NewServer(h)
		defer gw.Close()
		client := h1.New(h1.Options{MaxIdleConnsPerHost: 64})
		defer client.Close()
		target := gw.URL + "/api/users/42"
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodGet, target, nil)
				res, err := client.RoundTrip(req)
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
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		rp.Transport = tr
		run(b, rp)
	})
	b.Run("gateway", func(b *testing.B) {
		tr := mustTransport(b, config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second})
		defer tr.(*h1.Client).Close()
		h := New(Options{Transport: tr, Metrics: NewMetrics(nil)})
		rt := routeSpec{prefix: "/api", backends: []string{beAddr}, timeout: 30 * time.Second, retries: 1, retry: defaultRetry()}.build(b)
		h.SetTable(NewTable(append(makeRoutes(100), rt), nil))
		run(b, h)
	})
}
