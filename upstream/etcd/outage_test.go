package etcd

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/testkit"
)

// gatewayClient is the client the gateway would build (NewClient, with its reconnect
// backoff), closed after the watch stops.
func gatewayClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := NewClient(&config.Etcd{Endpoints: endpoints, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func TestCompactionWhileWatchCutRelists(t *testing.T) {
	srv := etcdtest.Start(t)
	writer := srv.Client(t)
	ctx := ctxT(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	logs := &testkit.SyncBuffer{}
	r := startWatch(t, gatewayClient(t, []string{proxy.Addr()}), "users",
		Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})

	for i, id := range []string{"a", "b", "c"} {
		if _, err := writer.Put(ctx, "/services/users/"+id, fmt.Sprintf(`{"address":"127.0.0.1","port":%d}`, 9001+i)); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")

	proxy.Cut()
	atCut := r.Count()
	// While the discoverer cannot see etcd: a removal (would be stale if missed), an
	// addition (would be missing), an update, then compaction past all of it.
	steps := []clientv3.Op{
		clientv3.OpDelete("/services/users/a"),
		clientv3.OpPut("/services/users/d", "127.0.0.1:9004"),
		clientv3.OpPut("/services/users/b", `{"address":"127.0.0.1","port":9002,"weight":5}`),
		clientv3.OpPut("/services/users/e", "127.0.0.1:9005"),
		clientv3.OpDelete("/services/users/e"),
	}
	var rev int64
	for _, op := range steps {
		resp, err := writer.Do(ctx, op)
		if err != nil {
			t.Fatal(err)
		}
		rev = max(rev, headerRev(resp))
	}
	if _, err := writer.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()

	s := r.WaitKeys(t, "127.0.0.1:9002", "127.0.0.1:9003", "127.0.0.1:9004")
	if w := s.Endpoints()[0].Weight; w != 5 {
		t.Fatalf("updated entry has weight %d, want 5", w)
	}
	if !strings.Contains(logs.String(), "re-listing") {
		t.Fatalf("the watch resumed without noticing the compaction; logs:\n%s", logs)
	}
	// The snapshot was not emptied or stale in between: every emission after the cut is
	// either the pre-cut set or the final set.
	for _, s := range r.All()[atCut:] {
		k := testkit.Keys(s)
		if !slices.Equal(k, []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}) &&
			!slices.Equal(k, []string{"127.0.0.1:9002", "127.0.0.1:9003", "127.0.0.1:9004"}) {
			t.Fatalf("intermediate snapshot %v", k)
		}
	}
}

func headerRev(r clientv3.OpResponse) int64 {
	switch {
	case r.Put() != nil:
		return r.Put().Header.Revision
	case r.Del() != nil:
		return r.Del().Header.Revision
	}
	return 0
}

func TestClusterLeaderStoppedNoUpdateLost(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	writer := c.Client(t)
	ctx := ctxT(t)
	r := startWatch(t, gatewayClient(t, c.Endpoints()), "users", Options{})
	r.WaitKeys(t)

	// Keep writing while the leader goes away; every acknowledged write must show up.
	const n = 60
	want := []string{}
	leader := c.Member(c.Leader(t))
	leaderStopped := make(chan struct{})
	go func() {
		defer close(leaderStopped)
		time.Sleep(50 * time.Millisecond)
		leader.Stop()
	}()
	// Puts and deletes are idempotent, so a request that failed (or timed out, maybe
	// applied) while the election runs is simply sent again.
	retry := func(what string, op func() error) {
		var err error
		for try := 0; try < 50; try++ {
			if err = op(); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond) // an election is under way
		}
		t.Fatalf("%s: %v", what, err)
	}
	for i := range n {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+i)
		retry("put "+addr, func() error { _, err := writer.Put(ctx, "/services/users/"+addr, addr); return err })
		want = append(want, addr)
		if i%3 == 2 { // deletes must not be lost either
			retry("delete "+addr, func() error { _, err := writer.Delete(ctx, "/services/users/"+addr); return err })
			want = want[:len(want)-1]
		}
	}
	<-leaderStopped
	slices.Sort(want)
	r.WaitKeys(t, want...)
	// And the watch still follows changes after the election.
	if _, err := writer.Put(ctx, "/services/users/last", "127.0.0.1:20000"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "127.0.0.1:20000")
	slices.Sort(want)
	r.WaitKeys(t, want...)
}

func TestEtcdDownKeepsSnapshotAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("holds etcd down for 10 s")
	}
	srv := etcdtest.Start(t)
	ctx := ctxT(t)
	r := startWatch(t, gatewayClient(t, srv.Endpoints()), "users", Options{})
	writer := srv.Client(t)
	if _, err := writer.Put(ctx, "/services/users/a", "127.0.0.1:9001"); err != nil {
		t.Fatal(err)
	}
	r.WaitKeys(t, "127.0.0.1:9001")
	before := r.Count()

	srv.Stop()
	time.Sleep(10 * time.Second)
	if n := r.Count(); n != before {
		s, _ := r.Latest()
		t.Fatalf("%d snapshots emitted while etcd was down (latest %v); the last one must stay", n-before, testkit.Keys(s))
	}
	srv.Restart(t)
	if _, err := writer.Put(ctx, "/services/users/b", "127.0.0.1:9002"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002")
	// Behaviour bound, with slack: the reconnect backoff is capped at 1 s.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("change after etcd came back took %s to arrive, want < 2s", d)
	}
	t.Logf("change after restart delivered in %s", time.Since(start).Round(time.Millisecond))
}
