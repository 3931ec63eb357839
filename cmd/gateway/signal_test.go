package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testkit"
)

// TestSIGHUPDuringStartupIsKept: SIGHUP is caught from the start of `serve`, so one that
// arrives while the gateway is still starting neither kills it (the default action before
// signal.Notify) nor is lost: it reloads once the gateway serves. The start is held open by
// a registry that does not answer (the pool warm-up waits for it).
func TestSIGHUPDuringStartupIsKept(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer backend.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
	cfg := fmt.Sprintf(`listen: %q
admin: %q
discovery: { etcd: { endpoints: ["127.0.0.1:1"], dial_timeout: 100ms } }
routes:
  - prefix: /static
    upstreams: [%q]
  - prefix: /users
    service: users
`, listen, admin, backend.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	logs := &testkit.SyncBuffer{}
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"-config", cfgPath, "-watch=false"}, logs, logs) }()
	defer func() {
		stop()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit %d; log:\n%s", code, logs)
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s")
		}
	}()

	// The warm-up holds the start for a second; signal well inside it. A signal a process
	// sends itself is delivered before kill returns, so a listener still closed afterwards
	// proves it arrived during startup. Before serve caught SIGHUP from its start, this
	// ended the test process.
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Fatal("the gateway was already serving when SIGHUP arrived: the test proved nothing (machine too slow?)")
	}
	waitFor(t, "the static route", 10*time.Second, func() bool { c, _ := httpGet("http://" + listen + "/static"); return c == 200 })
	waitFor(t, "the reload asked for during startup", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "SIGHUP: reloading config") && strings.Contains(logs.String(), "config reloaded")
	})
}
