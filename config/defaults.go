package config

import (
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Built-in defaults for policy blocks. README.md (Configuration reference) lists the same values; the
// numbers follow Envoy's outlier detection and retry budget, which operators already know.
var (
	builtinRetry = Retry{
		OnStatus:            []int{502, 503, 504},
		BudgetPercent:       20,
		MinRetryConcurrency: 3,
		MaxBodyBytes:        64 << 10,
	}
	builtinPassiveHealth = PassiveHealth{
		ConsecutiveFailures: 5,
		FailureStatuses:     []int{500, 502, 503, 504},
		EjectionTime:        30 * time.Second,
		MaxEjectionTime:     300 * time.Second,
		MaxEjectedPercent:   50,
		PanicThreshold:      50,
	}
	builtinBreaker = Breaker{
		FailureRatio:     0.5,
		MinRequests:      20,
		Interval:         10 * time.Second,
		OpenTimeout:      30 * time.Second,
		HalfOpenRequests: 5,
	}
	builtinRateLimit = RateLimit{
		Key:     RateLimitKeyRoute,
		MaxKeys: 100000,
		IdleTTL: 10 * time.Minute,
		Store:   RateLimitStoreLocal,
		// Burst 0 stays "derive from rps" (defaultBurst) until the end of applyDefaults, so
		// a route that raises rps gets a matching burst instead of the defaults' one.
	}
	builtinHealthCheck = HealthCheck{
		Interval:           10 * time.Second,
		Timeout:            2 * time.Second,
		HealthyThreshold:   2,
		UnhealthyThreshold: 3,
	}
	// The methods a CORS request may use without a method list: the CORS-safelisted ones
	// (Fetch standard), which need no preflight anyway.
	builtinCORS = CORS{AllowMethods: []string{"GET", "HEAD", "POST"}}
	// Compression pays from about 1 KiB: below that, gzip's ~20-byte frame and the CPU cost
	// buy little. The types are the text formats APIs and sites send; images other than SVG,
	// video and archives are compressed already. text/* does not cover text/event-stream
	// (filter/compress leaves it to an explicit entry: an open stream idles).
	builtinCompress = Compress{
		MinBytes: 1024,
		Types: []string{"text/*", "application/json", "application/javascript", "application/xml", "image/svg+xml",
			"application/wasm", "application/x-ndjson", "application/problem+json"},
	}
	// A headers block has no values of its own to default; it is the template a route's
	// headers block is completed from when defaults write none.
	builtinHeaders = HeaderRules{}
)

// DefaultLB is the balancer of a route that names none.
const DefaultLB = LBRoundRobin

// Block is a policy feature block or an auth mechanism block, as WithDefaults takes them.
type Block interface {
	Retry | PassiveHealth | Breaker | RateLimit | HealthCheck | CORS | Compress |
		APIKeyAuth | BasicAuth | JWTAuth | ForwardAuth
}

// zeroIsSetting lists the block fields whose zero value is a setting of its own, by block
// and key: Parse keeps an explicit zero there (validation accepts it), so WithDefaults must
// too. Every other field's zero means "left out". Slices need no entry: nil is left out, an
// empty list is a setting. defaults_test.go checks this list against validation.
var zeroIsSetting = map[string]bool{
	"retry.budget_percent":               true, // no budget: only min_retry_concurrency
	"retry.min_retry_concurrency":        true,
	"retry.max_body_bytes":               true, // no body is kept for a retry
	"passive_health.max_ejected_percent": true, // one endpoint ejected at a time
	"passive_health.panic_threshold":     true, // never
	"breaker.min_requests":               true,
	"breaker.interval":                   true, // counts never reset while closed
	"compress.min_bytes":                 true, // compress every size
	"jwt.leeway":                         true, // exact exp and nbf
}

// WithDefaults returns a copy of b with the built-in default in every field b leaves at its
// zero value, except fields whose zero is a setting (panic_threshold: 0 means never). It is
// for blocks built in code, where zero is the only way to leave a field out, and for the
// packages that take blocks: a block from Parse is complete and comes back equal, so they
// may pass whatever they are given through it. A nil b gives the built-in block. Enabled is
// copied as it is. The copy shares no slice, map or pointer with b or the built-ins.
func WithDefaults[T Block](b *T) *T {
	builtin, name := builtinBlock[T]()
	if b == nil {
		return cloneBlock(builtin)
	}
	out := cloneBlock(b)
	ov := reflect.ValueOf(out).Elem()
	bv := reflect.ValueOf(cloneBlock(builtin)).Elem()
	fields, _ := fieldsOf(ov.Type())
	for key, idx := range fields {
		if f := ov.FieldByIndex(idx); key != "enabled" && f.IsZero() && !zeroIsSetting[name+"."+key] {
			f.Set(bv.FieldByIndex(idx))
		}
	}
	if rl, ok := any(out).(*RateLimit); ok && rl.Burst == 0 {
		rl.Burst = defaultBurst(rl.RPS)
	}
	return out
}

// builtinBlock returns the built-in block of type T and the key it is written under.
func builtinBlock[T Block]() (*T, string) {
	var b any
	var name string
	switch any((*T)(nil)).(type) {
	case *Retry:
		b, name = &builtinRetry, "retry"
	case *PassiveHealth:
		b, name = &builtinPassiveHealth, "passive_health"
	case *Breaker:
		b, name = &builtinBreaker, "breaker"
	case *RateLimit:
		b, name = &builtinRateLimit, "rate_limit"
	case *HealthCheck:
		b, name = &builtinHealthCheck, "health_check"
	case *CORS:
		b, name = &builtinCORS, "cors"
	case *Compress:
		b, name = &builtinCompress, "compress"
	case *APIKeyAuth:
		b, name = &builtinAPIKey, "api_key"
	case *BasicAuth:
		b, name = &builtinBasic, "basic"
	case *JWTAuth:
		b, name = &builtinJWT, "jwt"
	case *ForwardAuth:
		b, name = &builtinForward, "forward"
	}
	return b.(*T), name
}

// defaultBurst is a rate limit's burst when none is written: one second's worth of
// requests, at least one.
func defaultBurst(rps float64) int {
	return max(1, int(math.Min(math.Ceil(rps), math.MaxInt32)))
}

// Defaults of the discovery and transport sections. They are exported so that the packages
// that also run outside a loaded config (a discoverer or client built in code) fill the same
// values: each is written here only.
const (
	DefaultEmbeddedClientURL = "http://127.0.0.1:2379"
	DefaultEmbeddedPeerURL   = "http://127.0.0.1:2380"

	DefaultEtcdEndpoint    = "127.0.0.1:2379"
	DefaultEtcdPrefix      = "/services/"
	DefaultEtcdDialTimeout = 5 * time.Second
	DefaultEtcdDebounce    = 5 * time.Millisecond

	DefaultRedisAddress = "127.0.0.1:6379"
	// DefaultRedisTimeout bounds the Redis call a rate-limited request waits for. A loopback
	// or same-zone round trip of the GCRA script takes well under 1ms; 50ms absorbs a GC
	// pause or a busy Redis yet keeps an outage to a small, bounded addition to each
	// request's latency (then on_error decides) rather than a stall.
	DefaultRedisTimeout = 50 * time.Millisecond
	DefaultRedisOnError = RedisOnErrorLocal

	DefaultConsulAddress  = "127.0.0.1:8500"
	DefaultConsulWaitTime = 5 * time.Minute

	DefaultZooKeeperServer         = "127.0.0.1:2181"
	DefaultZooKeeperRoot           = "/services"
	DefaultZooKeeperSessionTimeout = 10 * time.Second

	DefaultDialTimeout         = 5 * time.Second
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultMaxIdleConnsPerHost = 1024
)

// DefaultDrainDelay is how long the gateway keeps accepting and serving after SIGTERM, with
// /readyz already answering 503, before it closes its listener: whoever routes to it needs that
// long to notice. Kubernetes takes a terminating pod out of its Endpoints at once, but kube-proxy
// on each node, an ingress controller or a cloud load balancer acts on it a few seconds later
// (one probing /readyz every 2 s that marks a target down after 2 failures takes about 4 s),
// and connections they still send meanwhile would be refused by a closed listener. Traefik's
// requestAcceptGraceTimeout and the `preStop: sleep 5` of many charts bridge the same gap. 5 s
// covers these common setups while adding little to each step of a rolling update; slower
// probes need more, and a gateway that nothing balances to (a laptop, a test) wants 0.
const DefaultDrainDelay = 5 * time.Second

// MaxDrainDelay is the largest server.drain_delay validation accepts.
const MaxDrainDelay = 5 * time.Minute

// EmbeddedDefault is the embedded etcd server used when routes.yaml has no `discovery:`
// section: client on 127.0.0.1:2379, peer on 127.0.0.1:2380, data in DefaultDataDir().
func EmbeddedDefault() *Embedded {
	return &Embedded{ClientURL: DefaultEmbeddedClientURL, PeerURL: DefaultEmbeddedPeerURL, DataDir: DefaultDataDir()}
}

// DefaultDataDir is where the embedded etcd keeps its data unless data_dir says otherwise:
// $XDG_STATE_HOME/switchyard/etcd, else ~/.local/state/switchyard/etcd (XDG Base Directory
// spec). Never the working directory, so running from a checkout does not write into it.
func DefaultDataDir() string {
	base := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(base) { // the spec says relative values are invalid and ignored
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "switchyard", "etcd")
}

// applyDefaults is the one place defaults are applied. It runs after validation, so values
// it copies are known good. set(path) reports whether the file wrote that key, so an explicit
// zero (`read_timeout: 0`, `panic_threshold: 0`) is kept while an absent key is defaulted.
//
// Policy inheritance: the `defaults:` block is resolved against the built-ins first, then
// every route against it, field by field for scalars and block by block for feature blocks
// (see resolveBlock). Afterwards every Policy is complete: Retries and AccessLog are non-nil
// and each feature block is nil (off) or has every field set and Enabled true.
func applyDefaults(c *Config, set func(string) bool) {
	orDefault(set, "listen", &c.Listen, ":8080")
	orDefault(set, "admin", &c.Admin, "127.0.0.1:9901")
	orDefault(set, "server.read_header_timeout", &c.Server.ReadHeaderTimeout, 10*time.Second)
	orDefault(set, "server.idle_timeout", &c.Server.IdleTimeout, 120*time.Second)
	orDefault(set, "server.max_header_bytes", &c.Server.MaxHeaderBytes, 64<<10)
	orDefault(set, "server.max_connections", &c.Server.MaxConnections, 10000)
	orDefault(set, "server.body_idle_timeout", &c.Server.BodyIdleTimeout, 60*time.Second)
	orDefault(set, "server.min_body_rate", &c.Server.MinBodyRate, 256)
	orDefault(set, "server.body_rate_grace", &c.Server.BodyRateGrace, 10*time.Second)
	orDefault(set, "server.drain_delay", &c.Server.DrainDelay, DefaultDrainDelay)
	orDefault(set, "server.shutdown_grace", &c.Server.ShutdownGrace, 30*time.Second)
	orDefault(set, "transport.dial_timeout", &c.Transport.DialTimeout, DefaultDialTimeout)
	orDefault(set, "transport.idle_conn_timeout", &c.Transport.IdleConnTimeout, DefaultIdleConnTimeout)
	orDefault(set, "transport.max_idle_conns_per_host", &c.Transport.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)

	if c.Discovery == nil {
		c.Discovery = &Discovery{Embedded: &Embedded{}}
	}
	d := c.Discovery
	etcdEndpoint := DefaultEtcdEndpoint
	if e := d.Embedded; e != nil {
		orDefault(set, "discovery.embedded.client_url", &e.ClientURL, DefaultEmbeddedClientURL)
		orDefault(set, "discovery.embedded.peer_url", &e.PeerURL, DefaultEmbeddedPeerURL)
		orDefault(set, "discovery.embedded.data_dir", &e.DataDir, DefaultDataDir())
		// The etcd discoverer reads the embedded server unless told otherwise.
		if u, err := url.Parse(e.ClientURL); err == nil {
			etcdEndpoint = u.Host
		}
		if d.Etcd == nil {
			d.Etcd = &Etcd{}
		}
	}
	if e := d.Etcd; e != nil {
		orDefault(set, "discovery.etcd.endpoints", &e.Endpoints, []string{etcdEndpoint})
		orDefault(set, "discovery.etcd.prefix", &e.Prefix, DefaultEtcdPrefix)
		orDefault(set, "discovery.etcd.dial_timeout", &e.DialTimeout, DefaultEtcdDialTimeout)
		orDefault(set, "discovery.etcd.debounce", &e.Debounce, DefaultEtcdDebounce)
	}
	if cs := d.Consul; cs != nil {
		orDefault(set, "discovery.consul.address", &cs.Address, DefaultConsulAddress)
		orDefault(set, "discovery.consul.scheme", &cs.Scheme, "http")
		orDefault(set, "discovery.consul.token", &cs.Token, os.Getenv("CONSUL_HTTP_TOKEN"))
		orDefault(set, "discovery.consul.wait_time", &cs.WaitTime, DefaultConsulWaitTime)
	}
	if z := d.ZooKeeper; z != nil {
		orDefault(set, "discovery.zookeeper.servers", &z.Servers, []string{DefaultZooKeeperServer})
		orDefault(set, "discovery.zookeeper.root", &z.Root, DefaultZooKeeperRoot)
		orDefault(set, "discovery.zookeeper.session_timeout", &z.SessionTimeout, DefaultZooKeeperSessionTimeout)
	}

	if r := c.Redis; r != nil {
		orDefault(set, "redis.address", &r.Address, DefaultRedisAddress)
		orDefault(set, "redis.timeout", &r.Timeout, DefaultRedisTimeout)
		orDefault(set, "redis.on_error", &r.OnError, DefaultRedisOnError)
	}

	builtin := Policy{
		LB:            DefaultLB,
		Timeout:       30 * time.Second,
		Retries:       ptr(1),
		AccessLog:     ptr(c.Server.AccessLog),
		Retry:         &builtinRetry,
		PassiveHealth: &builtinPassiveHealth,
		Breaker:       &builtinBreaker,

		Upgrades:         []string{"websocket"},
		EncodedSlashes:   EncodedSlashesKeep,
		UpstreamProtocol: UpstreamProtocolAuto,
		Filters:          Filters{MaxBodyBytes: ptr[int64](0)},
	}
	builtinTemplates := &Policy{
		Retry:         &builtinRetry,
		PassiveHealth: &builtinPassiveHealth,
		Breaker:       &builtinBreaker,
		RateLimit:     &builtinRateLimit,
		HealthCheck:   &builtinHealthCheck,
		Filters:       Filters{Headers: &builtinHeaders, CORS: &builtinCORS, Compress: &builtinCompress},
	}
	// Taken before resolving: a defaults block written with enabled: false still supplies
	// its values to routes that turn the feature on.
	defaultTemplates := templates(&c.Defaults, "defaults", builtinTemplates, set)
	resolvePolicy(&c.Defaults, "defaults", &builtin, builtinTemplates, set)
	regs := registries(c.Discovery)
	for i := range c.Routes {
		r := &c.Routes[i]
		path := routePath(i)
		resolvePolicy(&r.Policy, path, &c.Defaults, defaultTemplates, set)
		routeDefaults(r, path, regs, set)
	}
	for _, p := range append([]*Policy{&c.Defaults}, routePolicies(c)...) {
		if rl := p.RateLimit; rl != nil && rl.Burst == 0 {
			rl.Burst = defaultBurst(rl.RPS)
		}
	}
}

// orDefault sets *field to value unless the file wrote path.
func orDefault[T any](set func(string) bool, path string, field *T, value T) {
	if !set(path) {
		*field = value
	}
}

func routePolicies(c *Config) []*Policy {
	out := make([]*Policy, len(c.Routes))
	for i := range c.Routes {
		out[i] = &c.Routes[i].Policy
	}
	return out
}

// resolvePolicy fills p's unset fields from parent (already resolved). templates holds, for
// every feature block, where a block p writes takes its unset fields from.
func resolvePolicy(p *Policy, path string, parent, templates *Policy, set func(string) bool) {
	if !set(path + ".lb") {
		p.LB = parent.LB
	}
	if !set(path + ".timeout") {
		p.Timeout = parent.Timeout
	}
	if !set(path + ".upgrades") {
		p.Upgrades = slices.Clone(parent.Upgrades)
	}
	if !set(path + ".encoded_slashes") {
		p.EncodedSlashes = parent.EncodedSlashes
	}
	if !set(path + ".upstream_protocol") {
		p.UpstreamProtocol = parent.UpstreamProtocol
	}
	if p.Retries == nil {
		p.Retries = ptr(*parent.Retries)
	}
	if p.AccessLog == nil {
		p.AccessLog = ptr(*parent.AccessLog)
	}
	p.Retry = resolveBlock(p.Retry, path+".retry", parent.Retry, templates.Retry, set)
	p.PassiveHealth = resolveBlock(p.PassiveHealth, path+".passive_health", parent.PassiveHealth, templates.PassiveHealth, set)
	p.Breaker = resolveBlock(p.Breaker, path+".breaker", parent.Breaker, templates.Breaker, set)
	p.RateLimit = resolveBlock(p.RateLimit, path+".rate_limit", parent.RateLimit, templates.RateLimit, set)
	p.HealthCheck = resolveBlock(p.HealthCheck, path+".health_check", parent.HealthCheck, templates.HealthCheck, set)

	// Filters: max_body_bytes and the IP lists are replaced whole by a route that writes
	// them (`ip_allow: []` clears the defaults' list); blocks inherit as above.
	if p.MaxBodyBytes == nil {
		p.MaxBodyBytes = ptr(*parent.MaxBodyBytes)
	}
	if !set(path + ".ip_allow") {
		p.IPAllow = slices.Clone(parent.IPAllow)
	}
	if !set(path + ".ip_deny") {
		p.IPDeny = slices.Clone(parent.IPDeny)
	}
	p.Headers = resolveBlock(p.Headers, path+".headers", parent.Headers, templates.Headers, set)
	p.CORS = resolveBlock(p.CORS, path+".cors", parent.CORS, templates.CORS, set)
	p.Compress = resolveBlock(p.Compress, path+".compress", parent.Compress, templates.Compress, set)
	p.Auth = resolveAuth(p.Auth, path+".auth", parent.Auth, templates.Auth, set)
}

// templates returns p's feature blocks as written, completed from base, whether or not they
// are enabled; blocks p does not write are base's.
func templates(p *Policy, path string, base *Policy, set func(string) bool) *Policy {
	return &Policy{
		Retry:         template(p.Retry, path+".retry", base.Retry, set),
		PassiveHealth: template(p.PassiveHealth, path+".passive_health", base.PassiveHealth, set),
		Breaker:       template(p.Breaker, path+".breaker", base.Breaker, set),
		RateLimit:     template(p.RateLimit, path+".rate_limit", base.RateLimit, set),
		HealthCheck:   template(p.HealthCheck, path+".health_check", base.HealthCheck, set),
		Filters: Filters{
			Headers:  template(p.Headers, path+".headers", base.Headers, set),
			CORS:     template(p.CORS, path+".cors", base.CORS, set),
			Compress: template(p.Compress, path+".compress", base.Compress, set),
			Auth:     authTemplate(p.Auth, path+".auth", set),
		},
	}
}

func template[T any](own *T, path string, base *T, set func(string) bool) *T {
	if own == nil {
		return base
	}
	return fill(own, path, base, set)
}

// resolveBlock resolves one feature block. Not written: a copy of the parent's (nil when the
// parent's is off). Written with `enabled: false`: nil. Otherwise the written block replaces
// the parent's as a whole, each field it leaves unset taken from template (the defaults'
// block as written, else the built-in one).
func resolveBlock[T any](own *T, path string, parent, template *T, set func(string) bool) *T {
	if own == nil {
		if parent == nil {
			return nil
		}
		out := cloneBlock(parent)
		reflect.ValueOf(out).Elem().FieldByName("Enabled").Set(reflect.ValueOf(ptr(true)))
		return out
	}
	en := reflect.ValueOf(own).Elem().FieldByName("Enabled").Interface().(*bool)
	if en != nil && !*en {
		return nil
	}
	return fill(own, path, template, set)
}

// fill returns a copy of own with every field the file did not write at path taken from
// base, and Enabled true.
func fill[T any](own *T, path string, base *T, set func(string) bool) *T {
	out := fillUnset(own, path, base, set)
	reflect.ValueOf(out).Elem().FieldByName("Enabled").Set(reflect.ValueOf(ptr(true)))
	return out
}

// registries lists the registries the discovery section configures, in a fixed order. No
// section at all means the embedded etcd.
func registries(d *Discovery) []string {
	if d == nil {
		return []string{RegistryEtcd}
	}
	var out []string
	if d.Embedded != nil || d.Etcd != nil {
		out = append(out, RegistryEtcd)
	}
	if d.Consul != nil {
		out = append(out, RegistryConsul)
	}
	if d.ZooKeeper != nil {
		out = append(out, RegistryZooKeeper)
	}
	return out
}

func routePath(i int) string { return "routes[" + itoa(i) + "]" }

func upstreamPath(j int) string { return ".upstreams[" + itoa(j) + "]" }

func itoa(i int) string { return strconv.Itoa(i) }

func ptr[T any](v T) *T { return &v }
