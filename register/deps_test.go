package register

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// registryClients are the import path prefixes of each registry's client and what only it
// brings along (etcd's gRPC stack and zap).
var registryClients = map[string][]string{
	"etcd":      {"go.etcd.io/", "google.golang.org/grpc", "go.uber.org/zap"},
	"consul":    {"github.com/hashicorp/consul/"},
	"zookeeper": {"github.com/go-zookeeper/"},
}

// TestRegistryPackagesStayLight is why the registries are separate packages: a service
// links only the client of the registry it imports. It lists each package's build
// dependencies with `go list -deps` and fails when the base package imports anything but
// the standard library, or when one registry's package pulls in another's client (or
// another registry package, which would bring its client along).
func TestRegistryPackagesStayLight(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list dependencies with")
	}
	const base = "github.com/switchyard/switchyard/register"

	for _, p := range deps(t, goTool, ".") {
		if !p.Standard && p.ImportPath != base {
			t.Errorf("register imports %s: the base package must stay standard library only", p.ImportPath)
		}
	}
	for registry := range registryClients {
		pkg := base + "/" + registry
		for _, p := range deps(t, goTool, "./"+registry) {
			if p.Standard {
				continue
			}
			for other, prefixes := range registryClients {
				if other == registry {
					continue
				}
				if p.ImportPath == base+"/"+other {
					t.Errorf("%s imports %s", pkg, p.ImportPath)
				}
				for _, prefix := range prefixes {
					if strings.HasPrefix(p.ImportPath, prefix) {
						t.Errorf("%s links %s, a dependency of the %s client", pkg, p.ImportPath, other)
					}
				}
			}
		}
	}
}

// listedPackage is the part of `go list -json` output the test reads.
type listedPackage struct {
	ImportPath string
	Standard   bool
}

// deps returns the build dependencies of the package in dir (relative to this package's
// directory), the package itself included.
func deps(t *testing.T, goTool, dir string) []listedPackage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "list", "-deps", "-json=ImportPath,Standard", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", dir, err, stderr.String())
	}
	var pkgs []listedPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -deps %s: decoding its output: %v", dir, err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list -deps %s listed nothing", dir)
	}
	return pkgs
}
