package etcd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for a snapshot; behaviour, not speed, is under test.
const waitTimeout = 10 * time.Second

// startWatch runs Watch until the test ends and checks it then returns ctx.Err().
func startWatch(t *testing.T, cli *clientv3.Client, service string, opts Options) *testkit.Recorder {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &testkit.Recorder{Wait: waitTimeout}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cli, opts).Watch(ctx, upstream.Target{Service: service}, r.Update) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != context.Canceled {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Watch did not return after cancel")
		}
	})
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestValueFormatsAndDeregister(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := ctxT(t)
	r := startWatch(t, cli, "users", Options{})
	r.WaitKeys(t) // an empty service is a valid first answer

	tests := []struct {
		name, id, value string
		want            upstream.Endpoint
	}{
		{"json", "a", `{"address":"127.0.0.1","port":9001,"weight":3,"meta":{"zone":"a"}}`,
			upstream.Endpoint{Key: "127.0.0.1:9001", Scheme: "http", Weight: 3, Meta: map[string]string{"zone": "a"}}},
		{"json host and https", "b", `{"host":"127.0.0.2","port":9443,"scheme":"https"}`,
			upstream.Endpoint{Key: "127.0.0.2:9443", Scheme: "https", Weight: 1}},
		{"host:port", "c", "127.0.0.3:9003", upstream.Endpoint{Key: "127.0.0.3:9003", Scheme: "http", Weight: 1}},
		{"url", "d", "http://127.0.0.4:9004", upstream.Endpoint{Key: "127.0.0.4:9004", Scheme: "http", Weight: 1}},
		{"ipv6", "e", `{"address":"::1","port":9005}`, upstream.Endpoint{Key: "[::1]:9005", Scheme: "http", Weight: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "/services/users/" + tt.id
			if _, err := cli.Put(ctx, key, tt.value); err != nil {
				t.Fatal(err)
			}
			s := r.WaitKeys(t, tt.want.Key)
			if got := s.Endpoints()[0]; !got.Equal(tt.want) {
				t.Fatalf("endpoint %+v, want %+v", got, tt.want)
			}
			if _, err := cli.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			r.WaitKeys(t)
		})
	}
	// Another service's keys, and a service whose name extends this one, stay out.
	for _, k := range []string{"/services/orders/x", "/services/users2/x"} {
		if _, err := cli.Put(ctx, k, "127.0.0.9:1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, "/services/users/z", "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	r.WaitKeys(t, "127.0.0.1:1")
}

func TestLeaseExpiryRemovesEndpoint(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := ctxT(t)
	r := startWatch(t, cli, "users", Options{})
	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A killed service stops sending keepalives: its lease runs out and etcd deletes the key.
	if _, err := cli.Put(ctx, "/services/users/dead", "127.0.0.1:9001", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/services/users/alive", "127.0.0.1:9002"); err != nil {
		t.Fatal(err)
	}
	r.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002")
	r.WaitKeys(t, "127.0.0.1:9002")
}

func TestMalformedValuesSkippedAndCounted(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := ctxT(t)
	reg := prometheus.NewRegistry()
	m := upstream.NewDiscoveryMetrics(reg)
	if _, err := cli.Put(ctx, "/services/users/good", "127.0.0.1:9001"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/services/users/bad1", "not an address"); err != nil {
		t.Fatal(err)
	}
	r := startWatch(t, cli, "users", Options{Metrics: m})
	r.WaitKeys(t, "127.0.0.1:9001")
	for _, v := range []string{`{"address":"127.0.0.1"}`, `{"port":80}`, "ftp://127.0.0.1:21", `{"address":"127.0.0.1","port":1,"weight":-2}`} {
		if _, err := cli.Put(ctx, "/services/users/bad2", v); err != nil {
			t.Fatal(err)
		}
	}
	// A good entry overwritten with garbage leaves; the rest of the pool stays.
	if _, err := cli.Put(ctx, "/services/users/flip", "127.0.0.1:9002"); err != nil {
		t.Fatal(err)
	}
	r.WaitKeys(t, "127.0.0.1:9001", "127.0.0.1:9002")
	if _, err := cli.Put(ctx, "/services/users/flip", "garbage"); err != nil {
		t.Fatal(err)
	}
	r.WaitKeys(t, "127.0.0.1:9001")
	if got := metricValue(t, reg, "switchyard_registry_entries_rejected_total"); got != 6 {
		t.Fatalf("rejected counter %v, want 6", got)
	}
}

// metricValue reads the etcd/users sample of a counter from reg, as /metrics would show it.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["registry"] == "etcd" && labels["service"] == "users" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestCoalesceAndSkipUnchanged(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := ctxT(t)
	r := startWatch(t, cli, "users", Options{Debounce: 2 * time.Second})
	r.WaitKeys(t)
	base := r.Count()

	// One transaction is one watch response: one snapshot.
	var ops []clientv3.Op
	var want []string
	for i := range 50 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("/services/users/%02d", i), fmt.Sprintf("127.0.0.1:%d", 9000+i)))
		want = append(want, fmt.Sprintf("127.0.0.1:%d", 9000+i))
	}
	slices.Sort(want)
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	// Twenty separate puts inside the 2 s window coalesce into at most two snapshots.
	for i := range 20 {
		k := fmt.Sprintf("127.0.0.2:%d", 9000+i)
		if _, err := cli.Put(ctx, "/services/users/b"+k, k); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	slices.Sort(want)
	r.WaitKeys(t, want...)
	if n := r.Count() - base; n > 3 {
		t.Fatalf("%d snapshots for one txn and 20 puts within the debounce window, want <= 3", n)
	}
	// Re-putting identical values changes revisions but not the set: nothing is emitted.
	before := r.Count()
	if _, err := cli.Put(ctx, "/services/users/00", "127.0.0.1:9000"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/services/users/zz", "127.0.0.3:1"); err != nil {
		t.Fatal(err)
	}
	r.WaitKeys(t, append(slices.Clone(want), "127.0.0.3:1")...)
	if n := r.Count() - before; n != 1 {
		t.Fatalf("%d snapshots after an unchanged re-put and one new key, want 1", n)
	}
}

func TestNewClientDoesNotBlock(t *testing.T) {
	// Nothing listens on port 1: New must return at once and calls must fail by their context.
	cli, err := NewClient(&config.Etcd{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := cli.Get(ctx, "/x"); err == nil {
		t.Fatal("Get against a closed port succeeded")
	}
	if _, err := NewClient(&config.Etcd{TLS: &config.TLS{CAFile: "/nonexistent/ca.pem"}}); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("missing CA file: err %v, want a tls error", err)
	}
}
