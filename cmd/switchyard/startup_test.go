package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testkit"
)

// TestConfigChangeDuringStartupIsKept: a reload asked for while the gateway is still starting
// is neither fatal nor lost. SIGHUP is caught from the start of `serve` (before, its default
// action ended the process; this test catches it too, so a regression fails the test rather
// than killing the test binary), and the file watch starts from the digest of the bytes that were
// loaded (before, from what it found when it started, so a save in between was never
// applied). The start is held open by a registry that does not answer: the pool warm-up
// waits a second for it.
func TestConfigChangeDuringStartupIsKept(t *testing.T) {
	for _, tc := range []struct {
		name  string
		watch bool
		// change is made 200 ms into the start; it may rewrite the file at path.
		change func(t *testing.T, path string, rewrite func(prefix string) []byte)
		// want is the route the change brings, and logged what the reload logs first.
		want, logged string
	}{
		{"SIGHUP", false, func(t *testing.T, path string, rewrite func(string) []byte) {
			writeFile(t, path, rewrite("/hup"))
			// Catch SIGHUP here too, so that a gateway catching it too late fails this
			// test (its reload never comes) instead of ending the whole test binary.
			own := make(chan os.Signal, 1)
			signal.Notify(own, syscall.SIGHUP)
			defer signal.Stop(own)
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}, "/hup", "SIGHUP: reloading config"},
		{"save by rename", true, func(t *testing.T, path string, rewrite func(string) []byte) {
			tmp := path + ".tmp"
			writeFile(t, tmp, rewrite("/saved"))
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, "/saved", "config file changed: reloading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
			defer backend.Close()
			listen, admin := freeAddr(t), freeAddr(t)
			cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
			config := func(prefix string) []byte {
				return []byte(fmt.Sprintf(`listen: %q
admin: %q
discovery: { etcd: { endpoints: ["127.0.0.1:1"], dial_timeout: 100ms } }
routes:
  - prefix: %s
    upstreams: [%q]
  - prefix: /users
    service: users
`, listen, admin, prefix, backend.URL))
			}
			writeFile(t, cfgPath, config("/static"))
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			logs := &testkit.SyncBuffer{}
			exit := make(chan int, 1)
			go func() {
				exit <- run(ctx, []string{"-config", cfgPath, fmt.Sprintf("-watch=%v", tc.watch)}, logs, logs)
			}()
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

			// Well inside the second the warm-up holds the start. A signal a process sends
			// itself is delivered before kill returns, and the watch starts only once the
			// listeners are open, so a listener still closed afterwards proves the change
			// came during startup.
			time.Sleep(200 * time.Millisecond)
			tc.change(t, cfgPath, config)
			if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
				c.Close()
				t.Fatal("the gateway was already serving when the change came: the test proved nothing (machine too slow?)")
			}
			waitFor(t, "the route of the change", 10*time.Second, func() bool {
				c, _ := httpGet("http://" + listen + tc.want)
				return c == 200
			})
			if !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log has no %q:\n%s", tc.logged, logs)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
