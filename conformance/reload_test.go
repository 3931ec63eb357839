package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReloadOnSIGHUP: with the file watch off, a routes.yaml changed in place is not picked
// up until the process gets a real SIGHUP; then the new routes answer and the old ones are
// gone.
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	// Under nohup the runtime ignores SIGHUP until the reloader asks for it, so the signal
	// below can neither kill a gateway that is still starting nor be lost: the test waits
	// for the handler.
	gw := startGateway(t, gatewaySpec{routes: route("/v0", "", be), nohup: true})
	if err := waitUntil(readTimeout, func() error {
		if ok, err := gw.catchesSIGHUP(); !ok {
			return fmt.Errorf("the gateway never caught SIGHUP (%v)", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	path := gw.configPath()
	if err := os.WriteFile(path, withRoutes(t, path, route("/v1", "", be)), 0o600); err != nil {
		t.Fatal(err)
	}
	wantRoutes(t, gw, "before SIGHUP (-watch=false)", "/v0")
	if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	awaitRoutes(t, gw, "after SIGHUP", "/v1", "/v0")
	if !gw.running() {
		t.Fatal("the gateway exited on SIGHUP")
	}
}

// TestReloadOnFileSave: with the watch on (the default), saving routes.yaml reloads it: a
// save right after startup, the way editors save (a new file renamed over the old one, twice, so the watch must outlive
// the first rename of the inode it saw), and a plain write in place. A file that does not
// parse, renamed in, is rejected with an error naming file:line, and the previous routes
// keep serving.
func TestReloadOnFileSave(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	gw := startGateway(t, gatewaySpec{routes: route("/v0", "", be), flags: []string{"-watch=true", "-log-format", "json"}})
	path := gw.configPath()

	// The watch is set up on a goroutine of its own after the gateway reports ready; a save
	// made at once, perhaps before the watch is in place, must not be lost: the watch
	// starts from the digest of what was loaded, not from what it finds.
	if err := os.WriteFile(path, withRoutes(t, path, route("/ready", "", be)), 0o600); err != nil {
		t.Fatal(err)
	}
	awaitRoutes(t, gw, "a save right after startup", "/ready", "/v0")

	t.Run("rename over", func(t *testing.T) {
		saveByRename(t, path, withRoutes(t, path, route("/v1", "", be)))
		awaitRoutes(t, gw, "after the first rename", "/v1", "/v0")
		saveByRename(t, path, withRoutes(t, path, route("/v2", "", be)))
		awaitRoutes(t, gw, "after the second rename", "/v2", "/v1")
	})

	t.Run("invalid file keeps the old config", func(t *testing.T) {
		good := string(withRoutes(t, path, route("/v3", "", be)))
		line := strings.Count(good, "\n") + 1
		// A tab cannot start a YAML token: the error is at this line, not a guess.
		bad := good + "\t- { prefix: /v4 }\n"
		saveByRename(t, path, []byte(bad))
		where := fmt.Sprintf("%s:%d: ", path, line)
		var rejected []logLine
		if err := waitUntil(readTimeout, func() error {
			rejected = nil
			for _, l := range gatewayLines(gw.jsonLog(t)) {
				if l.str("level") == "ERROR" && strings.Contains(l.raw, where) {
					rejected = append(rejected, l)
				}
			}
			if len(rejected) == 0 {
				return fmt.Errorf("no ERROR line naming %q", where)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if e := rejected[0].str("error"); !strings.HasPrefix(e, where) || !strings.Contains(e, "YAML") {
			t.Errorf("error field %q, want it to start with %q and say what is wrong", e, where)
		}
		wantRoutes(t, gw, "after the rejected file", "/v2", "/v3")
	})

	t.Run("write in place", func(t *testing.T) {
		if err := os.WriteFile(path, withRoutes(t, path, route("/v5", "", be)), 0o600); err != nil {
			t.Fatal(err)
		}
		awaitRoutes(t, gw, "after writing the file in place", "/v5", "/v2")
	})
}

// withRoutes returns the config file at path with its routes: list replaced by routes
// (writeConfig puts the list last).
func withRoutes(t *testing.T, path, routes string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(data), "routes:\n")
	if !ok {
		t.Fatalf("no routes: in %s:\n%s", path, data)
	}
	return []byte(head + "routes:\n" + routes)
}

// saveByRename replaces the file at path the way editors save: a new file written in the
// same directory, then renamed over it.
func saveByRename(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".routes.yaml.*")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// routeStatus is the status of GET prefix+"/x" on the public listener, or the error.
func routeStatus(gw *gateway, prefix string) (int, error) {
	resp, _, err := get(gw.addr, "gw", prefix+"/x")
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// routesAre returns nil when live answers 200 and every one of gone 404.
func routesAre(gw *gateway, live string, gone ...string) error {
	if st, err := routeStatus(gw, live); err != nil || st != 200 {
		return fmt.Errorf("%s: %d %v, want 200", live, st, err)
	}
	for _, p := range gone {
		if st, err := routeStatus(gw, p); err != nil || st != 404 {
			return fmt.Errorf("%s: %d %v, want 404 (no such route)", p, st, err)
		}
	}
	return nil
}

// wantRoutes checks the routes in force now.
func wantRoutes(t *testing.T, gw *gateway, when, live string, gone ...string) {
	t.Helper()
	if err := routesAre(gw, live, gone...); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// awaitRoutes waits for a reload to put the routes in force.
func awaitRoutes(t *testing.T, gw *gateway, when, live string, gone ...string) {
	t.Helper()
	if err := waitUntil(readTimeout, func() error { return routesAre(gw, live, gone...) }); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// logged keeps the lines with the given msg.
func logged(lines []logLine, msg string) []logLine {
	var out []logLine
	for _, l := range lines {
		if l.str("msg") == msg {
			out = append(out, l)
		}
	}
	return out
}
