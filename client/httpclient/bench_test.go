package httpclient

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkRoundTrip compares a GET to a loopback server through the default transport
// ("direct", to its address) and through the Transport ("httpclient", to the service name),
// so the difference is what discovery, the pick and the health accounting add per request.
func BenchmarkRoundTrip(b *testing.B) {
	addr := backend(b, 200, 0)
	reg := newFakeRegistry()
	reg.Set(addr)
	rt, err := New(reg, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rt.Close)
	direct := http.DefaultTransport.(*http.Transport).Clone()
	b.Cleanup(direct.CloseIdleConnections)
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
		url  string
	}{
		{"direct", direct, "http://" + addr + "/"},
		{"httpclient", rt, "http://users/"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := &http.Client{Transport: tc.rt}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(tc.url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
