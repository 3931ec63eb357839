package zookeeper

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/internal/zktest"
	"github.com/switchyard/switchyard/upstream"
)

// eventually bounds every wait for the registry to propagate: a liveness bound on a
// shared, busy machine, not a speed assertion (speed lives in the benchmark).
const eventually = 15 * time.Second

var acl = zk.WorldACL(zk.PermAll)

// env is one real server, a writer session standing in for the services, and a running
// discoverer watching one service.
type env struct {
	srv    *zktest.Server
	writer *zk.Conn
	d      *Discoverer
	rec    *testkit.Recorder
	done   chan error
}

// setup starts a server and a writer; watch starts the discoverer.
func setup(t *testing.T) *env {
	t.Helper()
	srv := zktest.Start(t)
	return &env{srv: srv, writer: connect(t, srv, 30*time.Second)}
}

func connect(t testing.TB, srv *zktest.Server, timeout time.Duration) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{srv.Addr}, timeout, zk.WithLogInfo(false), zk.WithLogger(zkLogger{slog.New(slog.DiscardHandler)}))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func (e *env) watch(t *testing.T, service string, cfg config.ZooKeeper, opts Options) {
	t.Helper()
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{e.srv.Addr}
	}
	d, err := New(&cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.d, e.rec, e.done = d, &testkit.Recorder{Wait: eventually}, make(chan error, 1)
	go func() { e.done <- d.Watch(ctx, upstream.Target{Service: service}, e.rec.Update) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-e.done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		case <-time.After(eventually):
			t.Error("Watch did not return after cancel")
		}
		d.Close()
	})
}

func mkdirs(t testing.TB, c *zk.Conn, path string) {
	t.Helper()
	p := ""
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		p += "/" + part
		if _, err := c.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", p, err)
		}
	}
}

func create(t testing.TB, c *zk.Conn, path, data string, flags int32) {
	t.Helper()
	if _, err := c.Create(path, []byte(data), flags, acl); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}

func TestWatchFollowsRegistry(t *testing.T) {
	e := setup(t)
	mkdirs(t, e.writer, "/services/users")
	create(t, e.writer, "/services/users/a", `{"address":"127.0.0.1","port":9001}`, zk.FlagEphemeral)
	e.watch(t, "users", config.ZooKeeper{}, Options{})
	e.rec.WaitKeys(t, "127.0.0.1:9001")

	// A second instance in its own session, the usual registrar shape.
	other := connect(t, e.srv, 30*time.Second)
	create(t, other, "/services/users/b", "127.0.0.1:9002", zk.FlagEphemeral)
	e.rec.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002")

	// Data change on an existing node (re-registration on a new port).
	if _, err := e.writer.Set("/services/users/a", []byte("127.0.0.1:9003"), -1); err != nil {
		t.Fatal(err)
	}
	e.rec.WaitKeys(t, "127.0.0.1:9002", "127.0.0.1:9003")

	// Deregistration by delete.
	if err := e.writer.Delete("/services/users/a", -1); err != nil {
		t.Fatal(err)
	}
	e.rec.WaitKeys(t, "127.0.0.1:9002")

	// A registrar whose connection closes without deleting: its session ends, so does
	// its ephemeral node.
	other.Close()
	e.rec.WaitKeys(t)

	// Nodes of another service are none of this watch's business.
	mkdirs(t, e.writer, "/services/orders")
	create(t, e.writer, "/services/orders/x", "127.0.0.1:9100", 0)
	create(t, e.writer, "/services/users/c", "127.0.0.1:9004", 0)
	e.rec.WaitKeys(t, "127.0.0.1:9004")
	for _, s := range e.rec.AllKeys() {
		if slices.Contains(s, "127.0.0.1:9100") {
			t.Fatalf("snapshot %v holds another service's endpoint", s)
		}
	}
}

func TestMissingServicePath(t *testing.T) {
	e := setup(t)
	e.watch(t, "late", config.ZooKeeper{Root: "/custom/root/"}, Options{})
	e.rec.WaitKeys(t) // an empty pool (the gateway answers 503), not an error loop

	mkdirs(t, e.writer, "/custom/root/late")
	create(t, e.writer, "/custom/root/late/1", "127.0.0.1:9001", 0)
	e.rec.WaitKeys(t, "127.0.0.1:9001")

	// The service node going away entirely is again an empty pool, and it may come back.
	if err := e.writer.Delete("/custom/root/late/1", -1); err != nil {
		t.Fatal(err)
	}
	if err := e.writer.Delete("/custom/root/late", -1); err != nil {
		t.Fatal(err)
	}
	e.rec.WaitKeys(t)
	mkdirs(t, e.writer, "/custom/root/late")
	create(t, e.writer, "/custom/root/late/2", "127.0.0.1:9002", 0)
	e.rec.WaitKeys(t, "127.0.0.1:9002")

	// No two consecutive snapshots are equal: only changes are emitted.
	all := e.rec.AllKeys()
	for i := 1; i < len(all); i++ {
		if slices.Equal(all[i-1], all[i]) {
			t.Fatalf("snapshot %d repeats the previous one: %v", i, all)
		}
	}
}

