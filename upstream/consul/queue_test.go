package consul

import (
	"slices"
	"testing"
)

func TestReadQueue(t *testing.T) {
	type op struct {
		name   string
		urgent bool
	}
	tests := []struct {
		name       string
		pushes     []op
		wantQueued []bool
		want       []string // pop order
	}{
		{name: "urgent before sweep", pushes: []op{{"a", false}, {"b", true}, {"c", false}, {"d", true}},
			wantQueued: []bool{true, true, true, true}, want: []string{"b", "d", "a", "c"}},
		{name: "no service twice in a lane", pushes: []op{{"a", true}, {"a", true}, {"b", false}, {"b", false}},
			wantQueued: []bool{true, false, true, false}, want: []string{"a", "b"}},
		{name: "a change moves a swept service ahead, read once", pushes: []op{{"a", false}, {"b", false}, {"b", true}},
			wantQueued: []bool{true, true, true}, want: []string{"b", "a"}},
		{name: "a sweep does not requeue an urgent service", pushes: []op{{"a", true}, {"a", false}},
			wantQueued: []bool{true, false}, want: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q readQueue
			services := map[string]*service{}
			for i, p := range tt.pushes {
				svc := services[p.name]
				if svc == nil {
					svc = &service{name: p.name}
					services[p.name] = svc
				}
				if got := q.push(svc, p.urgent); got != tt.wantQueued[i] {
					t.Errorf("push %d (%s, urgent %v) = %v, want %v", i, p.name, p.urgent, got, tt.wantQueued[i])
				}
			}
			var got []string
			for svc := q.pop(); svc != nil; svc = q.pop() {
				got = append(got, svc.name)
			}
			if !slices.Equal(got, tt.want) || !q.empty() {
				t.Errorf("popped %v (empty %v), want %v", got, q.empty(), tt.want)
			}
			for name, svc := range services {
				if svc.inUrgent || svc.inSweep {
					t.Errorf("%s still marked queued after the queue emptied", name)
				}
			}
		})
	}
}
