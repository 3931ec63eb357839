package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/config"
)

// composeFile holds the fields of compose.yaml that the file uses; decoding is strict, so
// any other field is an error (teach the test before using it). Top-level x-* keys are
// compose's extension fields, used for anchors.
type composeFile struct {
	Name       string                    `yaml:"name"`
	Services   map[string]composeService `yaml:"services"`
	Volumes    map[string]*struct{}      `yaml:"volumes"` // named volumes with default settings
	Extensions map[string]any            `yaml:",inline"`
}

type composeService struct {
	Image           string                `yaml:"image"`
	Build           *composeBuild         `yaml:"build"`
	Entrypoint      []string              `yaml:"entrypoint"`
	Command         []string              `yaml:"command"`
	User            string                `yaml:"user"`
	ReadOnly        bool                  `yaml:"read_only"`
	CapDrop         []string              `yaml:"cap_drop"`
	SecurityOpt     []string              `yaml:"security_opt"`
	Hostname        string                `yaml:"hostname"`
	Volumes         []string              `yaml:"volumes"`
	Ports           []string              `yaml:"ports"`
	DependsOn       map[string]composeDep `yaml:"depends_on"`
	Healthcheck     *composeHealthcheck   `yaml:"healthcheck"`
	StopGracePeriod string                `yaml:"stop_grace_period"`
	Restart         string                `yaml:"restart"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeDep struct {
	Condition string `yaml:"condition"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

// prometheusConfig holds the fields of prometheus.yml the file uses, strictly.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// composeStopDefault is how long compose waits after SIGTERM before SIGKILL by default.
const composeStopDefault = 10 * time.Second

// decodeStrictYAML decodes data (read from path) into v; unknown fields are errors.
func decodeStrictYAML(path string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

// flagValue returns the value of -name in args ("-name=v" or "-name v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v, true
		}
		if a == "-"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// publishedPort is one "ports:" entry: [ip:]host:container[/proto].
type publishedPort struct {
	ip              string
	host, container int
	proto           string
}

func parsePort(s string) (publishedPort, error) {
	p := publishedPort{proto: "tcp"}
	spec, proto, ok := strings.Cut(s, "/")
	if ok {
		p.proto = proto
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return p, fmt.Errorf("port %q publishes no host port (compose would pick a random one)", s)
	}
	hostPart, containerPart := spec[:i], spec[i+1:]
	if j := strings.LastIndex(hostPart, ":"); j >= 0 {
		p.ip, hostPart = strings.Trim(hostPart[:j], "[]"), hostPart[j+1:]
	}
	var err1, err2 error
	p.host, err1 = strconv.Atoi(hostPart)
	p.container, err2 = strconv.Atoi(containerPart)
	if err1 != nil || err2 != nil || p.host <= 0 || p.container <= 0 {
		return p, fmt.Errorf("port %q: want [ip:]host:container with numbers", s)
	}
	return p, nil
}

// collides reports whether two published ports would fight over one host socket.
func (p publishedPort) collides(q publishedPort) bool {
	return p.host == q.host && p.proto == q.proto && (p.ip == q.ip || isWildcard(p.ip) || isWildcard(q.ip))
}

// registryOf maps a `switchyard register -registry` URL scheme to routes.yaml's registry name.
var registryOf = map[string]string{"etcd": config.RegistryEtcd, "consul": config.RegistryConsul, "zk": config.RegistryZooKeeper}

// checkCompose checks compose.yaml in dir, with the gateways' routes.yaml and prometheus.yml
// it mounts.
func checkCompose(t *testing.T, dir string) problems {
	t.Helper()
	var ps problems
	var cf composeFile
	path := filepath.Join(dir, "compose.yaml")
	data, err := os.ReadFile(path)
	if err == nil {
		err = decodeStrictYAML(path, data, &cf)
	}
	if err != nil {
		ps.add(err)
		return ps
	}
	for k := range cf.Extensions {
		if !strings.HasPrefix(k, "x-") {
			ps.addf("compose.yaml: unknown top-level key %q (extensions start with x-)", k)
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range cf.Services {
			if !yield(n) {
				return
			}
		}
	})

	// Images, builds, dependencies and published ports.
	var published []publishedPort
	var publishedBy []string
	for _, name := range names {
		s := cf.Services[name]
		if err := imagePinned(s.Image); err != nil {
			ps.addf("service %s: %v", name, err)
		}
		if b := s.Build; b != nil {
			ctx := filepath.Join(dir, filepath.FromSlash(b.Context))
			if _, err := os.Stat(filepath.Join(ctx, "go.mod")); err != nil {
				ps.addf("service %s: build context %s is not the repository: %v", name, b.Context, err)
			}
			if _, err := os.Stat(filepath.Join(ctx, filepath.FromSlash(b.Dockerfile))); b.Dockerfile == "" || err != nil {
				ps.addf("service %s: build dockerfile %q not in the context", name, b.Dockerfile)
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := cf.Services[dep]
			switch {
			case !ok:
				ps.addf("service %s: depends_on %q, which is not a service", name, dep)
			case target.Healthcheck != nil && d.Condition != "service_healthy":
				ps.addf("service %s: depends_on %s with condition %q: it has a healthcheck, wait for service_healthy", name, dep, d.Condition)
			case target.Healthcheck == nil && d.Condition != "service_started":
				ps.addf("service %s: depends_on %s with condition %q: it has no healthcheck, so only service_started can be met", name, dep, d.Condition)
			}
		}
		for _, v := range s.Volumes {
			ps.add(checkBindMount(name, v))
		}
		if h := s.Healthcheck; h != nil && (len(h.Test) < 2 || h.Test[0] != "CMD" && h.Test[0] != "CMD-SHELL") {
			ps.addf("service %s: healthcheck test must be [CMD, ...] or [CMD-SHELL, ...]", name)
		}
		for _, spec := range s.Ports {
			p, err := parsePort(spec)
			if err != nil {
				ps.addf("service %s: %v", name, err)
				continue
			}
			if ip := net.ParseIP(p.ip); ip == nil || !ip.IsLoopback() {
				ps.addf("service %s: port %q is published on every interface: a demo publishes on 127.0.0.1 only", name, spec)
			}
			for i, q := range published {
				if p.collides(q) {
					ps.addf("service %s: published port %q collides with %s's", name, spec, publishedBy[i])
				}
			}
			published, publishedBy = append(published, p), append(publishedBy, name)
		}
	}

	// Gateways: services run with -config; registration sidecars: `register`.
	type gateway struct {
		name      string
		cfg       *config.Config
		adminPort int
	}
	var gateways []gateway
	registered := map[string]string{} // service -> registry name
	for _, name := range names {
		s := cf.Services[name]
		if len(s.Command) > 0 && s.Command[0] == "register" {
			ps = append(ps, checkSidecar(cf, name, registered)...)
			continue
		}
		cfgPath, ok := flagValue(s.Command, "config")
		if !ok {
			continue
		}
		data, hostPath, err := mountedFile(dir, s, cfgPath)
		if err != nil {
			ps.addf("service %s: -config %s: %v", name, cfgPath, err)
			continue
		}
		cfg, err := parseRoutes(t, hostPath, data, nil)
		if err != nil {
			ps.addf("service %s: routes.yaml does not load: %v", name, err)
			continue
		}
		_, listenPort, err := addrPort(cfg.Listen)
		ps.add(err)
		adminHost, adminPort, err := addrPort(cfg.Admin)
		ps.add(err)
		if !isWildcard(adminHost) {
			ps.addf("service %s: admin %s cannot be scraped from another container", name, cfg.Admin)
		}
		if !slices.ContainsFunc(s.Ports, func(spec string) bool { p, err := parsePort(spec); return err == nil && p.container == listenPort }) {
			ps.addf("service %s: the public port %d (routes.yaml listen) is not published", name, listenPort)
		}
		budget := stopBudget(cfg)
		stop := composeStopDefault
		if s.StopGracePeriod != "" {
			if stop, err = time.ParseDuration(s.StopGracePeriod); err != nil {
				ps.addf("service %s: stop_grace_period: %v", name, err)
			}
		}
		if stop <= budget {
			ps.addf("service %s: stop_grace_period %s is not longer than drain_delay + shutdown_grace = %s: compose would kill requests still draining", name, stop, budget)
		}
		ps = append(ps, checkRegistryHosts(cf, name, cfg)...)
		gateways = append(gateways, gateway{name, cfg, adminPort})
	}
	if len(gateways) < 2 {
		ps.addf("compose.yaml: %d gateway services, want at least 2", len(gateways))
	}
	// Every service a route reads is registered, in the registry the route reads.
	for _, g := range gateways {
		for _, r := range g.cfg.Routes {
			if r.Service == "" {
				continue
			}
			if got, ok := registered[r.Service]; !ok || got != r.Registry() {
				ps.addf("service %s: route %s reads service %q from %s, but no sidecar registers it there", g.name, r.Prefix, r.Service, r.Registry())
			}
		}
	}

	// The top-level README's quick-start curl works against the fleet.
	qsPath, err := quickStartPath(filepath.Join(dir, "..", "..", "README.md"))
	ps.add(err)
	if err == nil {
		for _, g := range gateways {
			ps.add(checkServes(g.name, g.cfg, qsPath, registered))
		}
	}

	// Prometheus scrapes every gateway's admin port, and nothing else.
	var want, got []string
	for _, g := range gateways {
		want = append(want, net.JoinHostPort(g.name, strconv.Itoa(g.adminPort)))
	}
	promFound := false
	for _, name := range names {
		s := cf.Services[name]
		if !strings.Contains(s.Image, "/prometheus:") {
			continue
		}
		promFound = true
		data, hostPath, err := mountedFile(dir, s, "/etc/prometheus/prometheus.yml")
		if err != nil {
			ps.addf("service %s: %v", name, err)
			continue
		}
		var pc prometheusConfig
		if err := decodeStrictYAML(hostPath, data, &pc); err != nil {
			ps.add(err)
			continue
		}
		for _, sc := range pc.ScrapeConfigs {
			if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
				ps.addf("prometheus.yml: job %s scrapes %s, the gateway serves /metrics", sc.JobName, sc.MetricsPath)
			}
			for _, st := range sc.StaticConfigs {
				got = append(got, st.Targets...)
			}
		}
		for _, g := range gateways {
			if _, ok := s.DependsOn[g.name]; !ok {
				ps.addf("service %s: does not depend on gateway %s", name, g.name)
			}
		}
	}
	if !promFound {
		ps.addf("compose.yaml: no prometheus service")
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		ps.addf("prometheus.yml: targets %v, want the gateways' admin ports %v", got, want)
	}
	return ps
}

// mountedFile reads the host file that a service sees at path, through its bind mounts
// (relative sources are relative to dir). A file inside a mounted directory is found too.
func mountedFile(dir string, s composeService, path string) ([]byte, string, error) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue // a named volume
		}
		src, dst := filepath.Join(dir, filepath.FromSlash(parts[0])), parts[1]
		var host string
		switch {
		case dst == path:
			host = src
		case strings.HasPrefix(path, strings.TrimSuffix(dst, "/")+"/"):
			host = filepath.Join(src, filepath.FromSlash(strings.TrimPrefix(path, strings.TrimSuffix(dst, "/")+"/")))
		default:
			continue
		}
		data, err := os.ReadFile(host)
		return data, host, err
	}
	return nil, "", fmt.Errorf("%s is not bind-mounted from this directory", path)
}

