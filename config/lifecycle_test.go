package config

import (
	"testing"
	"time"
)

// Tests for the shutdown keys and the admin listener on a pod IP (issue 14, items 1 and 6).

func TestDrainDelay(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       time.Duration
	}{
		{"default", okRoute, DefaultDrainDelay},
		{"explicit zero skips the phase", "server: { drain_delay: 0 }\n" + okRoute, 0},
		{"explicit zero duration", "server: { drain_delay: 0s }\n" + okRoute, 0},
		{"set", "server: { drain_delay: 15s, shutdown_grace: 20s }\n" + okRoute, 15 * time.Second},
		{"at the limit", "server: { drain_delay: 5m }\n" + okRoute, MaxDrainDelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.yaml)
			if c.Server.DrainDelay != tc.want {
				t.Errorf("drain_delay = %s, want %s", c.Server.DrainDelay, tc.want)
			}
		})
	}
	if DefaultDrainDelay != 5*time.Second {
		t.Errorf("DefaultDrainDelay = %s; README's config reference says 5s", DefaultDrainDelay)
	}
	checkErrors(t, []errorCase{
		{"negative drain delay", "server:\n  drain_delay: -1s\n" + okRoute, []string{
			`routes.yaml:2: server.drain_delay: must not be negative, got -1s`}},
		{"drain delay in minutes", "server:\n  shutdown_grace: 30s\n  drain_delay: 6m\n" + okRoute, []string{
			`routes.yaml:3: server.drain_delay: must be at most 5m0s (it delays every stop; load balancers notice /readyz failing within seconds), got 6m0s`}},
		{"drain delay not a duration", "server:\n  drain_delay: 5\n" + okRoute, []string{
			`routes.yaml:2: server.drain_delay: invalid duration "5" (want e.g. 30s, 500ms, 1m30s)`}},
	})
}

// TestAdminOnPodIP: for Kubernetes probes the admin listener may sit on the pod's own IP
// (`admin: "${POD_IP}:9901"` with admin_expose). The public listener on the wildcard host
// takes that port on every address, the pod IP included, so the same port must be refused
// whichever side names the wildcard, and another port accepted.
func TestAdminOnPodIP(t *testing.T) {
	t.Setenv("POD_IP", "10.0.0.7")
	t.Setenv("POD_IP6", "fd00::7")
	checkErrors(t, []errorCase{
		{"pod IP on the public port", "listen: \":8080\"\nadmin: \"10.0.0.7:8080\"\nadmin_expose: true\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("10.0.0.7:8080" and ":8080" overlap): the admin API must not be public`}},
		{"pod IP from the environment on the public port", "listen: \":8080\"\nadmin: \"${POD_IP}:8080\"\nadmin_expose: true\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("10.0.0.7:8080" and ":8080" overlap): the admin API must not be public`}},
		{"pod IP under the IPv4 wildcard", "listen: \"0.0.0.0:8080\"\nadmin: \"10.0.0.7:8080\"\nadmin_expose: true\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("10.0.0.7:8080" and "0.0.0.0:8080" overlap): the admin API must not be public`}},
		{"IPv6 pod IP on the public port", "listen: \":8080\"\nadmin: \"[${POD_IP6}]:8080\"\nadmin_expose: true\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("[fd00::7]:8080" and ":8080" overlap): the admin API must not be public`}},
		{"public on the pod IP, admin on the wildcard", "listen: \"10.0.0.7:8080\"\nadmin: \":8080\"\nadmin_expose: true\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ (":8080" and "10.0.0.7:8080" overlap): the admin API must not be public`}},
		{"pod IP without admin_expose", "listen: \":8080\"\nadmin: \"${POD_IP}:9901\"\n" + okRoute, []string{
			`routes.yaml:2: admin: "10.0.0.7:9901" is not a loopback address, so the admin API (pprof, routes, upstream addresses) would be reachable from the network; use 127.0.0.1, [::1] or localhost, or set admin_expose: true to expose it on purpose`}},
	})
	for _, tc := range []struct{ name, yaml, admin string }{
		{"pod IP on its own port", "listen: \":8080\"\nadmin: \"10.0.0.7:9901\"\nadmin_expose: true\n" + okRoute, "10.0.0.7:9901"},
		{"pod IP from the environment", "listen: \":8080\"\nadmin: \"${POD_IP}:9901\"\nadmin_expose: true\n" + okRoute, "10.0.0.7:9901"},
		{"IPv6 pod IP", "listen: \":8080\"\nadmin: \"[${POD_IP6}]:9901\"\nadmin_expose: true\n" + okRoute, "[fd00::7]:9901"},
		{"default listen", "admin: \"${POD_IP}:9901\"\nadmin_expose: true\n" + okRoute, "10.0.0.7:9901"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.yaml)
			if c.Admin != tc.admin || !c.AdminExpose {
				t.Errorf("admin %q expose %v, want %q exposed", c.Admin, c.AdminExpose, tc.admin)
			}
		})
	}
}
