package consul

import (
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/upstream"
)

func TestDiffChecks(t *testing.T) {
	web := func(node, id, status string, modify uint64) checkEntry {
		return checkEntry{Node: node, CheckID: id, ServiceName: "web", Status: status, ModifyIndex: modify}
	}
	serf := func(node, status string, modify uint64) checkEntry {
		return checkEntry{Node: node, CheckID: "serfHealth", Status: status, ModifyIndex: modify}
	}
	tests := []struct {
		name            string
		old, cur        []checkEntry
		services, nodes []string
	}{
		{name: "nothing changed",
			old: []checkEntry{web("n1", "c1", "passing", 5), serf("n1", "passing", 2)},
			cur: []checkEntry{web("n1", "c1", "passing", 5), serf("n1", "passing", 2)}},
		{name: "status flip", old: []checkEntry{web("n1", "c1", "passing", 5)},
			cur: []checkEntry{web("n1", "c1", "critical", 9)}, services: []string{"web"}},
		{name: "modify index alone (an output or definition change)", old: []checkEntry{web("n1", "c1", "passing", 5)},
			cur: []checkEntry{web("n1", "c1", "passing", 9)}, services: []string{"web"}},
		{name: "check added", old: nil,
			cur: []checkEntry{web("n1", "c1", "passing", 5)}, services: []string{"web"}},
		{name: "check removed", old: []checkEntry{web("n1", "c1", "passing", 5)},
			cur: nil, services: []string{"web"}},
		{name: "same check ID on another node is another check",
			old: []checkEntry{web("n1", "c1", "passing", 5)},
			cur: []checkEntry{web("n1", "c1", "passing", 5), web("n2", "c1", "passing", 7)}, services: []string{"web"}},
		{name: "node check changes report the node", old: []checkEntry{serf("n1", "passing", 2)},
			cur: []checkEntry{serf("n1", "critical", 8)}, nodes: []string{"n1"}},
		{name: "check moved to another service dirties both",
			old:      []checkEntry{web("n1", "c1", "passing", 5)},
			cur:      []checkEntry{{Node: "n1", CheckID: "c1", ServiceName: "api", Status: "passing", ModifyIndex: 9}},
			services: []string{"api", "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var services, nodes []string
			diffChecks(indexChecks(tt.old), indexChecks(tt.cur),
				func(s string) { services = append(services, s) }, func(n string) { nodes = append(nodes, n) })
			slices.Sort(services)
			slices.Sort(nodes)
			if !slices.Equal(services, tt.services) || !slices.Equal(nodes, tt.nodes) {
				t.Errorf("services %v nodes %v, want %v %v", services, nodes, tt.services, tt.nodes)
			}
		})
	}
}

func TestDiffCatalog(t *testing.T) {
	tests := []struct {
		name     string
		old, cur map[string][]string
		want     []string
	}{
		{name: "same", old: map[string][]string{"a": {"x"}, "b": nil}, cur: map[string][]string{"a": {"x"}, "b": nil}},
		{name: "appeared", old: map[string][]string{"a": nil}, cur: map[string][]string{"a": nil, "b": nil}, want: []string{"b"}},
		{name: "disappeared", old: map[string][]string{"a": nil, "b": nil}, cur: map[string][]string{"a": nil}, want: []string{"b"}},
		{name: "tag added", old: map[string][]string{"a": {"x"}}, cur: map[string][]string{"a": {"x", "y"}}, want: []string{"a"}},
		{name: "tag removed", old: map[string][]string{"a": {"x"}}, cur: map[string][]string{"a": {}}, want: []string{"a"}},
		{name: "tags reordered", old: map[string][]string{"a": {"x", "y", "z"}}, cur: map[string][]string{"a": {"z", "x", "y"}}},
		{name: "tag replaced", old: map[string][]string{"a": {"x", "y"}}, cur: map[string][]string{"a": {"z", "x"}}, want: []string{"a"}},
		{name: "tag counts differ", old: map[string][]string{"a": {"x", "x", "y"}}, cur: map[string][]string{"a": {"y", "x", "y"}}, want: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			diffCatalog(tt.old, tt.cur, func(s string) { got = append(got, s) })
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("changed %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExplainedRing(t *testing.T) {
	var r explainedRing
	if r.has(0) {
		t.Error("an empty ring has 0")
	}
	r.add(0)
	if r.has(0) {
		t.Error("0 was added; it means no index")
	}
	for i := uint64(1); i <= 300; i++ {
		r.add(i)
	}
	tests := []struct {
		index uint64
		want  bool
	}{{300, true}, {45, true}, {44, false}, {1, false}, {301, false}}
	for _, tt := range tests {
		if got := r.has(tt.index); got != tt.want {
			t.Errorf("has(%d) = %v, want %v (the ring keeps the last %d)", tt.index, got, tt.want, len(r.idx))
		}
	}
}

// TestWanted checks the client-side filter that replaces Consul's ?tag and ?passing now that
// one read of all instances serves every Target of a name.
func TestWanted(t *testing.T) {
	entry := func(tags []string, statuses ...string) *api.ServiceEntry {
		var hc api.HealthChecks
		for _, s := range statuses {
			hc = append(hc, &api.HealthCheck{Status: s})
		}
		return &api.ServiceEntry{Service: &api.AgentService{Tags: tags}, Checks: hc}
	}
	tests := []struct {
		name   string
		target upstream.Target
		e      *api.ServiceEntry
		want   bool
	}{
		{"no tags wanted, no checks", upstream.Target{}, entry(nil), true},
		{"every tag present", upstream.Target{Tags: []string{"v2", "eu"}}, entry([]string{"eu", "x", "v2"}, "passing"), true},
		{"one tag missing", upstream.Target{Tags: []string{"v2", "eu"}}, entry([]string{"v2"}, "passing"), false},
		{"tags compare case-insensitively", upstream.Target{Tags: []string{"V2"}}, entry([]string{"v2"}), true},
		{"passing only drops warning", upstream.Target{}, entry(nil, "passing", "warning"), false},
		{"passing only drops critical", upstream.Target{}, entry(nil, "critical"), false},
		{"include warning keeps warning", upstream.Target{IncludeWarning: true}, entry(nil, "warning"), true},
		{"include warning leaves critical to toEndpoint", upstream.Target{IncludeWarning: true}, entry(nil, "critical"), true},
		{"malformed entry goes on to be counted", upstream.Target{Tags: []string{"x"}}, &api.ServiceEntry{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &watch{target: tt.target}
			if got := w.wanted(tt.e); got != tt.want {
				t.Errorf("wanted = %v, want %v", got, tt.want)
			}
		})
	}
}
