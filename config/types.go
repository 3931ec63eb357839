// Package config parses and validates routes.yaml: strict keys, every error of a file in one
// pass, each naming file, line and field path, and defaults applied in one place. It never
// reaches the network.
package config

import (
	"net/netip"
	"time"
)

// Config is a whole routes.yaml after defaults are applied and validation passed.
type Config struct {
	// Path is the file the config was loaded from (set by the loader, not read from YAML).
	Path string `yaml:"-"`
	// Digest is the SHA-256 of the bytes it was parsed from, so a file watch started after
	// the load can tell whether the file changed in between.
	Digest []byte `yaml:"-"`

	Listen         string     `yaml:"listen"`          // public listener, default ":8080"
	Admin          string     `yaml:"admin"`           // admin listener, default "127.0.0.1:9901"; never the public one
	AdminExpose    bool       `yaml:"admin_expose"`    // allow a non-loopback admin address; default false
	AdminDebug     bool       `yaml:"admin_debug"`     // serve pprof and /debug/vars on the admin listener; default false
	TrustedProxies []string   `yaml:"trusted_proxies"` // CIDRs (or bare IPs) whose X-Forwarded-For is kept
	Discovery      *Discovery `yaml:"discovery"`       // nil: embedded etcd with defaults
	Redis          *Redis     `yaml:"redis"`           // shared store of rate limits with store: redis; nil: none
	Server         Server     `yaml:"server"`
	Transport      Transport  `yaml:"transport"`
	Defaults       Policy     `yaml:"defaults"` // inherited by every route for fields it leaves unset
	Routes         []Route    `yaml:"routes"`

	// TrustedNets is TrustedProxies parsed (bare IPs become /32 or /128).
	TrustedNets []netip.Prefix `yaml:"-"`
	// AuthFiles are the keys and users files routes' auth blocks read, for the reloader to
	// watch; a change to one reloads the config.
	AuthFiles []AuthFile `yaml:"-"`
}

// Server tunes the public listener.
type Server struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 10s (slowloris guard)
	ReadTimeout       time.Duration `yaml:"read_timeout"`        // whole request incl. body; 0 = none (streaming uploads)
	WriteTimeout      time.Duration `yaml:"write_timeout"`       // 0 = none (streaming responses, WebSocket)
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // keep-alive idle; default 120s
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`    // default 64 KiB
	MaxConnections    int           `yaml:"max_connections"`     // open client connections at once; default 10000, 0 = unlimited
	BodyIdleTimeout   time.Duration `yaml:"body_idle_timeout"`   // longest wait for request-body bytes or for the client to take response bytes; default 60s, 0 = none
	MinBodyRate       int64         `yaml:"min_body_rate"`       // bytes/s a client must sustain while the gateway waits on it, after body_rate_grace; default 256, 0 = none
	BodyRateGrace     time.Duration `yaml:"body_rate_grace"`     // waiting time before min_body_rate applies; default 10s
	DrainDelay        time.Duration `yaml:"drain_delay"`         // on SIGTERM, keep serving (not ready) this long before closing the listener; default 5s, 0 = none
	ShutdownGrace     time.Duration `yaml:"shutdown_grace"`      // then, time for in-flight requests to finish; default 30s
	AccessLog         bool          `yaml:"access_log"`          // default for routes' access_log
	TLS               *ServerTLS    `yaml:"tls"`                 // terminate TLS (HTTP/2 by ALPN); nil: plain HTTP/1.1 and h2c
}

// ServerTLS terminates TLS on the public listener; clients negotiate HTTP/2 or HTTP/1.1.
type ServerTLS struct {
	CertFile string `yaml:"cert_file"` // PEM certificate chain; required
	KeyFile  string `yaml:"key_file"`  // PEM private key; required
}

// Transport tunes the one shared upstream client.
type Transport struct {
	DialTimeout           time.Duration `yaml:"dial_timeout"`            // default 5s
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"` // default 0: the route timeout applies
	IdleConnTimeout       time.Duration `yaml:"idle_conn_timeout"`       // default 90s
	MaxIdleConnsPerHost   int           `yaml:"max_idle_conns_per_host"` // default 1024
	MaxConnsPerHost       int           `yaml:"max_conns_per_host"`      // default 0 = unlimited; at the cap requests wait (FIFO) within their route timeout
	TLS                   *TLS          `yaml:"tls"`                     // for https upstreams
}

