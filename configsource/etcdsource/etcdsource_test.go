package etcdsource

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/testkit"
	upetcd "github.com/switchyard/switchyard/upstream/etcd"
)

const key = "/switchyard/config"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// gatewayClient is the client a gateway builds (the discoverer's constructor, reconnect
// backoff capped at 1 s).
func gatewayClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := upetcd.NewClient(&config.Etcd{Endpoints: endpoints, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

type recorder struct {
	mu   sync.Mutex
	docs []string
	revs []int64
}

func (r *recorder) update(doc []byte, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.docs = append(r.docs, string(doc))
	r.revs = append(r.revs, rev)
}

func (r *recorder) snapshot() ([]string, []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.docs), slices.Clone(r.revs)
}

// waitLast waits (bounded) until the last document delivered is want.
func (r *recorder) waitLast(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		docs, _ := r.snapshot()
		if len(docs) > 0 && docs[len(docs)-1] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q; delivered %q", want, docs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startWatch(t *testing.T, cli *clientv3.Client, seen int64, log *slog.Logger) *recorder {
	t.Helper()
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, cli, key, seen, log, r.update) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return within 10s of cancel")
		}
	})
	return r
}

func put(t *testing.T, cli *clientv3.Client, v string) int64 {
	t.Helper()
	resp, err := cli.Put(ctxT(t), key, v)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func TestWatchPutDeleteCompactRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	writer := srv.Client(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))

	r1 := put(t, writer, "v1")
	r := startWatch(t, gatewayClient(t, []string{proxy.Addr()}), 0, log)
	r.waitLast(t, "v1")
	r2 := put(t, writer, "v2")
	r.waitLast(t, "v2")

	// A deleted key keeps the last document (no delivery) and says so.
	if _, err := writer.Delete(ctxT(t), key); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "etcd config key deleted")
	put(t, writer, "v3")
	r.waitLast(t, "v3")

	// Compaction while the watcher is cut off: it re-reads and gets the newest value.
	proxy.Cut()
	put(t, writer, "v4")
	r5 := put(t, writer, "v5")
	if _, err := writer.Compact(ctxT(t), r5); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	r.waitLast(t, "v5")
	waitLog(t, logs, "compacted")

	// etcd restarts: the watch resumes and follows the next put.
	srv.Stop()
	srv.Restart(t)
	put(t, writer, "v6")
	r.waitLast(t, "v6")

	docs, revs := r.snapshot()
	if slices.Contains(docs, "v4") {
		t.Errorf("v4 was compacted away before the watcher saw it, yet delivered: %q", docs)
	}
	if !slices.IsSorted(revs) || revs[0] != r1 || revs[1] != r2 {
		t.Errorf("revisions %v: want increasing from %d, %d", revs, r1, r2)
	}
	for i := 1; i < len(revs); i++ {
		if revs[i] == revs[i-1] {
			t.Errorf("revision %d delivered twice: %v", revs[i], revs)
		}
	}
}

// A watch started with the revision the caller already holds does not deliver it again.
func TestWatchSkipsSeenRevision(t *testing.T) {
	srv := etcdtest.Start(t)
	writer := srv.Client(t)
	rev := put(t, writer, "v1")
	r := startWatch(t, gatewayClient(t, srv.Endpoints()), rev, nil)
	put(t, writer, "v2")
	r.waitLast(t, "v2")
	if docs, _ := r.snapshot(); len(docs) != 1 {
		t.Errorf("delivered %q, want only v2", docs)
	}
}

func TestGetPutCAS(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := gatewayClient(t, srv.Endpoints())
	ctx := ctxT(t)
	if _, _, err := Get(ctx, cli, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	r1, err := Put(ctx, cli, key, []byte("a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Put(ctx, cli, key, []byte("b"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("create over an existing key: %v, want ErrConflict", err)
	}
	r2, err := Put(ctx, cli, key, []byte("b"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("Put at the current revision: rev %d, %v", r2, err)
	}
	if _, err := Put(ctx, cli, key, []byte("stale"), r1); !errors.Is(err, ErrConflict) {
		t.Fatalf("Put at a stale revision: %v, want ErrConflict", err)
	}
	doc, rev, err := Get(ctx, cli, key)
	if err != nil || string(doc) != "b" || rev != r2 {
		t.Fatalf("Get = %q@%d, %v; want b@%d", doc, rev, err, r2)
	}
}

func TestParseURL(t *testing.T) {
	eps, k, err := ParseURL("etcd://10.0.0.1:2379,10.0.0.2:2379/switchyard/config")
	if err != nil || !slices.Equal(eps, []string{"10.0.0.1:2379", "10.0.0.2:2379"}) || k != "/switchyard/config" {
		t.Fatalf("ParseURL = %v %q %v", eps, k, err)
	}
	for _, bad := range []string{"etcd://h:1", "etcd://h:1/", "etcd://,h:1/k", "routes.yaml", "etcd://h:1/k?x=1"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q): no error", bad)
		}
	}
	_, _, err = ParseURL("etcd://user:s3cret@h:1/k")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("credentials in the URL: err %v (must refuse, without repeating the password)", err)
	}
	if got := Name("/switchyard/config", 42); got != "etcd:/switchyard/config@rev 42" {
		t.Errorf("Name = %q", got)
	}
}

func waitLog(t *testing.T, logs *testkit.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
