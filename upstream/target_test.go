package upstream

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStaticWatchEmitsTargetOnceAndReturnsOnCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		eps  []Endpoint
		want []string
	}{
		{"endpoints, sorted, weight defaulted", []Endpoint{{Key: "127.0.0.1:9002"}, {Key: "127.0.0.1:9001", Weight: 3}}, []string{"127.0.0.1:9001", "127.0.0.1:9002"}},
		{"empty list is an empty pool", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			got := make(chan Snapshot, 2)
			done := make(chan error, 1)
			go func() { done <- Static{}.Watch(ctx, Target{Endpoints: tc.eps}, func(s Snapshot) { got <- s }) }()
			s := <-got
			if s.Len() != len(tc.want) {
				t.Fatalf("snapshot of %d, want %d", s.Len(), len(tc.want))
			}
			for i, e := range s.Endpoints() {
				if e.Key != tc.want[i] || e.Weight < 1 {
					t.Fatalf("endpoint %d = %+v, want key %s and a weight", i, e, tc.want[i])
				}
			}
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Watch did not return after cancel")
			}
			if len(got) != 0 {
				t.Fatal("more than one snapshot")
			}
		})
	}
}

func TestTargetCloneSharesNoSlice(t *testing.T) {
	orig := Target{Service: "users", Tags: []string{"v1"}, Endpoints: []Endpoint{{Key: "a:1"}}}
	c := orig.Clone()
	orig.Tags[0], orig.Endpoints[0].Key = "changed", "changed"
	if c.Tags[0] != "v1" || c.Endpoints[0].Key != "a:1" || c.Service != "users" {
		t.Fatalf("clone follows the original: %+v", c)
	}
}
