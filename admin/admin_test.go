package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/gateway"
)

// source is a fixed Source: the admin package only formats what it is given.
type source struct {
	ready   bool
	waiting []string
	config  gateway.ConfigInfo
}

func (s source) ConfigInfo() gateway.ConfigInfo { return s.config }

func (s source) Ready() (bool, []string) { return s.ready, s.waiting }
func (s source) Routes() []gateway.RouteInfo {
	return []gateway.RouteInfo{{Name: "/api", Prefix: "/api", Registry: "etcd", Service: "users"}}
}
func (s source) Upstreams() []gateway.PoolInfo {
	return []gateway.PoolInfo{{Name: "users", Registry: "etcd", Endpoints: []gateway.EndpointInfo{{Key: "127.0.0.1:9001"}}}}
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	const misdirected = "the admin API answers only requests for localhost"
	for _, tc := range []struct {
		name   string
		opts   Options // Source and Gatherer filled in
		src    source
		path   string
		host   string // Host header; "" = the test server's 127.0.0.1:port
		status int
		want   string
	}{
		{"healthz", Options{}, source{}, "/healthz", "", 200, `"status": "ok"`},
		{"ready", Options{}, source{ready: true}, "/readyz", "", 200, `"status": "ready"`},
		{"not ready names pools", Options{}, source{waiting: []string{"users"}}, "/readyz", "", 503, `"users"`},
		{"not ready before config", Options{}, source{}, "/readyz", "", 503, `"pools_waiting": []`},
		{"metrics", Options{}, source{}, "/metrics", "", 200, "switchyard_test_total 1"},
		{"routes", Options{}, source{}, "/admin/routes", "", 200, `"prefix": "/api"`},
		{"upstreams", Options{}, source{}, "/admin/upstreams", "", 200, `"127.0.0.1:9001"`},
		{"unknown", Options{}, source{}, "/nope", "", 404, ""},

		// pprof and expvar only with admin_debug (issue #11, item 14).
		{"pprof off by default", Options{}, source{}, "/debug/pprof/", "", 404, ""},
		{"pprof profile off by default", Options{}, source{}, "/debug/pprof/goroutine?debug=1", "", 404, ""},
		{"expvar off by default", Options{}, source{}, "/debug/vars", "", 404, ""},
		{"pprof with debug", Options{Debug: true}, source{}, "/debug/pprof/", "", 200, "goroutine"},
		{"expvar with debug", Options{Debug: true}, source{}, "/debug/vars", "", 200, "memstats"},

		// Host check against DNS rebinding.
		{"host localhost", Options{}, source{}, "/healthz", "localhost:9901", 200, "ok"},
		{"host LOCALHOST without port", Options{}, source{}, "/healthz", "LOCALHOST", 200, "ok"},
		{"host 127.0.0.1", Options{}, source{}, "/healthz", "127.0.0.1", 200, "ok"},
		{"host 127.8.9.10", Options{}, source{}, "/healthz", "127.8.9.10:80", 200, "ok"},
		{"host [::1]", Options{}, source{}, "/healthz", "[::1]:9901", 200, "ok"},
		{"host [::1] without port", Options{}, source{}, "/healthz", "[::1]", 200, "ok"},
		{"rebound name", Options{}, source{}, "/admin/upstreams", "attacker.example:9901", 421, misdirected},
		{"rebound name, pprof too", Options{Debug: true}, source{}, "/debug/pprof/", "attacker.example", 421, misdirected},
		{"name ending in localhost", Options{}, source{}, "/healthz", "localhost.attacker.example", 421, misdirected},
		{"public address", Options{}, source{}, "/metrics", "10.0.0.5:9901", 421, misdirected},
		{"wildcard address", Options{}, source{}, "/metrics", "0.0.0.0:9901", 421, misdirected},
		{"empty host before the port", Options{}, source{}, "/metrics", ":9901", 421, misdirected},
		{"exposed: any host", Options{Exposed: true}, source{}, "/admin/routes", "gw-3.internal:9901", 200, `"prefix": "/api"`},
		{"exposed: pprof still needs debug", Options{Exposed: true}, source{}, "/debug/pprof/", "gw-3.internal", 404, ""},

		// Shutting down: not ready whatever the pools say, still alive (issue 14, item 1).
		{"draining: not ready, with the reason", Options{Draining: draining}, source{ready: true}, "/readyz", "", 503,
			"{\n  \"reason\": \"shutting down: SIGTERM received\",\n  \"status\": \"draining\"\n}"},
		{"draining: still alive", Options{Draining: draining}, source{ready: true}, "/healthz", "", 200, `"status": "ok"`},
		{"draining: pools waiting too", Options{Draining: draining}, source{waiting: []string{"users"}}, "/readyz", "", 503, `"status": "draining"`},
		{"not draining yet", Options{Draining: func() (string, bool) { return "", false }}, source{ready: true}, "/readyz", "", 200, `"status": "ready"`},

		// The config's source and revision (issue 15, item 3), and /readyz's note while the
		// gateway serves its last-known-good copy (item 2).
		{"config", Options{}, source{config: etcdConfig}, "/admin/config", "", 200,
			`"source": "etcd:/switchyard/config",
  "revision": 42,`},
		{"config: rejected document listed", Options{}, source{config: etcdConfig}, "/admin/config", "", 200,
			`"errors": [
      "etcd:/switchyard/config@rev 43:6: routes[0].prefix: must start with /"
    ]
  }`},
		{"config: file, no revision", Options{}, source{config: gateway.ConfigInfo{Source: "file:/etc/switchyard/routes.yaml"}}, "/admin/config", "", 200,
			`"source": "file:/etc/switchyard/routes.yaml",
  "revision": 0
}`},
		{"ready from the last-known-good copy", Options{}, source{ready: true, config: lkg(false, false)}, "/readyz", "", 200,
			"{\n  \"config\": \"last-known-good copy (rev 7); etcd unreachable\",\n  \"status\": \"ready\"\n}"},
		{"last-known-good copy, etcd's document rejected", Options{}, source{ready: true, config: lkg(true, false)}, "/readyz", "", 200,
			`"config": "last-known-good copy (rev 7); etcd's document was rejected (see /admin/config)"`},
		{"last-known-good copy superseded: no note", Options{}, source{ready: true, config: lkg(true, true)}, "/readyz", "", 200,
			"{\n  \"status\": \"ready\"\n}"},
		{"last-known-good copy, pools waiting", Options{}, source{waiting: []string{"users"}, config: lkg(false, false)}, "/readyz", "", 503, `"status": "waiting"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Source, o.Gatherer = tc.src, reg
			srv := httptest.NewServer(New(o))
			defer srv.Close()
			req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%s (Host %q): %d %q, want %d containing %q", tc.path, tc.host, res.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}

// etcdConfig is a config read from etcd at revision 42, with revision 43 rejected.
var etcdConfig = gateway.ConfigInfo{
	Source: "etcd:/switchyard/config", Revision: 42, Digest: "sha256:00",
	LastRejected: &gateway.RejectedInfo{
		Revision: 43,
		Errors:   []string{"etcd:/switchyard/config@rev 43:6: routes[0].prefix: must start with /"},
	},
}

// lkg is a config started from the last-known-good copy at revision 7.
func lkg(answered, superseded bool) gateway.ConfigInfo {
	return gateway.ConfigInfo{
		Source: "etcd:/switchyard/config", Revision: 7,
		LastKnownGood: &gateway.LastKnownGoodInfo{Revision: 7, EtcdAnswered: answered, Superseded: superseded},
	}
}

// draining is an Options.Draining after SIGTERM.
func draining() (string, bool) { return "shutting down: SIGTERM received", true }

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"":                   true, // HTTP/1.0 without Host: no browser sends that
		"localhost":          true,
		"localhost:1":        true,
		"127.0.0.1:9901":     true,
		"127.255.255.254":    true,
		"[::1]:9901":         true,
		"[::ffff:127.0.0.1]": true,
		"[fe80::1%25lo]":     false,
		"localhost.":         false,
		"127.1":              false, // browsers canonicalize; others have no reason to send it
		"example.com":        false,
		"10.0.0.1:9901":      false,
		"[::]:9901":          false,
		"::1":                true, // unbracketed, still loopback
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
