package conformance

import (
	"strings"
	"testing"
	"time"
)

// TestAdmin: the admin listener must stay private. A non-loopback admin address is refused
// unless admin_expose says so; a request naming a foreign Host (a DNS-rebinding page in an
// operator's browser) is refused; profiling endpoints exist only with admin_debug.
func TestAdmin(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	t.Run("non-loopback admin refused", func(t *testing.T) {
		t.Parallel()
		_, port, _ := strings.Cut(freeAddr(t), ":")
		f := writeConfig(t, gatewaySpec{admin: "0.0.0.0:" + port, routes: route("/", "", be)})
		r := runGateway(t, 5*time.Second, "-config", f.path, "-watch=false")
		switch {
		case r.timedOut:
			t.Errorf("gateway started with admin on 0.0.0.0 and no admin_expose (killed after %v)", r.elapsed)
		case r.code == 0:
			t.Errorf("exit 0, want non-zero")
		case !strings.Contains(strings.ToLower(r.out), "admin"):
			t.Errorf("exit %d without naming admin: %q", r.code, truncate([]byte(r.out)))
		}
	})
	t.Run("foreign Host", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, gatewaySpec{routes: route("/", "", be)})
		resp, body, err := get(gw.admin, "evil.example", "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 421 && resp.StatusCode != 403 {
			t.Errorf("Host evil.example: %d %q, want 421 or 403", resp.StatusCode, body)
		}
	})
	for _, c := range []struct {
		name string
		top  string
		want int
	}{
		{"pprof off by default", "", 404},
		{"pprof with admin_debug", "admin_debug: true\n", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gw := startGateway(t, gatewaySpec{top: c.top, routes: route("/", "", be)})
			resp, _, err := get(gw.admin, gw.admin, "/debug/pprof/")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.want {
				t.Errorf("/debug/pprof/: %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}