// checkBindMount: a bind mount (a source relative to the compose folder) is read-only and
// carries z, so SELinux hosts (Fedora, RHEL podman) relabel it for the container; Docker and
// Podman ignore z where SELinux is off. Named volumes are not checked.
func checkBindMount(service, v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
		return nil
	}
	var opts []string
	if len(parts) == 3 {
		opts = strings.Split(parts[2], ",")
	}
	for _, o := range opts {
		if !slices.Contains([]string{"ro", "rw", "z", "Z"}, o) {
			return fmt.Errorf("service %s: volume %q: unknown option %q", service, v, o)
		}
	}
	if len(parts) > 3 || !slices.Contains(opts, "ro") || !slices.Contains(opts, "z") && !slices.Contains(opts, "Z") {
		return fmt.Errorf("service %s: bind mount %q: want source:target:ro,z (read-only, and z so SELinux hosts let the container read it)", service, v)
	}
	return nil
}

// quickStartCurl finds the first curl to localhost:8080 in a README's "## Quick start".
var quickStartCurl = regexp.MustCompile("curl[^\\n`]*?\\blocalhost:8080(/[^\\s`'\"]*)")

// quickStartPath returns the path of the top-level README's quick-start curl
// (`curl -s localhost:8080/api/users/42`).
func quickStartPath(readme string) (string, error) {
	data, err := os.ReadFile(readme)
	if err != nil {
		return "", err
	}
	_, section, ok := strings.Cut(string(data), "\n## Quick start\n")
	if !ok {
		return "", fmt.Errorf("%s: no \"## Quick start\" section", readme)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	m := quickStartCurl.FindStringSubmatch(section)
	if m == nil {
		return "", fmt.Errorf("%s: quick start has no curl to localhost:8080", readme)
	}
	return m[1], nil
}

// checkServes: a request for path without a Host header (curl sends Host: localhost:8080)
// matches a route of the gateway (the longest prefix that ends at a path segment), and that
// route's service is registered by a sidecar in the registry it reads.
func checkServes(gateway string, cfg *config.Config, path string, registered map[string]string) error {
	var best *config.Route
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.Host != "" || r.Service == "" {
			continue
		}
		p := strings.TrimSuffix(r.Prefix, "/")
		if path != p && !strings.HasPrefix(path, p+"/") {
			continue
		}
		if best == nil || len(r.Prefix) > len(best.Prefix) {
			best = r
		}
	}
	switch {
	case best == nil:
		return fmt.Errorf("service %s: no route matches the README quick start's localhost:8080%s", gateway, path)
	case registered[best.Service] != best.Registry():
		return fmt.Errorf("service %s: the README quick start's %s goes to route %s, service %q, which no sidecar registers in %s", gateway, path, best.Prefix, best.Service, best.Registry())
	}
	return nil
}

