package etcdtest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartPutGetRestart(t *testing.T) {
	s := Start(t)
	cli := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if s.Etcd() != nil {
		t.Fatal("Etcd() not nil after Stop")
	}
	s.Restart(t)
	resp, err := cli.Get(ctx, "/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart got %v, want /k=v (same data dir)", resp.Kvs)
	}
}

func TestClusterLeaderLoss(t *testing.T) {
	c := StartCluster(t, 3)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	old := c.Leader(t)
	c.Member(old).Stop()
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put after leader loss: %v", err)
	}
	if now := c.Leader(t); now == old {
		t.Fatalf("leader still %d after it stopped", now)
	}
}
