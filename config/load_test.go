package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("routes.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestAllErrorsInOnePass(t *testing.T) {
	src := `listen: "8080"
lisen: ":8080"
routes:
  - prefix: /a
    upstreams: ["http://h:1"]
    lb: least_con
  - prefix: a
    service: users
    upstreams: ["http://h:2"]
    retries: 9
  - prefix: /c
    upstreams: [{url: "http://h:3", weight: 0}]
    timeout: soon
`
	_, err := Parse("routes.yaml", []byte(src))
	want := []string{
		`routes.yaml:1: listen: invalid address "8080": want host:port, e.g. 127.0.0.1:8080`,
		`routes.yaml:2: unknown key "lisen" (did you mean "listen"?)`,
		`routes.yaml:6: routes[0].lb: unknown policy "least_con" (want round_robin, weighted, least_conn, random, least_time)`,
		`routes.yaml:7: routes[1].prefix: must start with "/", got "a"`,
		`routes.yaml:7: routes[1]: has both service and upstreams (want exactly one of service, upstreams, split)`,
		`routes.yaml:10: routes[1].retries: must be between 0 and 7, got 9`,
		`routes.yaml:12: routes[2].upstreams[0].weight: must be positive, got 0`,
		`routes.yaml:13: routes[2].timeout: invalid duration "soon" (want e.g. 30s, 500ms, 1m30s)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 1 || fe.Path != "listen" {
		t.Errorf("errors.As found %+v, want the first FieldError", fe)
	}
}

func TestLoadFullExample(t *testing.T) {
	t.Setenv("ETCD_PASSWORD", "s3cret")
	t.Setenv("CONSUL_HTTP_TOKEN", "tok")
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "testdata/full.yaml" || len(c.Routes) != 7 {
		t.Fatalf("path %q, %d routes", c.Path, len(c.Routes))
	}
	if c.Discovery.Etcd.Password != "s3cret" || c.Discovery.Consul.Token != "tok" {
		t.Errorf("env not expanded: password %q token %q", c.Discovery.Etcd.Password, c.Discovery.Consul.Token)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.10/32"), netip.MustParsePrefix("fd00::/8")}
	if !reflect.DeepEqual(c.TrustedNets, want) {
		t.Errorf("TrustedNets = %v, want %v", c.TrustedNets, want)
	}
	users := c.Routes[0]
	if users.Host != "api.example.com" || users.Line != 118 || users.Registry() != RegistryConsul || !*users.PassingOnly {
		t.Errorf("users route: host %q line %d registry %q", users.Host, users.Line, users.Registry())
	}
	if c.Routes[1].Prefix != "/api/orders" || c.Routes[1].RateLimit.Key != "header:X-Api-Key" {
		t.Errorf("orders route: prefix %q rate limit %+v", c.Routes[1].Prefix, c.Routes[1].RateLimit)
	}
	if s := c.Routes[2]; s.Retry != nil || s.Breaker != nil || s.PassiveHealth == nil || len(s.Upgrades) != 0 || s.EncodedSlashes != EncodedSlashesReject {
		t.Errorf("search route: retry %v breaker %v passive %v upgrades %q encoded_slashes %q", s.Retry, s.Breaker, s.PassiveHealth, s.Upgrades, s.EncodedSlashes)
	}
	if u := c.Routes[0].Upgrades; !reflect.DeepEqual(u, []string{"websocket"}) {
		t.Errorf("users route upgrades %q", u)
	}
	legacy := c.Routes[3]
	wantUps := []Upstream{{URL: "http://127.0.0.1:9001", Weight: 1}, {URL: "http://127.0.0.1:9002", Weight: 3}}
	if !reflect.DeepEqual(legacy.Upstreams, wantUps) || legacy.Registry() != RegistryStatic {
		t.Errorf("legacy upstreams = %+v (%s)", legacy.Upstreams, legacy.Registry())
	}
	shop, shopAll := c.Routes[4], c.Routes[5]
	if shop.Host != "*.example.com" || len(shop.Split) != 3 || shop.Split[1].Weight != 90 || shop.Mirror.Percent != 10 || shop.Rewrite.Prefix != "/v2" ||
		shop.Match.Query["version"].Regex != `^2(\.[0-9]+)?$` || shop.Sticky.Secret != "dev-only" || *shop.PassingOnly != true {
		t.Errorf("shop route: %+v", shop)
	}
	if shop.CORS == nil || shop.Compress == nil || shop.Compress.MinBytes != 512 || shopAll.CORS != nil || shopAll.Compress != nil {
		t.Errorf("shop filters: cors %+v compress %+v; plain shop cors %+v compress %+v", shop.CORS, shop.Compress, shopAll.CORS, shopAll.Compress)
	}
	if h := shopAll.Headers; h == nil || h.Request.Set["X-Gateway"] != "switchyard" || h.Response.Remove[0] != "Server" {
		t.Errorf("inherited headers: %+v", h)
	}
	for i := range c.Routes {
		checkComplete(t, &c.Routes[i].Policy)
	}
}

// checkComplete asserts the loader's promise: pointers are nil (off) or complete.
func checkComplete(t *testing.T, p *Policy) {
	t.Helper()
	if p.LB == "" || p.Timeout <= 0 || p.Retries == nil || p.AccessLog == nil {
		t.Errorf("incomplete scalars: %+v", p)
	}
	v := reflect.ValueOf(p).Elem()
	if p.MaxBodyBytes == nil {
		t.Errorf("max_body_bytes not set")
	}
	for _, name := range []string{"Retry", "PassiveHealth", "Breaker", "RateLimit", "HealthCheck", "Headers", "CORS", "Compress"} {
		b := v.FieldByName(name)
		if b.IsNil() {
			continue
		}
		if en := b.Elem().FieldByName("Enabled"); en.IsNil() || !en.Elem().Bool() {
			t.Errorf("%s: enabled = %v, want true", name, en)
		}
	}
	if rl := p.RateLimit; rl != nil && (rl.RPS <= 0 || rl.Burst < 1 || rl.Key == "" || rl.MaxKeys < 1 || rl.IdleTTL <= 0) {
		t.Errorf("rate limit incomplete: %+v", rl)
	}
	if hc := p.HealthCheck; hc != nil && (hc.Path == "" || hc.Interval <= 0 || hc.Timeout <= 0) {
		t.Errorf("health check incomplete: %+v", hc)
	}
}

func TestBuiltinDefaults(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	c := mustParse(t, "routes:\n  - prefix: /\n    service: web\n")
	if c.Listen != ":8080" || c.Admin != "127.0.0.1:9901" {
		t.Errorf("listen %q admin %q", c.Listen, c.Admin)
	}
	wantServer := Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10, DrainDelay: 5 * time.Second, ShutdownGrace: 30 * time.Second,
		MaxConnections: 10000, BodyIdleTimeout: 60 * time.Second, MinBodyRate: 256, BodyRateGrace: 10 * time.Second}
	if c.Server != wantServer {
		t.Errorf("server = %+v", c.Server)
	}
	wantTransport := Transport{DialTimeout: 5 * time.Second, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 1024}
	if c.Transport != wantTransport {
		t.Errorf("transport = %+v", c.Transport)
	}
	// No discovery section: embedded etcd, and the etcd discoverer pointed at it.
	wantDisc := &Discovery{
		Embedded: &Embedded{ClientURL: "http://127.0.0.1:2379", PeerURL: "http://127.0.0.1:2380", DataDir: "/state/switchyard/etcd"},
		Etcd:     &Etcd{Endpoints: []string{"127.0.0.1:2379"}, Prefix: "/services/", DialTimeout: 5 * time.Second, Debounce: 5 * time.Millisecond},
	}
	if !reflect.DeepEqual(c.Discovery, wantDisc) {
		t.Errorf("discovery = %+v / %+v", c.Discovery.Embedded, c.Discovery.Etcd)
	}
	if !reflect.DeepEqual(c.Discovery.Embedded, EmbeddedDefault()) {
		t.Errorf("EmbeddedDefault() = %+v, differs from the loader's", EmbeddedDefault())
	}
	r := c.Routes[0]
	want := Policy{
		LB: LBRoundRobin, Timeout: 30 * time.Second, Retries: ptr(1), AccessLog: ptr(false),
		Retry:         &Retry{Enabled: ptr(true), OnStatus: []int{502, 503, 504}, BudgetPercent: 20, MinRetryConcurrency: 3, MaxBodyBytes: 64 << 10},
		PassiveHealth: &PassiveHealth{Enabled: ptr(true), ConsecutiveFailures: 5, FailureStatuses: []int{500, 502, 503, 504}, EjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectedPercent: 50, PanicThreshold: 50},
		Breaker:       &Breaker{Enabled: ptr(true), FailureRatio: 0.5, MinRequests: 20, Interval: 10 * time.Second, OpenTimeout: 30 * time.Second, HalfOpenRequests: 5},
		Upgrades:      []string{"websocket"}, EncodedSlashes: EncodedSlashesKeep, UpstreamProtocol: UpstreamProtocolAuto,
		Filters: Filters{MaxBodyBytes: ptr[int64](0)},
	}
	if !reflect.DeepEqual(r.Policy, want) || !reflect.DeepEqual(c.Defaults, want) {
		t.Errorf("route policy = %+v\nwant %+v", r.Policy, want)
	}
	if r.Discovery != RegistryEtcd || r.Prefix != "/" || r.Line != 2 || r.PassingOnly != nil {
		t.Errorf("route = %+v", r)
	}
	if c.Routes[0].Retry == c.Defaults.Retry || &c.Routes[0].Retry.OnStatus[0] == &c.Defaults.Retry.OnStatus[0] {
		t.Error("route shares a block with defaults")
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got := DefaultDataDir(); got != "/home/u/.local/state/switchyard/etcd" {
		t.Errorf("DefaultDataDir() = %q", got)
	}
	t.Setenv("XDG_STATE_HOME", "relative/ignored")
	if got := DefaultDataDir(); got != "/home/u/.local/state/switchyard/etcd" {
		t.Errorf("relative XDG_STATE_HOME: DefaultDataDir() = %q", got)
	}
}

func TestRegistryDefaults(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "from-env")
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, c *Config)
	}{
		{"single consul", "discovery:\n  consul: {}\nroutes:\n  - {prefix: /, service: web}\n", func(t *testing.T, c *Config) {
			want := &Consul{Address: "127.0.0.1:8500", Scheme: "http", Token: "from-env", WaitTime: 5 * time.Minute}
			if !reflect.DeepEqual(c.Discovery.Consul, want) || c.Discovery.Etcd != nil || c.Discovery.Embedded != nil {
				t.Errorf("consul = %+v, etcd = %+v", c.Discovery.Consul, c.Discovery.Etcd)
			}
			if r := c.Routes[0]; r.Discovery != RegistryConsul || r.PassingOnly == nil || !*r.PassingOnly {
				t.Errorf("route discovery %q passing_only %v", r.Discovery, r.PassingOnly)
			}
		}},
		{"explicit empty token beats env", "discovery:\n  consul: {token: \"\"}\nroutes:\n  - {prefix: /, service: web}\n", func(t *testing.T, c *Config) {
			if c.Discovery.Consul.Token != "" {
				t.Errorf("token = %q", c.Discovery.Consul.Token)
			}
		}},
		{"null block means defaults", "discovery:\n  zookeeper:\nroutes:\n  - {prefix: /, service: web}\n", func(t *testing.T, c *Config) {
			want := &ZooKeeper{Servers: []string{"127.0.0.1:2181"}, Root: "/services", SessionTimeout: 10 * time.Second}
			if !reflect.DeepEqual(c.Discovery.ZooKeeper, want) || c.Routes[0].Discovery != RegistryZooKeeper {
				t.Errorf("zookeeper = %+v", c.Discovery.ZooKeeper)
			}
		}},
		{"embedded on another port feeds etcd", "discovery:\n  embedded: {client_url: \"http://127.0.0.1:12379\", peer_url: \"http://127.0.0.1:12380\", data_dir: /d}\nroutes:\n  - {prefix: /, service: web}\n", func(t *testing.T, c *Config) {
			if got := c.Discovery.Etcd.Endpoints; !reflect.DeepEqual(got, []string{"127.0.0.1:12379"}) {
				t.Errorf("etcd endpoints = %v", got)
			}
		}},
		{"etcd prefix gains slash, zk root loses it", "discovery:\n  etcd: {prefix: /svc}\n  zookeeper: {root: /zk/}\nroutes:\n  - {prefix: /, service: web, discovery: etcd}\n", func(t *testing.T, c *Config) {
			if c.Discovery.Etcd.Prefix != "/svc/" || c.Discovery.ZooKeeper.Root != "/zk" {
				t.Errorf("prefix %q root %q", c.Discovery.Etcd.Prefix, c.Discovery.ZooKeeper.Root)
			}
		}},
		{"static only with empty discovery", "discovery: {}\nroutes:\n  - {prefix: /, upstreams: [\"https://Example.COM:8443/\"]}\n", func(t *testing.T, c *Config) {
			if c.Discovery.Etcd != nil || c.Discovery.Embedded != nil || c.Routes[0].Upstreams[0].URL != "https://example.com:8443" {
				t.Errorf("discovery %+v upstream %+v", c.Discovery, c.Routes[0].Upstreams)
			}
		}},
		{"explicit zeros kept", "server: {read_header_timeout: 0, idle_timeout: 0s}\ndefaults:\n  passive_health: {panic_threshold: 0}\n  retry: {on_status: []}\nroutes:\n  - {prefix: /, service: web}\n", func(t *testing.T, c *Config) {
			if c.Server.ReadHeaderTimeout != 0 || c.Server.IdleTimeout != 0 {
				t.Errorf("server = %+v", c.Server)
			}
			if r := c.Routes[0]; r.PassiveHealth.PanicThreshold != 0 || len(r.Retry.OnStatus) != 0 || r.PassiveHealth.ConsecutiveFailures != 5 {
				t.Errorf("passive %+v retry %+v", r.PassiveHealth, r.Retry)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, mustParse(t, tc.src)) })
	}
}

func TestPolicyInheritance(t *testing.T) {
	src := `server: {access_log: true}
defaults:
  lb: least_conn
  timeout: 5s
  retries: 3
  passive_health: {consecutive_failures: 7, ejection_time: 1m}
  breaker: {enabled: false}
  rate_limit: {enabled: false, rps: 10, key: client_ip}
  health_check: {path: /health, interval: 3s}
routes:
  - prefix: /inherit
    service: a
  - prefix: /override
    service: b
    lb: weighted
    timeout: 1s
    retries: 0
    access_log: false
    passive_health: {max_ejected_percent: 10}
    breaker: {min_requests: 3}
    rate_limit: {rps: 1000}
    health_check: {enabled: false}
    retry: {enabled: false}
  - prefix: /opt-in
    service: c
    rate_limit: {}
    retry: {on_timeout: true}
`
	c := mustParse(t, src)
	in, ov, opt := c.Routes[0], c.Routes[1], c.Routes[2]
	for i := range c.Routes {
		checkComplete(t, &c.Routes[i].Policy)
	}
	if in.LB != LBLeastConn || in.Timeout != 5*time.Second || *in.Retries != 3 || !*in.AccessLog {
		t.Errorf("inherit scalars: %+v", in.Policy)
	}
	if in.PassiveHealth.ConsecutiveFailures != 7 || in.PassiveHealth.EjectionTime != time.Minute || in.PassiveHealth.MaxEjectedPercent != 50 {
		t.Errorf("inherit passive_health: %+v", in.PassiveHealth)
	}
	if in.Breaker != nil || in.RateLimit != nil {
		t.Errorf("inherit: breaker %+v rate_limit %+v, want both off", in.Breaker, in.RateLimit)
	}
	if in.HealthCheck == nil || in.HealthCheck.Path != "/health" || in.HealthCheck.Interval != 3*time.Second || in.HealthCheck.Timeout != 2*time.Second {
		t.Errorf("inherit health_check: %+v", in.HealthCheck)
	}

	if ov.LB != LBWeighted || ov.Timeout != time.Second || *ov.Retries != 0 || *ov.AccessLog {
		t.Errorf("override scalars: %+v", ov.Policy)
	}
	// A route's block replaces the defaults' block; its unset fields come from that block.
	if ov.PassiveHealth.MaxEjectedPercent != 10 || ov.PassiveHealth.ConsecutiveFailures != 7 {
		t.Errorf("override passive_health: %+v", ov.PassiveHealth)
	}
	// defaults turned the breaker off, so the route's block starts from the built-ins.
	if ov.Breaker == nil || ov.Breaker.MinRequests != 3 || ov.Breaker.FailureRatio != 0.5 {
		t.Errorf("override breaker: %+v", ov.Breaker)
	}
	if rl := ov.RateLimit; rl == nil || rl.RPS != 1000 || rl.Burst != 1000 || rl.Key != RateLimitKeyClientIP {
		t.Errorf("override rate_limit: %+v", rl)
	}
	if ov.HealthCheck != nil || ov.Retry != nil {
		t.Errorf("override: health_check %+v retry %+v, want off", ov.HealthCheck, ov.Retry)
	}
	// rate_limit: {} turns on the defaults' disabled block with its values.
	if rl := opt.RateLimit; rl == nil || rl.RPS != 10 || rl.Burst != 10 || rl.Key != RateLimitKeyClientIP || rl.MaxKeys != 100000 {
		t.Errorf("opt-in rate_limit: %+v", rl)
	}
	if r := opt.Retry; !r.OnTimeout || r.BudgetPercent != 20 || len(r.OnStatus) != 3 {
		t.Errorf("opt-in retry: %+v", r)
	}
	if c.Defaults.Breaker != nil || c.Defaults.RateLimit != nil || c.Defaults.HealthCheck == nil {
		t.Errorf("resolved defaults: %+v", c.Defaults)
	}
}

func TestBurstDefault(t *testing.T) {
	tests := []struct {
		rps  string
		want int
	}{{"0.5", 1}, {"1", 1}, {"2.1", 3}, {"100", 100}, {"1e12", 1<<31 - 1}}
	for _, tc := range tests {
		c := mustParse(t, "routes:\n  - {prefix: /, upstreams: [\"http://h:1\"], rate_limit: {rps: "+tc.rps+"}}\n")
		if got := c.Routes[0].RateLimit.Burst; got != tc.want {
			t.Errorf("rps %s: burst %d, want %d", tc.rps, got, tc.want)
		}
	}
}

func TestDocumentMarkers(t *testing.T) {
	for _, src := range []string{"---\n" + okRoute, okRoute + "---\n", "---\n" + okRoute + "...\n", "# only a comment\n" + okRoute} {
		if c := mustParse(t, src); len(c.Routes) != 1 {
			t.Errorf("%q: %d routes", src, len(c.Routes))
		}
	}
}

func BenchmarkParseFull(b *testing.B) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.Chdir("testdata") // its auth files are relative to it
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("full.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUpstreamForms(t *testing.T) {
	src := `routes:
  - prefix: /s
    upstreams:
      - http://a:1
      - {url: "http://b:2", weight: 5}
      - url: https://c
  - prefix: /flow
    upstreams: [http://d:4, {url: http://e:5, weight: 2}]
`
	c := mustParse(t, src)
	want := []Upstream{{URL: "http://a:1", Weight: 1}, {URL: "http://b:2", Weight: 5}, {URL: "https://c", Weight: 1}}
	if !reflect.DeepEqual(c.Routes[0].Upstreams, want) {
		t.Errorf("upstreams = %+v", c.Routes[0].Upstreams)
	}
	want = []Upstream{{URL: "http://d:4", Weight: 1}, {URL: "http://e:5", Weight: 2}}
	if !reflect.DeepEqual(c.Routes[1].Upstreams, want) {
		t.Errorf("flow upstreams = %+v", c.Routes[1].Upstreams)
	}
}

func TestNormalization(t *testing.T) {
	tests := []struct{ prefix, host, wantPrefix, wantHost string }{
		{"/", "", "/", ""},
		{"/api/", "API.Example.com", "/api", "api.example.com"},
		{"/api/v1", "example.com:8443", "/api/v1", "example.com"},
		{"/x", "[::1]:80", "/x", "::1"},
		{"/x", "[FE80::1]", "/x", "fe80::1"},
		{"/x", "Api.Example.com.", "/x", "api.example.com"},
		{"/x", "api.example.com.:8443", "/x", "api.example.com"},
	}
	for _, tc := range tests {
		src := "routes:\n  - prefix: \"" + tc.prefix + "\"\n    upstreams: [\"http://h:1\"]\n"
		if tc.host != "" {
			src += "    host: \"" + tc.host + "\"\n"
		}
		r := mustParse(t, src).Routes[0]
		if r.Prefix != tc.wantPrefix || r.Host != tc.wantHost {
			t.Errorf("%q %q -> %q %q, want %q %q", tc.prefix, tc.host, r.Prefix, r.Host, tc.wantPrefix, tc.wantHost)
		}
	}
}

func TestMergeKeys(t *testing.T) {
	src := `x-common: &common
  service: shared
  timeout: 3s
routes:
  - <<: *common
    prefix: /a
  - <<: *common
    prefix: /b
    timeout: 9s
`
	_, err := Parse("routes.yaml", []byte(src))
	// x-common is not a key of the schema; anchors must live inside known keys.
	if err == nil || !strings.Contains(err.Error(), `routes.yaml:1: unknown key "x-common"`) {
		t.Fatalf("err = %v", err)
	}
	src = `defaults: &d
  timeout: 3s
routes:
  - prefix: /a
    service: s
    <<: *d
  - prefix: /b
    service: s
    <<: *d
    timeout: 9s
`
	c := mustParse(t, src)
	if c.Routes[0].Timeout != 3*time.Second || c.Routes[1].Timeout != 9*time.Second {
		t.Errorf("timeouts %v %v", c.Routes[0].Timeout, c.Routes[1].Timeout)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want not-exist", err)
	}
}