// checkSidecar checks one `switchyard register` service: its registry and its instance are
// compose services it waits for; registered records what it registers where.
func checkSidecar(cf composeFile, name string, registered map[string]string) problems {
	var ps problems
	s := cf.Services[name]
	args := s.Command[1:]
	reg, _ := flagValue(args, "registry")
	svc, _ := flagValue(args, "service")
	addr, _ := flagValue(args, "addr")
	u, err := url.Parse(reg)
	if err != nil || registryOf[u.Scheme] == "" {
		ps.addf("service %s: -registry %q is not etcd://, consul:// or zk://", name, reg)
		return ps
	}
	if svc == "" {
		ps.addf("service %s: no -service", name)
	}
	registered[svc] = registryOf[u.Scheme]
	addrHost, _, err := net.SplitHostPort(addr)
	if err != nil {
		ps.addf("service %s: -addr %q: %v", name, addr, err)
	}
	for what, host := range map[string]string{"-registry": u.Hostname(), "-addr": addrHost} {
		if _, ok := cf.Services[host]; !ok {
			ps.addf("service %s: %s host %q is not a compose service", name, what, host)
		} else if _, ok := s.DependsOn[host]; !ok {
			ps.addf("service %s: does not depend on %s (%s)", name, host, what)
		}
	}
	return ps
}

