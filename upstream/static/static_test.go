package static

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWatchEmitsOnceAndReturnsOnCancel(t *testing.T) {
	d := New(map[string]upstream.Snapshot{"users": upstream.NewSnapshot([]upstream.Endpoint{{Key: "127.0.0.1:9001"}})})
	for _, tc := range []struct {
		service string
		want    int
	}{{"users", 1}, {"unknown", 0}} {
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan upstream.Snapshot, 2)
		done := make(chan error, 1)
		go func() { done <- d.Watch(ctx, tc.service, func(s upstream.Snapshot) { got <- s }) }()
		if s := <-got; s.Len() != tc.want {
			t.Fatalf("%s: snapshot of %d, want %d", tc.service, s.Len(), tc.want)
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Watch did not return after cancel")
		}
		if len(got) != 0 {
			t.Fatal("more than one snapshot")
		}
	}
}
