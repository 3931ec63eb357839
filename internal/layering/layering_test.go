package layering

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

const module = "github.com/switchyard/switchyard"

// TestImportRules lists each package's build dependencies (`go list -deps`) and checks the
// rules of the structure: config is a leaf any package may import; the gateway reaches
// registries only through upstream.Discoverer (registered by name in cmd/switchyard); the
// HTTP/1.1 client and the request-path packages link no registry client; breaker (and so
// client/httpclient) links no gRPC.
func TestImportRules(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list dependencies with")
	}
	registries := []string{module + "/upstream/etcd", module + "/upstream/consul", module + "/upstream/zookeeper",
		module + "/register/etcd", module + "/register/consul", module + "/register/zookeeper",
		"go.etcd.io/", "github.com/hashicorp/consul/", "github.com/go-zookeeper/"}
	for _, tc := range []struct {
		pkg       string
		forbidden []string // import path prefixes
		why       string
	}{
		{"config", []string{module + "/"}, "config is a leaf: runtime packages import it, never the reverse"},
		{"config", []string{"go.etcd.io/", "google.golang.org/grpc"}, "config parses documents only: reading them from etcd is configsource/etcdsource's job"},
		{"gateway", registries, "the gateway knows registries only as upstream.Discoverer values by name"},
		{"proxy", registries, "the request path links no registry client"},
		{"proxy/h1", []string{module + "/"}, "the HTTP/1.1 client stands alone"},
		{"lb", registries, "pickers link no registry client"},
		{"breaker", registries, "health links no registry client"},
		{"breaker", []string{"google.golang.org/grpc"}, "breaker links no gRPC: the gRPC health probe is breaker/grpcprobe, plugged in by the gateway"},
		{"upstream", registries, "the core types link no registry client"},
		{"client/grpcresolver", registries, "a service links only the registry client it hands the resolver"},
		{"client/httpclient", append(registries, "google.golang.org/grpc"), "a service links only the registry client it hands the transport, and no gRPC"},
		{"client/httpclient", []string{module + "/proxy", module + "/gateway"}, "the HTTP client helper is the gateway's machinery without the listener"},
		{"client/grpcresolver", []string{module + "/proxy", module + "/gateway"}, "the resolver reuses discovery and pickers, not the gateway"},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			self := module + "/" + tc.pkg
			for _, dep := range deps(t, goTool, "../../"+tc.pkg) {
				if dep == self {
					continue
				}
				for _, f := range tc.forbidden {
					if strings.HasPrefix(dep, f) {
						t.Errorf("%s imports %s: %s", tc.pkg, dep, tc.why)
					}
				}
			}
		})
	}
}

// registryClients are the import path prefixes of each registry's client and what only it
// brings along (etcd's gRPC stack and zap).
var registryClients = map[string][]string{
	"etcd":      {"go.etcd.io/", "google.golang.org/grpc", "go.uber.org/zap"},
	"consul":    {"github.com/hashicorp/consul/"},
	"zookeeper": {"github.com/go-zookeeper/"},
}

// TestRegistrationPackagesStayLight is why the registration packages are split: a service
// links only the client of the registry it imports. The base package register must stay
// standard library only, and no register/<registry> may pull in another's client or package.
func TestRegistrationPackagesStayLight(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list dependencies with")
	}
	base := module + "/register"
	for _, dep := range deps(t, goTool, "../../register") {
		if dep != base {
			t.Errorf("register imports %s: the base package must stay standard library only", dep)
		}
	}
	for registry := range registryClients {
		pkg := base + "/" + registry
		for _, dep := range deps(t, goTool, "../../register/"+registry) {
			for other, prefixes := range registryClients {
				if other == registry {
					continue
				}
				if dep == base+"/"+other {
					t.Errorf("%s imports %s", pkg, dep)
				}
				for _, prefix := range prefixes {
					if strings.HasPrefix(dep, prefix) {
						t.Errorf("%s links %s, a dependency of the %s client", pkg, dep, other)
					}
				}
			}
		}
	}
}

// deps returns the import paths of the non-standard build dependencies of the package in dir.
func deps(t *testing.T, goTool, dir string) []string {
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
	var paths []string
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p struct {
			ImportPath string
			Standard   bool
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -deps %s: decoding its output: %v", dir, err)
		}
		if !p.Standard {
			paths = append(paths, p.ImportPath)
		}
	}
	if len(paths) == 0 {
		t.Fatalf("go list -deps %s listed nothing", dir)
	}
	return paths
}
