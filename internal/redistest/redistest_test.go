package redistest

import (
	"context"
	"testing"
	"time"
)

func TestStartRestart(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	if err := c.Set(ctx(2*time.Second), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Pause()
	if err := c.Ping(ctx(100 * time.Millisecond)).Err(); err == nil {
		t.Fatal("ping of a paused server succeeded")
	}
	s.Resume()
	s.Kill()
	if err := c.Ping(ctx(time.Second)).Err(); err == nil {
		t.Fatal("ping after kill succeeded")
	}
	s.Restart(t)
	if n, err := c.Exists(ctx(5*time.Second), "k").Result(); err != nil || n != 0 {
		t.Fatalf("after restart: exists %d, %v (want a fresh, empty server)", n, err)
	}
}
