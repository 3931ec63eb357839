package upstream

import "testing"

func TestEndpointResolve(t *testing.T) {
	cases := []struct {
		route    Protocol
		scheme   string
		declared Protocol
		want     Protocol
	}{
		{ProtocolAuto, "http", ProtocolAuto, ProtocolHTTP1},   // plain, nothing declared: HTTP/1.1
		{ProtocolAuto, "https", ProtocolAuto, ProtocolAuto},   // TLS, nothing declared: ALPN decides
		{ProtocolAuto, "http", ProtocolH2C, ProtocolH2C},      // the endpoint's declaration
		{ProtocolAuto, "https", ProtocolHTTP1, ProtocolHTTP1}, // an https endpoint that wants HTTP/1.1
		{ProtocolHTTP1, "http", ProtocolH2C, ProtocolHTTP1},   // the route's explicit setting wins
		{ProtocolH2C, "http", ProtocolAuto, ProtocolH2C},
		{ProtocolH2, "https", ProtocolHTTP1, ProtocolH2},
	}
	for _, c := range cases {
		e := Endpoint{Key: "a:1", Scheme: c.scheme, Protocol: c.declared}
		if got := e.Resolve(c.route); got != c.want {
			t.Errorf("route %s, %s endpoint declaring %s: got %s, want %s", c.route, c.scheme, c.declared, got, c.want)
		}
	}
}

func TestParseProtocol(t *testing.T) {
	for _, p := range []Protocol{ProtocolAuto, ProtocolHTTP1, ProtocolH2C, ProtocolH2} {
		got, err := ParseProtocol(p.String())
		if err != nil || got != p {
			t.Errorf("ParseProtocol(%q) = %v, %v", p.String(), got, err)
		}
	}
	for _, bad := range []string{"", "HTTP1", "http2", "grpc", "h2 "} {
		if _, err := ParseProtocol(bad); err == nil {
			t.Errorf("ParseProtocol(%q) accepted", bad)
		}
	}
}

func TestNewSnapshotReadsProtocolFromMeta(t *testing.T) {
	s := NewSnapshot([]Endpoint{
		{Key: "a:1", Meta: map[string]string{"protocol": "h2c"}},
		{Key: "b:1", Meta: map[string]string{"protocol": "bogus"}}, // readers refuse it; here it is ignored
		{Key: "c:1", Protocol: ProtocolH2, Meta: map[string]string{"protocol": "http1"}},
	})
	got := []Protocol{s.Endpoints()[0].Protocol, s.Endpoints()[1].Protocol, s.Endpoints()[2].Protocol}
	want := []Protocol{ProtocolH2C, ProtocolAuto, ProtocolH2}
	if got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("protocols %v, want %v", got, want)
	}
}
