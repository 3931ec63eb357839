// Package deploy_test checks the deployment files under deploy/ without a cluster or a
// container runtime: the Kubernetes manifests (kubernetes_test.go) and the compose fleet
// (compose_test.go) are decoded strictly into the types their tools use, and the invariants
// between them and the gateway's own routes.yaml are checked. Each check has a negative case
// that breaks a copy of the files and expects the check to fail.
//
// This package is test-only and nothing imports it, so its dependencies (k8s.io/api,
// k8s.io/apimachinery) stay out of the switchyard binary.
package deploy_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

// problems collects the failures of one check run, so a test reports every broken invariant
// at once and a negative case can look for the one it caused.
type problems []error

func (p *problems) addf(format string, args ...any) {
	*p = append(*p, fmt.Errorf(format, args...))
}

func (p *problems) add(err error) {
	if err != nil {
		*p = append(*p, err)
	}
}

func (p problems) String() string {
	var b strings.Builder
	for _, err := range p {
		b.WriteString("\n\t")
		b.WriteString(err.Error())
	}
	return b.String()
}

// contains reports whether some problem's text contains want.
func (p problems) contains(want string) bool {
	for _, err := range p {
		if strings.Contains(err.Error(), want) {
			return true
		}
	}
	return false
}

// envRef matches ${NAME} and ${NAME:-default} in a routes.yaml (config/env.go's syntax).
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// parseRoutes runs the gateway's own loader on a routes.yaml with exactly the environment
// the deployment gives it: every variable the file references is unset first, then env's
// values are set (t.Setenv restores them when the test ends). So a ${VAR} the deployment
// does not provide fails here as it would in the container.
func parseRoutes(t *testing.T, name string, data []byte, env map[string]string) (*config.Config, error) {
	t.Helper()
	for _, m := range envRef.FindAllSubmatch(data, -1) {
		n := string(m[1])
		t.Setenv(n, "")
		if err := os.Unsetenv(n); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return config.Parse(name, data)
}

// stopBudget is how long a gateway with this config may take to stop after SIGTERM:
// drain_delay (still serving, /readyz 503) plus shutdown_grace (draining in-flight requests),
// with their defaults (5s and 30s) when the file leaves them out.
func stopBudget(cfg *config.Config) time.Duration {
	return cfg.Server.DrainDelay + cfg.Server.ShutdownGrace
}

// addrPort splits a listen address from a loaded config into host and port.
func addrPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port of %q: %v", addr, err)
	}
	return host, port, nil
}

// imagePinned checks an image reference names a version: a digest, or a tag that is not
// "latest". A registry host with a port (host:5000/name) is not a tag.
func imagePinned(ref string) error {
	if ref == "" {
		return errors.New("no image")
	}
	if name, digest, ok := strings.Cut(ref, "@"); ok {
		if name == "" || !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
			return fmt.Errorf("image %q: malformed digest", ref)
		}
		return nil
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q is not pinned: no tag or digest", ref)
	case tag == "latest":
		return fmt.Errorf("image %q is not pinned: latest moves", ref)
	}
	return nil
}

// copyTree copies the directory src to dst (created), for negative cases that break a copy.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mutation replaces the first occurrence of old with new in file (relative to a copied tree).
// old must be present, so a case cannot silently test nothing after the files change.
type mutation struct {
	file, old, new string
}

func (m mutation) apply(t *testing.T, root string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(m.file))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), m.old) {
		t.Fatalf("%s does not contain %q: update the negative case", m.file, m.old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), m.old, m.new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImagePinned(t *testing.T) {
	tests := []struct {
		ref string
		ok  bool
	}{
		{"ghcr.io/switchyard/switchyard:0.2.0", true},
		{"quay.io/coreos/etcd:v3.6.4", true},
		{"registry.local:5000/switchyard:1.0", true},
		{"docker.io/prom/prometheus@sha256:" + strings.Repeat("a", 64), true},
		{"registry.local:5000/switchyard", false},
		{"switchyard", false},
		{"switchyard:", false},
		{"switchyard:latest", false},
		{"switchyard@sha256:abc", false},
		{"", false},
	}
	for _, tc := range tests {
		if err := imagePinned(tc.ref); (err == nil) != tc.ok {
			t.Errorf("imagePinned(%q) = %v, want ok=%v", tc.ref, err, tc.ok)
		}
	}
}

// TestAddrPort: the bracketed admin address the manifests use ("[${POD_IP}]:9901") splits
// into the bare pod IP and the port for either family, so the probe/admin-port checks hold.
func TestAddrPort(t *testing.T) {
	tests := []struct {
		addr string
		host string
		port int
		ok   bool
	}{
		{"[10.0.0.7]:9901", "10.0.0.7", 9901, true},
		{"[fd00::7]:9901", "fd00::7", 9901, true},
		{"10.0.0.7:9901", "10.0.0.7", 9901, true},
		{":8080", "", 8080, true},
		{"fd00::7:9901", "", 0, false},
		{"[fd00::7]:admin", "", 0, false},
	}
	for _, tc := range tests {
		host, port, err := addrPort(tc.addr)
		if (err == nil) != tc.ok || err == nil && (host != tc.host || port != tc.port) {
			t.Errorf("addrPort(%q) = %q, %d, %v; want %q, %d, ok=%v", tc.addr, host, port, err, tc.host, tc.port, tc.ok)
		}
	}
}
