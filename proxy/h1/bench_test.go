package h1

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRoundTrip compares this client with a tuned http.Transport on the
// same loopback backend: a small GET whose 64-byte body is read fully.
func BenchmarkRoundTrip(b *testing.B) {
	payload := make([]byte, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "64")
		w.Write(payload)
	}))
	defer srv.Close()

	clients := []struct {
		name string
		rt   http.RoundTripper
		done func()
	}{
		{"h1", New(Options{MaxIdleConnsPerHost: 64}), nil},
		{"transport", &http.Transport{MaxIdleConnsPerHost: 64}, nil},
	}
	for _, cl := range clients {
		switch rt := cl.rt.(type) {
		case *Client:
			defer rt.Close()
		case *http.Transport:
			defer rt.CloseIdleConnections()
		}
		b.Run(cl.name, func(b *testing.B) {
			b.Run("sequential", func(b *testing.B) {
				req := mustReq(b, "GET", srv.URL+"/bench", nil)
				buf := make([]byte, 512)
				b.ReportAllocs()
				for b.Loop() {
					if err := roundTripOnce(cl.rt, req, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					req := mustReq(b, "GET", srv.URL+"/bench", nil)
					buf := make([]byte, 512)
					for pb.Next() {
						if err := roundTripOnce(cl.rt, req, buf); err != nil {
							b.Error(err) // Fatal may not be called off the benchmark goroutine
							return
						}
					}
				})
			})
		})
	}
}

func roundTripOnce(rt http.RoundTripper, req *http.Request, buf []byte) error {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n := 0
	for {
		m, err := resp.Body.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != 64 {
		return fmt.Errorf("read %d bytes, want 64", n)
	}
	return nil
}
