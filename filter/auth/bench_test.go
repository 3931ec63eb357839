package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/filter"
)

// nopWriter is a ResponseWriter that keeps nothing, so the benchmarks measure the filter.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// staticMechanism answers a fixed decision without recording anything.
type staticMechanism struct {
	name     string
	decision Decision
	headers  []string
}

func (s *staticMechanism) Name() string { return s.name }
func (s *staticMechanism) Authenticate(http.ResponseWriter, *http.Request, *filter.Request) Decision {
	return s.decision
}
func (s *staticMechanism) Challenge(Decision) string { return `Basic realm="users", charset="UTF-8"` }
func (s *staticMechanism) IdentityHeaders() []string { return s.headers }

// BenchmarkServeRequest measures the combinator around mechanisms that cost nothing: a
// skipped mechanism, then one that admits (with metrics and identity headers to scrub),
// and the 401 path where every mechanism skips.
func BenchmarkServeRequest(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	skip := &staticMechanism{name: "api_key", decision: Decision{Result: Skipped, Reason: "missing"}, headers: []string{"X-Api-Key-Name"}}
	admit := &staticMechanism{name: "basic", decision: Decision{Result: Admitted, Identity: "alice", Reason: "ok"}, headers: []string{"X-User"}}
	refuse := &staticMechanism{name: "basic", decision: Decision{Result: Skipped, Reason: "missing"}, headers: []string{"X-User"}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "*/*")
	b.Run("admit", func(b *testing.B) {
		f := New("route", []Mechanism{skip, admit}, m, nil)
		w := &nopWriter{h: http.Header{}}
		q := &filter.Request{} // the proxy owns it, once per request; not the filter's cost
		b.ReportAllocs()
		for b.Loop() {
			*q = filter.Request{}
			if !f.ServeRequest(w, r, q) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("refuse401", func(b *testing.B) {
		f := New("route", []Mechanism{skip, refuse}, m, nil)
		w := &nopWriter{}
		q := &filter.Request{}
		b.ReportAllocs()
		for b.Loop() {
			w.h = http.Header{}
			*q = filter.Request{RequestID: "0123456789abcdef"}
			if f.ServeRequest(w, r, q) {
				b.Fatal("admitted")
			}
		}
	})
}
