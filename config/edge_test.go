package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Tests for the edge-safety keys and limits of issue #11.

func TestEdgeSafetyErrors(t *testing.T) {
	route := func(extra string) string {
		return "routes:\n  - prefix: /a\n    upstreams: [\"http://h:1\"]\n" + extra
	}
	checkErrors(t, []errorCase{
		{"server limits", "server:\n  max_connections: -1\n  min_body_rate: -5\n  body_idle_timeout: -1s\n  body_rate_grace: -2s\n" + okRoute, []string{
			`routes.yaml:2: server.max_connections: must not be negative (0 = unlimited), got -1`,
			`routes.yaml:3: server.min_body_rate: must not be negative (0 = off), got -5`,
			`routes.yaml:4: server.body_idle_timeout: must not be negative, got -1s`,
			`routes.yaml:5: server.body_rate_grace: must not be negative, got -2s`}},
		{"h2c in defaults", "defaults:\n  upgrades: [websocket, H2C]\n" + okRoute, []string{
			`routes.yaml:2: defaults.upgrades[1]: h2c upgrades are never forwarded: requests inside the upgraded connection would bypass routing and every route setting (HTTP/2 clients use TLS, or h2c with prior knowledge)`}},
		{"upgrade not a token", route("    upgrades:\n      - \"web socket\"\n      - websocket/13\n      - \"\"\n      - \"a,b\"\n"), []string{
			`routes.yaml:5: routes[0].upgrades[0]: invalid protocol "web socket": want an HTTP token such as websocket (no spaces, "/", "," or quotes)`,
			`routes.yaml:6: routes[0].upgrades[1]: invalid protocol "websocket/13": want an HTTP token such as websocket (no spaces, "/", "," or quotes)`,
			`routes.yaml:7: routes[0].upgrades[2]: invalid protocol "": want an HTTP token such as websocket (no spaces, "/", "," or quotes)`,
			`routes.yaml:8: routes[0].upgrades[3]: invalid protocol "a,b": want an HTTP token such as websocket (no spaces, "/", "," or quotes)`}},
		{"upgrades not a list", route("    upgrades: websocket\n"), []string{
			`routes.yaml:4: routes[0].upgrades: expected a list, got "websocket"`}},
		{"encoded slashes typo", route("    encoded_slashes: rejct\n"), []string{
			`routes.yaml:4: routes[0].encoded_slashes: unknown value "rejct" (did you mean "reject"? want keep or reject)`}},
		{"encoded slashes unknown", "defaults:\n  encoded_slashes: decode\n" + okRoute, []string{
			`routes.yaml:2: defaults.encoded_slashes: unknown value "decode" (want keep or reject)`}},
		{"admin on all interfaces", "admin: \"0.0.0.0:9901\"\n" + okRoute, []string{
			`routes.yaml:1: admin: "0.0.0.0:9901" is not a loopback address, so the admin API (pprof, routes, upstream addresses) would be reachable from the network; use 127.0.0.1, [::1] or localhost, or set admin_expose: true to expose it on purpose`}},
		{"admin with empty host", "admin: \":9901\"\n" + okRoute, []string{
			`routes.yaml:1: admin: ":9901" is not a loopback address, so the admin API (pprof, routes, upstream addresses) would be reachable from the network; use 127.0.0.1, [::1] or localhost, or set admin_expose: true to expose it on purpose`}},
		{"admin on a name", "admin: \"gw.internal:9901\"\n" + okRoute, []string{
			`routes.yaml:1: admin: "gw.internal:9901" is not a loopback address, so the admin API (pprof, routes, upstream addresses) would be reachable from the network; use 127.0.0.1, [::1] or localhost, or set admin_expose: true to expose it on purpose`}},
		{"admin = listen through localhost", "listen: \":8080\"\nadmin: \"localhost:8080\"\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("localhost:8080" and ":8080" overlap): the admin API must not be public`}},
		{"admin = listen through short IPv4 and a leading zero", "listen: \"127.0.0.1:08080\"\nadmin: \"127.1:8080\"\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("127.1:8080" and "127.0.0.1:08080" overlap): the admin API must not be public`}},
		{"admin = listen as one number", "listen: \"2130706433:9000\"\nadmin: \"127.0.0.1:9000\"\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("127.0.0.1:9000" and "2130706433:9000" overlap): the admin API must not be public`}},
		{"exposed admin on the IPv6 wildcard", "listen: \"[::0]:9000\"\nadmin: \"[::]:9000\"\nadmin_expose: true\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("[::]:9000" and "[::0]:9000" overlap): the admin API must not be public`}},
		{"listen wildcard over loopback admin", "listen: \"[::]:9901\"\n" + okRoute, []string{
			`routes.yaml:1: listen: admin and listen must differ ("127.0.0.1:9901" and "[::]:9901" overlap): the admin API must not be public`}},
		{"listen on a name, admin default", "listen: \"gw.example.com:9901\"\n" + okRoute, []string{
			`routes.yaml:1: listen: admin and listen must differ ("127.0.0.1:9901" and "gw.example.com:9901" overlap (a host name may resolve to the other address: use different ports)): the admin API must not be public`}},
		{"long values are cut in messages", "? \"" + strings.Repeat("k", 200) + "\"\n: 1\n" + okRoute, []string{
			`routes.yaml:1: unknown key "` + strings.Repeat("k", 80) + `... (200 bytes)"`}},
		{"service port names are refused", "admin: \"127.0.0.1:http\"\n" + okRoute, []string{
			`routes.yaml:1: admin: invalid address "127.0.0.1:http": bad port "http"`}},
	})
}

func TestEdgeSafetyAccepted(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(*Config) error
	}{
		{"loopback admin spellings", "admin: \"localhost:9901\"\n" + okRoute, nil},
		{"IPv6 loopback admin", "admin: \"[::1]:9901\"\n" + okRoute, nil},
		{"short loopback admin", "admin: \"127.1:9901\"\n" + okRoute, nil},
		{"mapped loopback admin", "admin: \"[::ffff:127.0.0.2]:9901\"\n" + okRoute, nil},
		{"exposed admin", "admin: \"0.0.0.0:9901\"\nadmin_expose: true\nadmin_debug: true\n" + okRoute, func(c *Config) error {
			if !c.AdminExpose || !c.AdminDebug {
				return fmt.Errorf("expose %v debug %v", c.AdminExpose, c.AdminDebug)
			}
			return nil
		}},
		{"same port, other loopback address", "listen: \"127.0.0.1:9000\"\nadmin: \"127.0.0.2:9000\"\n" + okRoute, nil},
		{"port 0 never collides", "listen: \"127.0.0.1:0\"\nadmin: \"127.0.0.1:0\"\n" + okRoute, nil},
		{"zeros mean off", "server: { max_connections: 0, min_body_rate: 0, body_idle_timeout: 0, body_rate_grace: 0 }\n" + okRoute, func(c *Config) error {
			if s := c.Server; s.MaxConnections != 0 || s.MinBodyRate != 0 || s.BodyIdleTimeout != 0 || s.BodyRateGrace != 0 {
				return fmt.Errorf("server %+v", s)
			}
			return nil
		}},
		{"upgrades lower-cased, repeats dropped, inherited", "defaults:\n  upgrades: [WebSocket, websocket, Foo]\n" + okRoute +
			"  - prefix: /b\n    upstreams: [\"http://h:1\"]\n    upgrades: []\n    encoded_slashes: reject\n", func(c *Config) error {
			if got := c.Routes[0].Upgrades; !reflect.DeepEqual(got, []string{"websocket", "foo"}) {
				return fmt.Errorf("inherited upgrades %q", got)
			}
			if got := c.Routes[1].Upgrades; got == nil || len(got) != 0 {
				return fmt.Errorf("upgrades: [] gave %#v, want empty (no upgrades)", got)
			}
			if c.Routes[0].EncodedSlashes != EncodedSlashesKeep || c.Routes[1].EncodedSlashes != EncodedSlashesReject {
				return fmt.Errorf("encoded_slashes %q %q", c.Routes[0].EncodedSlashes, c.Routes[1].EncodedSlashes)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.yaml)
			if tc.check != nil {
				if err := tc.check(c); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestHostIP(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string // "" = a name, not an address
	}{
		{"", "::"},
		{"localhost", "127.0.0.1"},
		{"LocalHost", "127.0.0.1"},
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0177.0.0.01", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"10.1.65535", "10.1.255.255"},
		{"::0", "::"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"10.1.65536", ""},
		{"256.1", ""},
		{"4294967296", ""},
		{"1.2.3.4.5", ""},
		{"1..2", ""},
		{"0x", ""},
		{"08", ""}, // not octal
		{"+1", ""},
		{"localhost.", ""},
		{"gw.internal", ""},
	} {
		ip, ok := hostIP(tc.host)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != tc.want {
			t.Errorf("hostIP(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
	if ip, _ := hostIP("127.1"); ip != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("127.1 is %v", ip)
	}
}

func TestFileSizeLimit(t *testing.T) {
	want := fmt.Sprintf("file larger than %d MiB", maxFileSize>>20)
	big := append([]byte(okRoute+"#"), make([]byte, maxFileSize)...)
	if _, err := Parse("big.yaml", big); err == nil || !strings.HasPrefix(err.Error(), "big.yaml: "+want) {
		t.Errorf("Parse of %d bytes: %v", len(big), err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+": "+want) {
		t.Errorf("Load: %v", err)
	}
	// A file that never ends is read only up to the limit.
	if _, err := Load("/dev/zero"); err == nil || !strings.HasPrefix(err.Error(), "/dev/zero: "+want) {
		t.Errorf("Load(/dev/zero): %v", err)
	}
	// Just under the limit is still a file.
	ok := append([]byte(okRoute+"#"), make([]byte, maxFileSize-len(okRoute)-2)...)
	for i := len(okRoute) + 1; i < len(ok); i++ {
		ok[i] = ' '
	}
	if _, err := Parse("ok.yaml", ok); err != nil {
		t.Errorf("Parse of %d bytes: %v", len(ok), err)
	}
}

// mergeBomb nests merge keys levels deep, ten aliases a level, under defaults and a route:
// a few hundred bytes that once expanded to 10^levels mappings and printed 183,502 errors.
func mergeBomb(levels int) string {
	var b strings.Builder
	b.WriteString("a: &a {x: 1}\n")
	prev := "a"
	for i := 1; i < levels; i++ {
		name := string(rune('a' + i))
		fmt.Fprintf(&b, "%s: &%s {<<: [%s]}\n", name, name, strings.TrimSuffix(strings.Repeat("*"+prev+",", 10), ","))
		prev = name
	}
	fmt.Fprintf(&b, "defaults: {<<: *%s}\nroutes:\n  - {prefix: /, upstreams: [\"http://h:1\"], <<: *%s}\n", prev, prev)
	return b.String()
}

func TestAliasBombBounded(t *testing.T) {
	for _, levels := range []int{3, 7, 12} { // 12: 10^11 mappings if expanded
		src := mergeBomb(levels)
		_, err := Parse("bomb.yaml", []byte(src))
		errs, ok := err.(Errors)
		if !ok {
			t.Fatalf("%d levels (%d bytes): %T %v", levels, len(src), err, err)
		}
		// One unknown key per anchor, and the merged one once per path it lands on.
		if len(errs) > levels+3 {
			t.Errorf("%d levels (%d bytes): %d errors:\n%v", levels, len(src), len(errs), err)
		}
		if !strings.Contains(err.Error(), `bomb.yaml:1: defaults: unknown key "x"`) {
			t.Errorf("%d levels: missing the merged mistake:\n%v", levels, err)
		}
		if levels >= 7 && !strings.Contains(err.Error(), "too many values (anchors and aliases expand to over") {
			t.Errorf("%d levels: the expansion budget did not stop it:\n%v", levels, err)
		}
	}
}

func TestErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("routes:\n")
	const n = 150
	for i := range n {
		fmt.Fprintf(&b, "  - {prefix: /r%d, upstreams: [\"http://h:1\"], bogus%d: 1}\n", i, i)
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	errs, ok := err.(Errors)
	if !ok {
		t.Fatalf("%T %v", err, err)
	}
	if len(errs) != maxErrors+1 {
		t.Fatalf("%d errors, want %d and a summary", len(errs), maxErrors)
	}
	if first := errs[0].Error(); first != `many.yaml:2: routes[0]: unknown key "bogus0"` {
		t.Errorf("first error %q", first)
	}
	want := fmt.Sprintf("many.yaml: ... and %d more errors (only the first %d are listed)", n-maxErrors, maxErrors)
	if last := errs[len(errs)-1].Error(); last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
}
