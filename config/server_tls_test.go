package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServerTLSErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	cases := []struct{ name, tls, want string }{
		{"no key", `{ cert_file: "x.pem" }`, `t.yaml:1: server.tls.key_file: required when server.tls is set`},
		{"no cert", `{ key_file: "x.pem" }`, `t.yaml:1: server.tls.cert_file: required when server.tls is set`},
		{"unloadable", `{ cert_file: "` + junk + `", key_file: "` + junk + `" }`, `t.yaml:1: server.tls.cert_file: cannot load certificate and key`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte("server: { tls: "+c.tls+" }\ndiscovery: {}\nroutes:\n  - prefix: /\n    upstreams: [\"http://127.0.0.1:1\"]\n"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}
