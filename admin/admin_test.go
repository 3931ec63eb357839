package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// source is a fixed Source: the admin package only formats what it is given.
type source struct {
	ready   bool
	waiting []string
}

func (s source) Ready() (bool, []string) { return s.ready, s.waiting }
func (s source) Routes() any             { return []map[string]string{{"prefix": "/api"}} }
func (s source) Upstreams() any {
	return []map[string]any{{"name": "users", "endpoints": []string{"127.0.0.1:9001"}}}
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	for _, tc := range []struct {
		name   string
		src    source
		path   string
		status int
		want   string
	}{
		{"healthz", source{}, "/healthz", 200, `"status": "ok"`},
		{"ready", source{ready: true}, "/readyz", 200, `"status": "ready"`},
		{"not ready names pools", source{waiting: []string{"users"}}, "/readyz", 503, `"users"`},
		{"not ready before config", source{}, "/readyz", 503, `"pools_waiting": []`},
		{"metrics", source{}, "/metrics", 200, "switchyard_test_total 1"},
		{"routes", source{}, "/admin/routes", 200, `"prefix": "/api"`},
		{"upstreams", source{}, "/admin/upstreams", 200, `"127.0.0.1:9001"`},
		{"pprof", source{}, "/debug/pprof/", 200, "goroutine"},
		{"unknown", source{}, "/nope", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(New(Options{Source: tc.src, Gatherer: reg}))
			defer srv.Close()
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%s: %d %q, want %d containing %q", tc.path, res.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}
