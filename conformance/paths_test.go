package conformance

import (
	"testing"
)

// TestPaths: the path a route is matched on is the path the backend receives. Encoded
// slashes are data, never separators, so they neither escape a route nor get decoded on
// the way; dot segments, encoded or not, are resolved before matching; a fragment is not
// part of a request target; and a fully qualified Host (trailing dot) is the same host.
func TestPaths(t *testing.T) {
	t.Parallel()
	api := newBackend(t, nil)
	strict := newBackend(t, nil)
	hosted := newBackend(t, nil)
	other := newBackend(t, nil)
	all := []*backend{api, strict, hosted, other}
	gw := startGateway(t, gatewaySpec{routes: route("/api", "strip_prefix: true", api) +
		route("/strict", "encoded_slashes: reject", strict) +
		"  - { host: api.example.com, prefix: /, upstreams: [\"" + hosted.url() + "\"] }\n" +
		route("/", "", other)})

	for _, c := range []struct {
		name       string
		target     string
		host       string
		wantStatus int      // 0: any
		at         *backend // must receive the request, with wantTarget
		wantTarget string
		notAt      *backend // must not receive it; nil: no backend but at may
	}{
		{name: "encoded slash kept", target: "/api/a%2Fb/c", at: api, wantTarget: "/a%2Fb/c"},
		{name: "encoded slash is no separator", target: "/api%2Fx", notAt: api},
		{name: "encoded dot segments", target: "/public/%2e%2e/api/x", at: api, wantTarget: "/x"},
		{name: "encoded slash rejected", target: "/strict/a%2Fb", wantStatus: 400},
		{name: "fragment", target: "/api/x#frag", wantStatus: 400},
		{name: "host with trailing dot", target: "/h", host: "api.example.com.", at: hosted, wantTarget: "/h"},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := c.host
			if host == "" {
				host = "gw"
			}
			cl := dial(t, gw.addr)
			resp, body := cl.mustRoundTrip(t, request("GET "+c.target+" HTTP/1.1", "Host: "+host, "X-Probe: "+c.name))
			if c.wantStatus != 0 && resp.StatusCode != c.wantStatus {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, c.wantStatus)
			}
			// Backends record a request before answering it, so by the time the client has
			// its response every backend that received the request has recorded it.
			for _, b := range all {
				got := b.find("X-Probe", c.name)
				switch {
				case b == c.at && len(got) != 1:
					t.Errorf("route's backend received the request %d times, want once", len(got))
				case b == c.at && got[0].Target != c.wantTarget:
					t.Errorf("backend received target %q, want exactly %q", got[0].Target, c.wantTarget)
				case b != c.at && len(got) > 0 && (c.notAt == nil || b == c.notAt):
					t.Errorf("a backend it must not reach received it as %q", got[0].Target)
				}
			}
		})
	}
}
