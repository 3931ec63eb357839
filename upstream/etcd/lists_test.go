package etcd

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// TestListsAreBounded: a Watch reads its service only while it holds one of the
// Discoverer's maxConcurrentLists slots, so 10,000 watches starting together cannot flood
// etcd with reads that then time out together; a Watch waiting for a slot still ends with
// its ctx.
func TestListsAreBounded(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	if _, err := cli.Put(ctxT(t), DefaultPrefix+"users/a", "127.0.0.1:9001"); err != nil {
		t.Fatal(err)
	}
	d := New(cli, Options{Logger: slog.New(slog.DiscardHandler)})
	for range maxConcurrentLists { // every slot taken, as by other services' reads
		d.lists <- struct{}{}
	}

	waiting, stopWaiting := context.WithCancel(context.Background())
	returned := make(chan error, 1)
	go func() {
		returned <- d.Watch(waiting, upstream.Target{Service: "users"}, func(upstream.Snapshot) {
			t.Error("a Watch without a slot read its service")
		})
	}()
	r := &testkit.Recorder{Wait: waitTimeout}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Watch(ctx, upstream.Target{Service: "users"}, r.Update) }()
	defer func() { cancel(); <-done }()

	// Both wait; ending the first one's context ends it without a read.
	time.Sleep(50 * time.Millisecond)
	stopWaiting()
	select {
	case err := <-returned:
		if err != context.Canceled {
			t.Errorf("waiting Watch returned %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("a Watch waiting for a slot did not return after its context ended")
	}
	if n := r.Count(); n != 0 {
		t.Fatalf("%d snapshots delivered while every slot was taken", n)
	}
	<-d.lists // one slot frees: the second Watch reads and delivers
	r.WaitKeys(t, "127.0.0.1:9001")
	// The slot is given back just after the snapshot is delivered.
	for deadline := time.Now().Add(waitTimeout); len(d.lists) != maxConcurrentLists-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots held after the read, want %d (the read gives its slot back)", len(d.lists), maxConcurrentLists-1)
		}
	}
}