// checkRegistryHosts: the registries a gateway's routes.yaml names are compose services.
func checkRegistryHosts(cf composeFile, name string, cfg *config.Config) problems {
	var ps problems
	var addrs []string
	if d := cfg.Discovery; d != nil {
		if d.Embedded != nil {
			ps.addf("service %s: embedded etcd: each gateway would have a registry of its own", name)
		}
		if d.Etcd != nil && d.Embedded == nil {
			addrs = append(addrs, d.Etcd.Endpoints...)
		}
		if d.Consul != nil {
			addrs = append(addrs, d.Consul.Address)
		}
		if d.ZooKeeper != nil {
			addrs = append(addrs, d.ZooKeeper.Servers...)
		}
	}
	for _, a := range addrs {
		if u, err := url.Parse(a); err == nil && u.Host != "" {
			a = u.Host
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			ps.addf("service %s: registry address %q: %v", name, a, err)
			continue
		}
		if _, ok := cf.Services[host]; !ok {
			ps.addf("service %s: registry %q is not a compose service", name, a)
		} else if _, ok := cf.Services[name].DependsOn[host]; !ok {
			ps.addf("service %s: does not depend on its registry %s", name, host)
		}
	}
	return ps
}

func TestCompose(t *testing.T) {
	if ps := checkCompose(t, "compose"); len(ps) > 0 {
		t.Errorf("%d problems:%s", len(ps), ps)
	}
}