// TLS is client TLS for a registry or https upstreams.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Discovery names the registries routes may use. When the whole section is absent the
// gateway starts an embedded etcd server and uses it (Embedded and Etcd are then filled in
// with defaults by the loader, see EmbeddedDefault).
type Discovery struct {
	Embedded  *Embedded  `yaml:"embedded"`
	Etcd      *Etcd      `yaml:"etcd"`
	Consul    *Consul    `yaml:"consul"`
	ZooKeeper *ZooKeeper `yaml:"zookeeper"`
}

// Embedded configures the in-process etcd server.
type Embedded struct {
	ClientURL string `yaml:"client_url"` // default "http://127.0.0.1:2379"
	PeerURL   string `yaml:"peer_url"`   // default "http://127.0.0.1:2380"
	DataDir   string `yaml:"data_dir"`   // default: <user state dir>/switchyard/etcd
}

// Etcd configures the etcd discoverer (also pointed at the embedded server).
type Etcd struct {
	Endpoints   []string      `yaml:"endpoints"`    // default ["127.0.0.1:2379"]
	Prefix      string        `yaml:"prefix"`       // default "/services/"; always ends in "/"
	Username    string        `yaml:"username"`     // ${VAR} expanded
	Password    string        `yaml:"password"`     // ${VAR} expanded
	TLS         *TLS          `yaml:"tls"`          //
	DialTimeout time.Duration `yaml:"dial_timeout"` // default 5s
	Debounce    time.Duration `yaml:"debounce"`     // coalescing window; default 5ms
}

// Consul configures the Consul discoverer.
type Consul struct {
	Address    string        `yaml:"address"`     // default "127.0.0.1:8500"
	Scheme     string        `yaml:"scheme"`      // http (default) or https
	Datacenter string        `yaml:"datacenter"`  // default: the agent's
	Token      string        `yaml:"token"`       // default $CONSUL_HTTP_TOKEN
	TLS        *TLS          `yaml:"tls"`         //
	WaitTime   time.Duration `yaml:"wait_time"`   // blocking query wait; default 5m, max 10m
	AllowStale bool          `yaml:"allow_stale"` // read from any server, not only the leader
}

// ZooKeeper configures the ZooKeeper discoverer.
type ZooKeeper struct {
	Servers        []string      `yaml:"servers"`         // default ["127.0.0.1:2181"]
	Root           string        `yaml:"root"`            // default "/services"
	SessionTimeout time.Duration `yaml:"session_timeout"` // default 10s
}

// Registry names, as routes' `discovery:` takes them.
const (
	RegistryEtcd      = "etcd"
	RegistryConsul    = "consul"
	RegistryZooKeeper = "zookeeper"
	RegistryStatic    = "static" // a route with upstreams:
)

// LB policy names.
const (
	LBRoundRobin = "round_robin"
	LBWeighted   = "weighted"
	LBLeastConn  = "least_conn"
	LBRandom     = "random"     // weighted random draws
	LBLeastTime  = "least_time" // peak-EWMA latency times in-flight, of two random members
)

// Policy is the behaviour a route can tune; `defaults:` holds the same fields. After loading,
// every route's Policy is complete: scalar fields are set, and each optional feature block is
// either nil (off) or fully defaulted.
type Policy struct {
	LB        string        `yaml:"lb"`         // default round_robin
	Timeout   time.Duration `yaml:"timeout"`    // whole upstream exchange up to response headers; default 30s
	Retries   *int          `yaml:"retries"`    // extra attempts on another endpoint; default 1
	AccessLog *bool         `yaml:"access_log"` // default server.access_log

	Retry         *Retry         `yaml:"retry"`          // default on: see Retry
	PassiveHealth *PassiveHealth `yaml:"passive_health"` // default on
	Breaker       *Breaker       `yaml:"breaker"`        // default on
	RateLimit     *RateLimit     `yaml:"rate_limit"`     // default off
	HealthCheck   *HealthCheck   `yaml:"health_check"`   // default off (active checks)

	Upgrades       []string `yaml:"upgrades"`        // protocols a client may upgrade to (Upgrade header); default [websocket]; h2c never
	EncodedSlashes string   `yaml:"encoded_slashes"` // keep (default: %2F forwarded encoded, never a separator) | reject (400)
	// UpstreamProtocol is the HTTP version spoken to the route's endpoints: auto (default:
	// what an endpoint declares, else ALPN for https, HTTP/1.1 for plain) | http1 | h2c | h2.
	UpstreamProtocol string `yaml:"upstream_protocol"`

	Filters `yaml:",inline"` // per-route filters (types_route.go)
}

