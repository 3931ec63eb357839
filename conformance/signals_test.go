package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopSignals sends the built binary real signals (issue 14, item 1). The first SIGTERM
// or SIGINT makes /readyz fail with the signal's name while /healthz passes and the listener
// still serves, for drain_delay (a minute here); a second one ends the stop at once, exit 0.
func TestStopSignals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"SIGINT", syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := newBackend(t, reply(response("200 OK", "ok")))
			g := startGateway(t, gatewaySpec{server: "drain_delay: 1m", routes: route("/", "", be)})
			if err := g.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			var body []byte
			if err := waitUntil(10*time.Second, func() error {
				resp, b, err := get(g.admin, g.admin, "/readyz")
				if err != nil {
					return err
				}
				if body = b; resp.StatusCode != 503 {
					return fmt.Errorf("/readyz %d %s", resp.StatusCode, b)
				}
				return nil
			}); err != nil {
				t.Fatalf("/readyz never failed after %s: %v", tc.name, err)
			}
			var ready map[string]string
			if err := json.Unmarshal(body, &ready); err != nil || ready["status"] != "draining" || ready["reason"] != "shutting down: "+tc.name+" received" {
				t.Errorf("/readyz after %s: %s", tc.name, body)
			}
			if resp, b, err := get(g.admin, g.admin, "/healthz"); err != nil || resp.StatusCode != 200 {
				t.Errorf("/healthz in the drain: %v %s %v", resp, b, err)
			}
			if resp, b, err := get(g.addr, "gw", "/"); err != nil || resp.StatusCode != 200 || string(b) != "ok" {
				t.Errorf("a new connection during drain_delay: %v %q %v", resp, b, err)
			}
			if !strings.Contains(readLog(g.log), `msg="draining: not ready, still serving" drain_delay=1m0s reason="shutting down: `+tc.name+` received"`) {
				t.Errorf("no phase line in the log:\n%s", g.tail(10))
			}

			if err := g.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			select {
			case <-g.exited:
			case <-time.After(10 * time.Second): // the stop is immediate; the rest is slack
				t.Fatalf("still running 10s after a second %s (drain_delay is a minute)", tc.name)
			}
			if code := g.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit code %d after a second %s, want 0", code, tc.name)
			}
			t.Logf("exited %v after the second %s", time.Since(start).Round(time.Millisecond), tc.name)
			if log := readLog(g.log); !strings.Contains(log, "stop requested again: closing every connection now") || !strings.Contains(log, "drained=false") {
				t.Errorf("log of the forced stop:\n%s", g.tail(10))
			}
		})
	}
}