// TestComposeChecksBite breaks a copy of deploy/compose one way at a time.
func TestComposeChecksBite(t *testing.T) {
	const (
		cy     = "compose.yaml"
		routes = "switchyard/routes.yaml"
		prom   = "prometheus.yml"
	)
	tests := []struct {
		name string
		m    []mutation
		want string
	}{
		{"typo in a service field", []mutation{{cy, "    healthcheck:", "    healthchek:"}}, "field healthchek not found"},
		{"typo in an anchor", []mutation{{cy, "  stop_grace_period: 45s", "  stop_grace_periods: 45s"}}, "field stop_grace_periods not found"},
		{"unknown top-level key", []mutation{{cy, "x-gateway: &gateway", "gateway: &gateway"}}, `unknown top-level key "gateway"`},
		{"image latest", []mutation{{cy, "etcd:v3.6.4", "etcd:latest"}}, "latest moves"},
		{"image without tag", []mutation{{cy, "traefik/whoami:v1.10.3", "traefik/whoami"}}, "no tag or digest"},
		{"build context elsewhere", []mutation{{cy, "context: ../..", "context: .."}}, "is not the repository"},
		{"depends on a missing service", []mutation{{cy, "    etcd:\n      condition: service_healthy\n    consul:", "    etc:\n      condition: service_healthy\n    consul:"}}, `depends_on "etc"`},
		{"started where healthy is due", []mutation{{cy, "    consul:\n      condition: service_healthy\n", "    consul:\n      condition: service_started\n"}}, "wait for service_healthy"},
		{"healthy without healthcheck", []mutation{{cy, "      whoami:\n        condition: service_started", "      whoami:\n        condition: service_healthy"}}, "only service_started"},
		{"published port collision", []mutation{{cy, `"127.0.0.1:8081:8080"`, `"127.0.0.1:8080:8080"`}}, "collides with gateway-1"},
		{"public port on every interface", []mutation{{cy, `"127.0.0.1:8081:8080"`, `"8081:8080"`}}, `port "8081:8080" is published on every interface`},
		{"bind mount without z", []mutation{{cy, "prometheus.yml:ro,z", "prometheus.yml:ro"}}, "want source:target:ro,z"},
		{"bind mount writable", []mutation{{cy, "/etc/switchyard:ro,z", "/etc/switchyard:z"}}, "want source:target:ro,z"},
		{"bind mount option typo", []mutation{{cy, "/etc/switchyard:ro,z", "/etc/switchyard:ro,zz"}}, `unknown option "zz"`},
		{"quick start path not routed", []mutation{{routes, "prefix: /api/users", "prefix: /api/people"}}, "no route matches the README quick start's localhost:8080/api/users/42"},
		{"quick start route not registered", []mutation{{routes, "prefix: /api/users\n    service: whoami", "prefix: /api/users\n    service: users"}}, `service "users", which no sidecar registers`},
		{"quick start curl changed", []mutation{{"../../README.md", "curl -s localhost:8080/api/users/42", "curl -s localhost:8080/v2/users/42"}}, "localhost:8080/v2/users/42"},
		{"collision through a wildcard", []mutation{{cy, `"127.0.0.1:9902:9901"`, `"9901:9901"`}}, "collides"},
		{"gateway stops too soon", []mutation{{cy, "stop_grace_period: 45s", "stop_grace_period: 30s"}}, "stop_grace_period 30s is not longer than drain_delay + shutdown_grace = 35s"},
		{"shutdown_grace raised", []mutation{{routes, "shutdown_grace: 30s", "shutdown_grace: 40s"}}, "= 45s"},
		{"drain_delay raised", []mutation{{routes, "drain_delay: 5s", "drain_delay: 15s"}}, "= 45s"},
		{"routes.yaml invalid", []mutation{{routes, "strip_prefix: true", "strip_prefix: yes please"}}, "strip_prefix"},
		{"admin on loopback", []mutation{{routes, `admin: "0.0.0.0:9901"`, `admin: "127.0.0.1:9901"`}}, "cannot be scraped"},
		{"config mounted elsewhere", []mutation{{cy, "./switchyard:/etc/switchyard:ro", "./switchyard:/etc/gateway:ro"}}, "not bind-mounted"},
		{"registry not a service", []mutation{{routes, `address: "consul:8500"`, `address: "consul-server:8500"`}}, `registry "consul-server:8500" is not a compose service`},
		{"route without a sidecar", []mutation{{routes, "service: hello\n    discovery: consul\n  #", "service: hola\n    discovery: consul\n  #"}}, `service "hola" from consul, but no sidecar`},
		{"sidecar into the wrong registry", []mutation{{cy, "-registry=consul://consul:8500", "-registry=etcd://etcd:2379"}}, `service "hello" from consul`},
		{"sidecar addr not a service", []mutation{{cy, "-addr=whoami:80", "-addr=who:80"}}, `-addr host "who"`},
		{"prometheus misses a gateway", []mutation{{prom, `"gateway-1:9901", `, ""}}, "prometheus.yml: targets"},
		{"prometheus on the public port", []mutation{{prom, `"gateway-2:9901"`, `"gateway-2:8080"`}}, "prometheus.yml: targets"},
		{"prometheus typo", []mutation{{prom, "static_configs:", "static_config:"}}, "field static_config not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			dir := filepath.Join(repo, "deploy", "compose")
			copyTree(t, "compose", dir)
			for _, f := range []string{"go.mod", "Dockerfile"} {
				if err := os.WriteFile(filepath.Join(repo, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			readme, err := os.ReadFile(filepath.Join("..", "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(repo, "README.md"), readme, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.m {
				m.apply(t, dir)
			}
			ps := checkCompose(t, dir)
			if !ps.contains(tc.want) {
				t.Errorf("want a problem containing %q, got %d:%s", tc.want, len(ps), ps)
			}
		})
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		spec string
		want publishedPort
		err  bool
	}{
		{"8080:8080", publishedPort{"", 8080, 8080, "tcp"}, false},
		{"127.0.0.1:8081:8080", publishedPort{"127.0.0.1", 8081, 8080, "tcp"}, false},
		{"127.0.0.1:9901:9901", publishedPort{"127.0.0.1", 9901, 9901, "tcp"}, false},
		{"[::1]:53:53/udp", publishedPort{"::1", 53, 53, "udp"}, false},
		{"8080", publishedPort{}, true},
		{"http:8080", publishedPort{}, true},
	}
	for _, tc := range tests {
		got, err := parsePort(tc.spec)
		if (err != nil) != tc.err || err == nil && got != tc.want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v, err=%v", tc.spec, got, err, tc.want, tc.err)
		}
	}
}

func TestPublishedPortCollides(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:8080:8080", "127.0.0.1:8080:9000", true},
		{"127.0.0.1:8080:8080", "127.0.0.1:8081:8080", false},
		{"127.0.0.1:8080:8080", "127.0.0.2:8080:8080", false},
		{"127.0.0.1:8080:8080", "8080:8080", true},
		{"[::]:8080:8080", "127.0.0.1:8080:8080", true},
		{"127.0.0.1:8080:8080", "127.0.0.1:8080:8080/udp", false},
	}
	for _, tc := range tests {
		a, err1 := parsePort(tc.a)
		b, err2 := parsePort(tc.b)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if got := a.collides(b); got != tc.want || b.collides(a) != tc.want {
			t.Errorf("%q collides with %q = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestQuickStartPath(t *testing.T) {
	p, err := quickStartPath(filepath.Join("..", "README.md"))
	if err != nil || p != "/api/users/42" {
		t.Errorf("quickStartPath(README.md) = %q, %v; want /api/users/42", p, err)
	}
}
