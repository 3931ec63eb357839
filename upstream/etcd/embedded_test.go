package etcd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

func TestStartEmbedded(t *testing.T) {
	ports := etcdtest.FreePorts(t, 2)
	dir := filepath.Join(t.TempDir(), "state", "etcd")
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &config.Embedded{
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		DataDir:   dir,
	}
	e, err := StartEmbedded(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	t.Logf("embedded etcd ready in %s", e.StartupTime())
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir %s: mode %v err %v, want 0700", dir, fi.Mode().Perm(), err)
	}
	if !strings.Contains(logs.String(), "etcdctl") || !strings.Contains(logs.String(), "lease grant") {
		t.Fatalf("start-up log does not say how to register:\n%s", logs.String())
	}
	// It is a working registry: the discoverer sees what a client writes.
	cli, err := NewClient(&config.Etcd{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	r := startWatch(t, cli, "users", Options{})
	if _, err := cli.Put(ctx, "/services/users/a", "127.0.0.1:9001"); err != nil {
		t.Fatal(err)
	}
	r.WaitKeys(t, "127.0.0.1:9001")
}

func TestStartEmbeddedErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name string
		cfg  config.Embedded
		want string
	}{
		{"bad client url", config.Embedded{ClientURL: "127.0.0.1:2379", DataDir: t.TempDir()}, "client_url"},
		{"https peer url", config.Embedded{PeerURL: "https://127.0.0.1:2380", DataDir: t.TempDir()}, "peer_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := StartEmbedded(ctx, &tt.cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to mention %s", err, tt.want)
			}
		})
	}
}

// BenchmarkEmbeddedStartup measures StartEmbedded to ready, fresh data dir each time.
func BenchmarkEmbeddedStartup(b *testing.B) {
	b.ReportAllocs()
	var total time.Duration
	for range b.N {
		ports := etcdtest.FreePorts(b, 2)
		cfg := &config.Embedded{
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
			DataDir:   b.TempDir(),
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		e, err := StartEmbedded(ctx, cfg, slog.New(slog.DiscardHandler))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		total += e.StartupTime()
		b.StopTimer()
		e.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "startup-ms")
}
