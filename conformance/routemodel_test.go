package conformance

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// named is a backend that answers every request 200 with its own name as the body, and a
// Server field for the response-header edits to remove.
func named(t *testing.T, name string) *backend {
	return newBackend(t, reply(response("200 OK", name, "Server: upstream/1.0", "Content-Type: text/plain")))
}

// TestRouteModel drives every key of the route model through the real binary and listener to
// real backends: matchers and their precedence, wildcard hosts, split, sticky, mirror,
// rewrite, header edits, body limits, IP rules, CORS and compression.
func TestRouteModel(t *testing.T) {
	t.Parallel()
	b1, b2, shadow := named(t, "b1"), named(t, "b2"), named(t, "shadow")
	big := strings.Repeat(`{"id":1,"name":"a fairly compressible record"},`, 100)
	gz := newBackend(t, reply(response("200 OK", big, "Content-Type: application/json", `ETag: "v1"`)))
	q := func(b *backend) string { return fmt.Sprintf("%q", b.url()) }
	routes := strings.Join([]string{
		// Conditions on one prefix: the more specific route wins; none matching falls through.
		`  - { prefix: /canary, upstreams: [` + q(b2) + `], match: { headers: { X-Canary: always } } }`,
		`  - { prefix: /canary, upstreams: [` + q(b1) + `] }`,
		`  - { prefix: /verb, upstreams: [` + q(b1) + `] }`,
		`  - { prefix: /verb, upstreams: [` + q(b2) + `], match: { methods: [POST] } }`,
		`  - { prefix: /q, upstreams: [` + q(b2) + `], match: { query: { version: "2" } } }`,
		`  - { prefix: /q, upstreams: [` + q(b1) + `] }`,
		`  - { prefix: /only-post, upstreams: [` + q(b2) + `], match: { methods: [POST] } }`,
		// Hosts: exact > wildcard > none.
		`  - { prefix: /h, host: "api.example.com", upstreams: [` + q(b1) + `] }`,
		`  - { prefix: /h, host: "*.example.com", upstreams: [` + q(b2) + `] }`,
		`  - { prefix: /h, upstreams: [` + q(shadow) + `] }`,
		`  - { prefix: /split, split: [ { upstreams: [` + q(b1) + `], weight: 1 }, { upstreams: [` + q(b2) + `], weight: 3 } ] }`,
		`  - { prefix: /sticky, split: [ { upstreams: [` + q(b1) + `] }, { upstreams: [` + q(b2) + `] } ], sticky: { cookie: sy_test } }`,
		`  - { prefix: /sticky-nocookie, split: [ { upstreams: [` + q(b1) + `] }, { upstreams: [` + q(b2) + `] } ], sticky: { cookie: sy_nc }, headers: { request: { remove: [Cookie] } } }`,
		`  - { prefix: /cors-small, upstreams: [` + q(b1) + `], max_body_bytes: 5, cors: { allow_origins: ["https://app.example.com"], allow_methods: [POST] } }`,
		`  - { prefix: /mirror, upstreams: [` + q(b1) + `], mirror: { upstreams: [` + q(shadow) + `], percent: 100 } }`,
		`  - { prefix: /rw, upstreams: [` + q(b1) + `], rewrite: { prefix: /v2, host: users.internal } }`,
		`  - { prefix: /hdr, upstreams: [` + q(b1) + `], headers: { request: { set: { X-Env: prod }, remove: [Cookie] }, response: { set: { X-Gateway: switchyard }, remove: [Server] } } }`,
		`  - { prefix: /small, upstreams: [` + q(b1) + `], max_body_bytes: 10 }`,
		`  - { prefix: /private, upstreams: [` + q(b1) + `], ip_allow: [10.0.0.0/8] }`,
		`  - { prefix: /public, upstreams: [` + q(b1) + `], ip_deny: [192.168.0.0/16] }`,
		`  - { prefix: /cors, upstreams: [` + q(b1) + `], cors: { allow_origins: ["https://app.example.com"], allow_methods: [GET, PUT], max_age: 10m } }`,
		`  - { prefix: /gz, upstreams: [` + q(gz) + `], compress: { enabled: true, min_bytes: 100 } }`,
	}, "\n") + "\n"
	gw := startGateway(t, gatewaySpec{routes: routes})
	base := "http://" + gw.addr

	send := func(c *http.Client, method, target, host string, header http.Header, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == "" {
			req.Body = nil
		}
		if host != "" {
			req.Host = host
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: body: %v", method, target, err)
		}
		return resp, string(b)
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}

	t.Run("conditions and hosts", func(t *testing.T) {
		for _, c := range []struct {
			method, target, host string
			header               http.Header
			status               int
			body                 string
		}{
			{"GET", "/canary/x", "", http.Header{"X-Canary": {"always"}}, 200, "b2"},
			{"GET", "/canary/x", "", http.Header{"X-Canary": {"never"}}, 200, "b1"},
			{"GET", "/canary/x", "", nil, 200, "b1"},
			{"POST", "/verb", "", nil, 200, "b2"},
			{"GET", "/verb", "", nil, 200, "b1"},
			{"GET", "/q?version=2", "", nil, 200, "b2"},
			{"GET", "/q?version=3", "", nil, 200, "b1"},
			{"GET", "/only-post", "", nil, 404, ""},
			{"POST", "/only-post", "", nil, 200, "b2"},
			{"GET", "/h", "api.example.com", nil, 200, "b1"},
			{"GET", "/h", "web.example.com", nil, 200, "b2"},
			{"GET", "/h", "a.b.example.com", nil, 200, "b2"},
			{"GET", "/h", "example.com", nil, 200, "shadow"},
		} {
			resp, body := send(plain, c.method, c.target, c.host, c.header, "")
			if resp.StatusCode != c.status || c.body != "" && body != c.body {
				t.Errorf("%s %s (Host %q, %v): %d %q, want %d %q", c.method, c.target, c.host, c.header, resp.StatusCode, body, c.status, c.body)
			}
		}
	})

	t.Run("split is exact", func(t *testing.T) {
		counts := map[string]int{}
		for range 400 {
			_, body := send(plain, "GET", "/split", "", nil, "")
			counts[body]++
		}
		if counts["b1"] != 100 || counts["b2"] != 300 {
			t.Errorf("split 1:3 over 400 requests gave %v, want b1 100, b2 300", counts)
		}
	})

	t.Run("sticky", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Timeout: 5 * time.Second, Jar: jar}
		_, first := send(c, "GET", "/sticky", "", nil, "")
		u, _ := url.Parse(base + "/sticky")
		if len(jar.Cookies(u)) != 1 {
			t.Fatalf("cookies after the first request: %v, want sy_test", jar.Cookies(u))
		}
		for i := range 20 {
			if _, body := send(c, "GET", "/sticky", "", nil, ""); body != first {
				t.Fatalf("request %d went to %q, the client is pinned to %q", i, body, first)
			}
		}
		// A route that strips Cookie before forwarding still pins by it: the branch and
		// endpoint are chosen from the request as the client sent it.
		_, pinned := send(c, "GET", "/sticky-nocookie", "", nil, "")
		for i := range 20 {
			if _, body := send(c, "GET", "/sticky-nocookie", "", nil, ""); body != pinned {
				t.Fatalf("request %d went to %q with remove: [Cookie], the client is pinned to %q", i, body, pinned)
			}
		}
		// A forged cookie is ignored: the request is answered and a real cookie is issued.
		resp, _ := send(plain, "GET", "/sticky", "", http.Header{"Cookie": {"sy_test=forged"}}, "")
		if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
			t.Errorf("forged cookie: status %d, cookies %v; want 200 and a fresh cookie", resp.StatusCode, resp.Cookies())
		}
	})

	t.Run("mirror", func(t *testing.T) {
		before := len(shadow.find("X-Mirror-Probe", "1"))
		resp, body := send(plain, "POST", "/mirror/copy", "", http.Header{"X-Mirror-Probe": {"1"}}, "payload")
		if resp.StatusCode != 200 || body != "b1" {
			t.Fatalf("mirrored request answered %d %q, want 200 b1", resp.StatusCode, body)
		}
		if !shadow.waitFor(5*time.Second, func(rs []received) bool { return len(shadow.find("X-Mirror-Probe", "1")) > before }) {
			t.Fatal("the mirror never received the copy")
		}
		got := shadow.find("X-Mirror-Probe", "1")
		if last := got[len(got)-1]; string(last.Body) != "payload" || !strings.Contains(last.Host, "-shadow") {
			t.Errorf("mirror copy: body %q, Host %q; want the body and a -shadow Host", last.Body, last.Host)
		}
	})

	t.Run("rewrite and headers", func(t *testing.T) {
		send(plain, "GET", "/rw/users?id=7", "", nil, "")
		rs := b1.received()
		last := rs[len(rs)-1]
		if last.Target != "/v2/users?id=7" || last.Host != "users.internal" {
			t.Errorf("rewrite: upstream saw %q with Host %q, want /v2/users?id=7 and users.internal", last.Target, last.Host)
		}
		resp, _ := send(plain, "GET", "/hdr", "", http.Header{"Cookie": {"secret=1"}}, "")
		rs = b1.received()
		last = rs[len(rs)-1]
		if last.Header.Get("X-Env") != "prod" || last.Header.Get("Cookie") != "" {
			t.Errorf("request edits: upstream saw X-Env %q, Cookie %q", last.Header.Get("X-Env"), last.Header.Get("Cookie"))
		}
		if resp.Header.Get("Server") != "" || resp.Header.Get("X-Gateway") != "switchyard" {
			t.Errorf("response edits: Server %q, X-Gateway %q", resp.Header.Get("Server"), resp.Header.Get("X-Gateway"))
		}
	})

	t.Run("body limit and ip rules", func(t *testing.T) {
		before := len(b1.received())
		if resp, _ := send(plain, "POST", "/small", "", nil, "this body is over ten bytes"); resp.StatusCode != 413 {
			t.Errorf("body over max_body_bytes: %d, want 413", resp.StatusCode)
		}
		if n := len(b1.received()); n != before {
			t.Errorf("the upstream saw %d requests for a refused body", n-before)
		}
		if resp, _ := send(plain, "POST", "/small", "", nil, "tiny"); resp.StatusCode != 200 {
			t.Errorf("body under max_body_bytes: %d, want 200", resp.StatusCode)
		}
		if resp, _ := send(plain, "GET", "/private", "", nil, ""); resp.StatusCode != 403 {
			t.Errorf("127.0.0.1 outside ip_allow: %d, want 403", resp.StatusCode)
		}
		if resp, _ := send(plain, "GET", "/public", "", nil, ""); resp.StatusCode != 200 {
			t.Errorf("127.0.0.1 outside ip_deny: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("cors", func(t *testing.T) {
		before := len(b1.received())
		resp, _ := send(plain, "OPTIONS", "/cors", "", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"PUT"}}, "")
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			resp.Header.Get("Access-Control-Max-Age") != "600" {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		if n := len(b1.received()); n != before {
			t.Errorf("a preflight reached the upstream")
		}
		resp, _ = send(plain, "GET", "/cors", "", http.Header{"Origin": {"https://app.example.com"}}, "")
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("actual request: %v", resp.Header)
		}
		// The gateway's own refusal carries the CORS headers: the browser sees the 413.
		resp, _ = send(plain, "POST", "/cors-small", "", http.Header{"Origin": {"https://app.example.com"}}, "too large a body")
		if resp.StatusCode != 413 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Errorf("refusal on a CORS route: %d %v", resp.StatusCode, resp.Header)
		}
		resp, _ = send(plain, "GET", "/cors", "", http.Header{"Origin": {"https://evil.example"}}, "")
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("a foreign origin was granted: %v", resp.Header)
		}
	})

	t.Run("compression", func(t *testing.T) {
		resp, body := send(plain, "GET", "/gz", "", http.Header{"Accept-Encoding": {"gzip"}}, "")
		// net/http may frame a short compressed body with its own Content-Length; the
		// upstream's (the uncompressed size) must not survive.
		if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Length") == fmt.Sprint(len(big)) ||
			resp.Header.Get("ETag") != `W/"v1"` {
			t.Fatalf("compressed response fields: %v", resp.Header)
		}
		zr, err := gzip.NewReader(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		plainBody, err := io.ReadAll(zr)
		if err != nil || string(plainBody) != big {
			t.Errorf("gzip body decodes to %d bytes (%v), want the %d the upstream sent", len(plainBody), err, len(big))
		}
		resp, body = send(plain, "GET", "/gz", "", nil, "")
		if resp.Header.Get("Content-Encoding") != "" || body != big {
			t.Errorf("a client without Accept-Encoding got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
		}
	})
}