// Upstream protocols, as upstream_protocol takes them (upstream.Protocol's names).
const (
	UpstreamProtocolAuto  = "auto"
	UpstreamProtocolHTTP1 = "http1"
	UpstreamProtocolH2C   = "h2c"
	UpstreamProtocolH2    = "h2"
)

// Encoded slash handling, as encoded_slashes takes it.
const (
	EncodedSlashesKeep   = "keep"
	EncodedSlashesReject = "reject"
)

// Retry tunes when a failed attempt is retried (the count is Policy.Retries).
type Retry struct {
	Enabled             *bool         `yaml:"enabled"`               // false turns the block off
	OnStatus            []int         `yaml:"on_status"`             // default [502, 503, 504]
	OnTimeout           bool          `yaml:"on_timeout"`            // retry upstream timeouts; default false
	PerTryTimeout       time.Duration `yaml:"per_try_timeout"`       // default 0: the route timeout
	BudgetPercent       float64       `yaml:"budget_percent"`        // retries <= this % of active requests; default 20
	MinRetryConcurrency int           `yaml:"min_retry_concurrency"` // retries always allowed up to this many at once; default 3
	MaxBodyBytes        int64         `yaml:"max_body_bytes"`        // bodies larger are not retried; default 64 KiB
	// Idempotent marks every request of the route as safe to repeat, whatever its method
	// (gRPC calls are all POST): retries then apply to them too. Default false.
	Idempotent bool `yaml:"idempotent"`
}

// PassiveHealth is outlier detection on real traffic (Envoy's consecutive-5xx rule).
type PassiveHealth struct {
	Enabled             *bool         `yaml:"enabled"`
	ConsecutiveFailures int           `yaml:"consecutive_failures"` // default 5
	FailureStatuses     []int         `yaml:"failure_statuses"`     // default [500, 502, 503, 504]
	EjectionTime        time.Duration `yaml:"ejection_time"`        // base; x times ejected; default 30s
	MaxEjectionTime     time.Duration `yaml:"max_ejection_time"`    // cap; default 300s
	MaxEjectedPercent   int           `yaml:"max_ejected_percent"`  // counted after ejecting; one always allowed; default 50
	PanicThreshold      int           `yaml:"panic_threshold"`      // healthy % below which all are used; default 50, 0 = never
}

// Breaker is a per-endpoint circuit breaker (sony/gobreaker).
type Breaker struct {
	Enabled          *bool         `yaml:"enabled"`
	FailureRatio     float64       `yaml:"failure_ratio"`      // trip at this ratio; default 0.5
	MinRequests      uint32        `yaml:"min_requests"`       // ...over at least this many; default 20
	Interval         time.Duration `yaml:"interval"`           // rolling window; default 10s
	OpenTimeout      time.Duration `yaml:"open_timeout"`       // open -> half-open; default 30s
	HalfOpenRequests uint32        `yaml:"half_open_requests"` // probes allowed half-open; default 5
}

// RateLimit limits a route's request rate (golang.org/x/time/rate).
type RateLimit struct {
	Enabled *bool         `yaml:"enabled"`  // false turns the block off (e.g. one route opting out of a default limit)
	RPS     float64       `yaml:"rps"`      // required, > 0
	Burst   int           `yaml:"burst"`    // default max(1, ceil(rps))
	Key     string        `yaml:"key"`      // route (default) | client_ip | header:NAME
	MaxKeys int           `yaml:"max_keys"` // bound on per-key limiters; default 100000
	IdleTTL time.Duration `yaml:"idle_ttl"` // per-key limiter evicted after this idle time; default 10m
	Store   string        `yaml:"store"`    // local (default: this process's buckets) | redis (shared through the top-level redis block)
}

// Rate limit stores, as rate_limit.store takes them.
const (
	RateLimitStoreLocal = "local"
	RateLimitStoreRedis = "redis"
)