func TestMalformedNodeSkipped(t *testing.T) {
	e := setup(t)
	reg := prometheus.NewRegistry()
	mkdirs(t, e.writer, "/services/api")
	create(t, e.writer, "/services/api/good", "127.0.0.1:9001", 0)
	create(t, e.writer, "/services/api/bad", "definitely not an address", 0)
	e.watch(t, "api", config.ZooKeeper{}, Options{Metrics: upstream.NewDiscoveryMetrics(reg)})
	e.rec.WaitKeys(t, "127.0.0.1:9001")

	// A change elsewhere re-reads the listing but not the bad node's data: it is counted
	// once, not once per change.
	create(t, e.writer, "/services/api/also-good", `{"address":"127.0.0.1","port":9002}`, 0)
	e.rec.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002")
	wantRejected(t, reg, 1)

	// Fixing the bad node brings it in.
	if _, err := e.writer.Set("/services/api/bad", []byte("127.0.0.1:9003"), -1); err != nil {
		t.Fatal(err)
	}
	e.rec.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")
	wantRejected(t, reg, 1)
}

func wantRejected(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	want := `# HELP switchyard_registry_entries_rejected_total Registry entries skipped because they could not be parsed, by registry and service.
# TYPE switchyard_registry_entries_rejected_total counter
switchyard_registry_entries_rejected_total{registry="zookeeper",service="api"} ` + strconv.Itoa(n) + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_registry_entries_rejected_total"); err != nil {
		t.Fatal(err)
	}
}

// TestSessionExpiry cuts the discoverer off (a partition) past its session timeout, so the
// running server expires its session: it must start a new one, re-read, and see what
// changed meanwhile.
func TestSessionExpiry(t *testing.T) {
	e := setup(t)
	proxy := e.srv.Proxy(t)
	mkdirs(t, e.writer, "/services/users")
	create(t, e.writer, "/services/users/a", "127.0.0.1:9001", 0)
	logs := &recordingHandler{}
	cfg := config.ZooKeeper{Servers: []string{proxy.Addr}, SessionTimeout: zktest.MinSessionTimeout}
	e.watch(t, "users", cfg, Options{Logger: slog.New(logs)})
	e.rec.WaitKeys(t, "127.0.0.1:9001")
	before := e.d.conn.SessionID()

	proxy.Cut()
	// Changes while the discoverer cannot see them; the writer's session is direct.
	if err := e.writer.Delete("/services/users/a", -1); err != nil {
		t.Fatal(err)
	}
	create(t, e.writer, "/services/users/b", "127.0.0.1:9002", 0)
	time.Sleep(3 * zktest.MinSessionTimeout) // the server expires the session after 1
	if got := e.rec.AllKeys(); !slices.Equal(got[len(got)-1], []string{"127.0.0.1:9001"}) {
		t.Fatalf("while cut off, the last snapshot changed: %v", got)
	}
	proxy.Heal()
	e.rec.WaitKeys(t, "127.0.0.1:9002")

	if !logs.has("zookeeper session expired") {
		t.Fatal("the discoverer's session never expired; the test did not test expiry")
	}
	if after := e.d.conn.SessionID(); after == before || after == 0 {
		t.Fatalf("session id %x after expiry, was %x", after, before)
	}
	// Its watches work in the new session.
	create(t, e.writer, "/services/users/c", "127.0.0.1:9003", 0)
	e.rec.WaitKeys(t, "127.0.0.1:9002", "127.0.0.1:9003")
}

// TestServerRestart freezes, then stops the only server: the pool keeps its last snapshot
// (no empty emission), and afterwards the watch catches up.
func TestServerRestart(t *testing.T) {
	e := setup(t)
	mkdirs(t, e.writer, "/services/users")
	create(t, e.writer, "/services/users/a", "127.0.0.1:9001", zk.FlagEphemeral)
	e.watch(t, "users", config.ZooKeeper{}, Options{})
	e.rec.WaitKeys(t, "127.0.0.1:9001")

	// Frozen (SIGSTOP) for less than the 10 s session: nothing is lost, nothing emitted.
	e.srv.Pause()
	time.Sleep(1500 * time.Millisecond)
	e.srv.Resume()
	create(t, e.writer, "/services/users/b", "127.0.0.1:9002", zk.FlagEphemeral)
	e.rec.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002")

	e.srv.Stop()
	// Long enough for the client to notice the dead connection and retry a few times.
	time.Sleep(2 * time.Second)
	e.srv.Restart(t)
	create(t, e.writer, "/services/users/c", "127.0.0.1:9003", zk.FlagEphemeral)
	e.rec.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")

	for _, s := range e.rec.AllKeys() {
		if len(s) == 0 {
			t.Fatalf("an empty snapshot was emitted: %v", e.rec.AllKeys())
		}
	}
}

// recordingHandler keeps log messages so a test can check which path the code took.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) has(prefix string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.msgs, func(m string) bool { return strings.HasPrefix(m, prefix) })
}

// TestCloseWhileServerFrozen: Close must not wait out go-zookeeper's handshake timeout (7 x
// the session timeout) on a server that accepts connections but answers nothing; goleak in
// TestMain then proves its goroutines are gone.
func TestCloseWhileServerFrozen(t *testing.T) {
	e := setup(t)
	mkdirs(t, e.writer, "/services/users")
	create(t, e.writer, "/services/users/a", "127.0.0.1:9001", 0)
	cfg := config.ZooKeeper{Servers: []string{e.srv.Addr}, SessionTimeout: zktest.MinSessionTimeout}
	d, err := New(&cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &testkit.Recorder{Wait: eventually}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Watch(ctx, upstream.Target{Service: "users"}, rec.Update) }()
	rec.WaitKeys(t, "127.0.0.1:9001")

	e.srv.Pause()
	defer e.srv.Resume()
	// Past the receive timeout (2/3 of the session), so the client is reconnecting into
	// the frozen server's accept backlog.
	time.Sleep(2 * zktest.MinSessionTimeout)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch returned %v", err)
	}
	d.Close()
	if got := rec.AllKeys(); len(got) != 1 {
		t.Fatalf("snapshots while frozen: %v", got)
	}
}
