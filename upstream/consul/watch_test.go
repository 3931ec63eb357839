package consul

import (
	"maps"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/switchyard/switchyard/upstream"
)

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name      string
		prev, got uint64
		want      uint64
	}{
		{"first answer", 0, 42, 42},
		{"moved forward", 42, 57, 57},
		{"unchanged (wait expired)", 42, 42, 42},
		{"went backwards: start over", 42, 7, 0},
		{"zero from first query is sanitised to 1", 0, 0, 1},
		{"zero after a real index is a reset", 42, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextIndex(tt.prev, tt.got); got != tt.want {
				t.Errorf("nextIndex(%d, %d) = %d, want %d", tt.prev, tt.got, got, tt.want)
			}
		})
	}
}

func TestToEndpoint(t *testing.T) {
	checks := func(statuses ...string) api.HealthChecks {
		var hc api.HealthChecks
		for i, s := range statuses {
			hc = append(hc, &api.HealthCheck{CheckID: "c" + string(rune('0'+i)), Status: s})
		}
		return hc
	}
	entry := func(addr, nodeAddr string, port int, mod func(*api.AgentService), hc api.HealthChecks) *api.ServiceEntry {
		s := &api.AgentService{ID: "x", Service: "svc", Address: addr, Port: port,
			Weights: api.AgentWeights{Passing: 4, Warning: 2}}
		if mod != nil {
			mod(s)
		}
		return &api.ServiceEntry{Node: &api.Node{Address: nodeAddr}, Service: s, Checks: hc}
	}
	tests := []struct {
		name        string
		e           *api.ServiceEntry
		passingOnly bool
		wantOK      bool
		wantErr     bool
		wantKey     string
		wantWeight  int
		wantScheme  string
		wantMeta    map[string]string
		wantProto   upstream.Protocol
	}{
		{name: "service address wins", e: entry("10.0.0.5", "10.9.9.9", 8080, nil, checks("passing")),
			passingOnly: true, wantOK: true, wantKey: "10.0.0.5:8080", wantWeight: 4},
		{name: "node address fallback", e: entry("", "10.9.9.9", 8080, nil, checks("passing")),
			passingOnly: true, wantOK: true, wantKey: "10.9.9.9:8080", wantWeight: 4},
		{name: "ipv6 canonical and bracketed", e: entry("2001:db8:0::1", "", 80, nil, nil),
			passingOnly: true, wantOK: true, wantKey: "[2001:db8::1]:80", wantWeight: 4},
		{name: "hostname", e: entry("users.internal", "", 80, nil, nil),
			passingOnly: true, wantOK: true, wantKey: "users.internal:80", wantWeight: 4},
		{name: "no address at all", e: entry("", "", 8080, nil, nil), passingOnly: true, wantErr: true},
		{name: "port zero", e: entry("10.0.0.5", "", 0, nil, nil), passingOnly: true, wantErr: true},
		{name: "port too large", e: entry("10.0.0.5", "", 70000, nil, nil), passingOnly: true, wantErr: true},
		{name: "nil service", e: &api.ServiceEntry{}, passingOnly: true, wantErr: true},
		{name: "bad scheme meta", e: entry("10.0.0.5", "", 80, func(s *api.AgentService) {
			s.Meta = map[string]string{"scheme": "ftp"}
		}, nil), passingOnly: true, wantErr: true},
		{name: "https scheme, meta and tags", e: entry("10.0.0.5", "", 443, func(s *api.AgentService) {
			s.Meta = map[string]string{"scheme": "https", "zone": "a"}
			s.Tags = []string{"v2", "canary"}
		}, nil), passingOnly: true, wantOK: true, wantKey: "10.0.0.5:443", wantWeight: 4, wantScheme: "https",
			wantMeta: map[string]string{"scheme": "https", "zone": "a", "tags": "v2,canary"}},
		{name: "bad protocol meta", e: entry("10.0.0.5", "", 80, func(s *api.AgentService) {
			s.Meta = map[string]string{"protocol": "grpc"}
		}, nil), passingOnly: true, wantErr: true},
		{name: "h2c protocol meta", e: entry("10.0.0.5", "", 50051, func(s *api.AgentService) {
			s.Meta = map[string]string{"protocol": "h2c"}
		}, nil), passingOnly: true, wantOK: true, wantKey: "10.0.0.5:50051", wantWeight: 4,
			wantMeta: map[string]string{"protocol": "h2c"}, wantProto: upstream.ProtocolH2C},
		{name: "own tags meta wins", e: entry("10.0.0.5", "", 80, func(s *api.AgentService) {
			s.Meta = map[string]string{"tags": "mine"}
			s.Tags = []string{"v2"}
		}, nil), passingOnly: true, wantOK: true, wantKey: "10.0.0.5:80", wantWeight: 4,
			wantMeta: map[string]string{"tags": "mine"}},
		{name: "warning kept with warning weight", e: entry("10.0.0.5", "", 80, nil, checks("passing", "warning")),
			wantOK: true, wantKey: "10.0.0.5:80", wantWeight: 2},
		{name: "passing keeps passing weight", e: entry("10.0.0.5", "", 80, nil, checks("passing")),
			wantOK: true, wantKey: "10.0.0.5:80", wantWeight: 4},
		{name: "critical dropped", e: entry("10.0.0.5", "", 80, nil, checks("passing", "critical")), wantOK: false},
		{name: "maintenance dropped", e: entry("10.0.0.5", "", 80, nil, api.HealthChecks{
			{CheckID: api.ServiceMaintPrefix + "x", Status: "critical"}}), wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, ok, err := toEndpoint(tt.e, tt.passingOnly)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if ep.Key != tt.wantKey || ep.Weight != tt.wantWeight || ep.Scheme != tt.wantScheme {
				t.Errorf("got key %q weight %d scheme %q, want %q %d %q",
					ep.Key, ep.Weight, ep.Scheme, tt.wantKey, tt.wantWeight, tt.wantScheme)
			}
			if ep.Protocol != tt.wantProto {
				t.Errorf("protocol = %v, want %v", ep.Protocol, tt.wantProto)
			}
			if !maps.Equal(ep.Meta, tt.wantMeta) {
				t.Errorf("meta = %v, want %v", ep.Meta, tt.wantMeta)
			}
		})
	}
}