// Redis is the server rate limits with store: redis share (GCRA in one Lua call per request,
// go-redis/redis_rate). One client per process: a change takes effect on restart.
type Redis struct {
	Address  string        `yaml:"address"`  // host:port; default "127.0.0.1:6379"
	Username string        `yaml:"username"` // ACL user; ${VAR} expanded
	Password string        `yaml:"password"` // ${VAR} expanded
	DB       int           `yaml:"db"`       // default 0
	TLS      *TLS          `yaml:"tls"`      // nil: plain TCP
	Timeout  time.Duration `yaml:"timeout"`  // bound on each request's Redis call (dial, write, read); default 50ms
	OnError  string        `yaml:"on_error"` // local (default) | allow | deny: what a request gets when Redis fails or is slow
}

// Redis on_error modes.
const (
	RedisOnErrorLocal = "local" // decide with this process's own bucket (limit per instance, not shared)
	RedisOnErrorAllow = "allow" // admit (fail open)
	RedisOnErrorDeny  = "deny"  // 429 (fail closed)
)

// HealthCheck is an active health check of every endpoint of the route's pool.
type HealthCheck struct {
	Enabled            *bool         `yaml:"enabled"`             // false turns the block off
	Path               string        `yaml:"path"`                // required unless grpc, starts with "/"
	GRPC               bool          `yaml:"grpc"`                // check with grpc.health.v1.Health/Check over HTTP/2 instead of GET path
	Service            string        `yaml:"service"`             // with grpc: the service name asked about; "" = the server as a whole
	Interval           time.Duration `yaml:"interval"`            // default 10s
	Timeout            time.Duration `yaml:"timeout"`             // default 2s
	HealthyThreshold   int           `yaml:"healthy_threshold"`   // default 2
	UnhealthyThreshold int           `yaml:"unhealthy_threshold"` // default 3
	ExpectStatus       []int         `yaml:"expect_status"`       // default any 2xx/3xx
}

// Rate limit keys, as rate_limit.key takes them: one bucket per route, per client IP (as
// seen through trusted_proxies), or per value of a request header ("header:X-Api-Key").
const (
	RateLimitKeyRoute        = "route"
	RateLimitKeyClientIP     = "client_ip"
	RateLimitKeyHeaderPrefix = "header:"
)

// Route maps a host, a path prefix and optional conditions to a service, static upstreams or
// a weighted split.
type Route struct {
	Prefix      string     `yaml:"prefix"`       // required, starts with "/"; cleaned, no trailing "/" except "/"
	Host        string     `yaml:"host"`         // optional; matched case-insensitively, port ignored
	Service     string     `yaml:"service"`      // registry service name; exclusive with Upstreams
	Upstreams   []Upstream `yaml:"upstreams"`    // static URLs (or {url, weight}); exclusive with Service
	Discovery   string     `yaml:"discovery"`    // registry for Service; needed when several are configured
	Tags        []string   `yaml:"tags"`         // Consul only: every tag must match
	Datacenter  string     `yaml:"datacenter"`   // Consul only
	PassingOnly *bool      `yaml:"passing_only"` // Consul only; default true (false adds warning)
	StripPrefix bool       `yaml:"strip_prefix"` // remove Prefix before forwarding; shorthand for rewrite: {prefix: /}

	Match   *Match        `yaml:"match"`   // conditions besides host and prefix; nil: none
	Split   []SplitBranch `yaml:"split"`   // weighted branches; exclusive with Service and Upstreams
	Sticky  *Sticky       `yaml:"sticky"`  // pin a client to its branch and endpoint by cookie
	Mirror  *Mirror       `yaml:"mirror"`  // fire-and-forget copies of a share of requests
	Rewrite *Rewrite      `yaml:"rewrite"` // prefix and Host sent upstream

	Policy `yaml:",inline"`

	// Line is where the route starts in its file, for messages about it.
	Line int `yaml:"-"`
}

// Upstream is one static upstream: a URL string, or {url, weight} in YAML.
type Upstream struct {
	URL    string `yaml:"url"`
	Weight int    `yaml:"weight"` // default 1; must be > 0
}

// Registry returns the registry the route reads from: RegistryStatic for upstreams, else
// Discovery as resolved by the loader.
func (r *Route) Registry() string {
	if len(r.Upstreams) > 0 {
		return RegistryStatic
	}
	return r.Discovery
}
