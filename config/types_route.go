package config

import "time"

// This file holds the route model's conditions, traffic targets and per-route filters (the
// keys issue 16 added). Route-only keys live on Route; filter keys live on Filters, which
// Policy embeds, so `defaults:` can set them for every route.

// Match is a route's request conditions besides host and prefix; all must hold. Among routes
// with the same host and prefix, the more specific is tried first, compared in this order as
// Gateway API HTTPRoute does: a method condition, then more header matches, then more query
// matches; config order breaks remaining ties (identical conditions are a config error).
type Match struct {
	Methods []string              `yaml:"methods"` // upper-case after loading; any of them
	Headers map[string]ValueMatch `yaml:"headers"` // header name (case-insensitive) -> condition
	Query   map[string]ValueMatch `yaml:"query"`   // query parameter name (case-sensitive) -> condition
}

// ValueMatch is one header or query condition. In YAML a plain string is an exact value
// (`X-Canary: always`); a mapping is {exact: V}, {present: true} or {regex: RE}, one of them.
type ValueMatch struct {
	Exact   string `yaml:"exact"`   // the value, compared case-sensitively
	Present bool   `yaml:"present"` // any value, even empty
	Regex   string `yaml:"regex"`   // RE2, matched against the whole value
}

// ConditionsKey describes the route's host, prefix and match conditions so that two routes
// that would match exactly the same requests get the same key (what "identical conditions"
// means for validation); it does not depend on the order conditions are written in.
func (r *Route) ConditionsKey() string { return conditionsKey(r) }

// Backend is where traffic goes: a registry service or a static upstream list, as a route
// names them (split branches and mirrors use it).
type Backend struct {
	Service    string     `yaml:"service"`    // registry service name; exclusive with Upstreams
	Upstreams  []Upstream `yaml:"upstreams"`  // static URLs (or {url, weight})
	Discovery  string     `yaml:"discovery"`  // registry for Service; resolved by the loader
	Tags       []string   `yaml:"tags"`       // Consul only
	Datacenter string     `yaml:"datacenter"` // Consul only
}

// Registry returns the registry the backend reads from, as Route.Registry does.
func (b *Backend) Registry() string {
	if len(b.Upstreams) > 0 {
		return RegistryStatic
	}
	return b.Discovery
}

// SplitBranch is one weighted branch of a traffic split.
type SplitBranch struct {
	Backend `yaml:",inline"`
	Weight  int `yaml:"weight"` // relative share; 0 sends nothing (a drained branch); default 1
}

// Sticky pins a client to the split branch and endpoint it first got, by cookie.
type Sticky struct {
	Cookie string        `yaml:"cookie"` // cookie name; required
	Secret string        `yaml:"secret"` // HMAC key for cookie values (${VAR}); default derived from the route (opaque, not secret)
	TTL    time.Duration `yaml:"ttl"`    // cookie Max-Age; default 0: a session cookie
}

// Mirror sends a copy of a share of the route's requests to another backend, fire and forget.
type Mirror struct {
	Backend `yaml:",inline"`
	Percent float64 `yaml:"percent"` // share of requests mirrored, 0-100; default 100
}

// Rewrite changes what is sent upstream.
type Rewrite struct {
	Prefix string `yaml:"prefix"` // replaces the matched prefix; "/" strips it (strip_prefix: true)
	Host   string `yaml:"host"`   // Host header sent upstream; default the client's
}

// Filters are the per-route filters. Policy embeds them, so `defaults:` holds the same keys;
// a route's block replaces the defaults' block as a whole, `enabled: false` turns it off.
type Filters struct {
	Headers      *HeaderRules `yaml:"headers"`        // header edits; default none
	MaxBodyBytes *int64       `yaml:"max_body_bytes"` // 413 past it; default 0: no limit
	IPAllow      []string     `yaml:"ip_allow"`       // CIDRs or addresses; empty: everyone (before ip_deny)
	IPDeny       []string     `yaml:"ip_deny"`        // CIDRs or addresses refused (403); wins over ip_allow
	CORS         *CORS        `yaml:"cors"`           // default off
	Compress     *Compress    `yaml:"compress"`       // default off
	Auth         *Auth        `yaml:"auth"`           // default off (types_auth.go)
}

// HeaderRules edit request headers before forwarding and response headers before relaying.
type HeaderRules struct {
	Enabled  *bool        `yaml:"enabled"`
	Request  *HeaderEdits `yaml:"request"`
	Response *HeaderEdits `yaml:"response"`
}

// HeaderEdits are applied in the order remove, set, add (Gateway API's HTTPHeaderFilter).
type HeaderEdits struct {
	Set    map[string]string `yaml:"set"`    // replace (or create) the header
	Add    map[string]string `yaml:"add"`    // append a value
	Remove []string          `yaml:"remove"` // drop the header
}

// CORS answers preflights at the gateway and adds CORS headers to responses.
type CORS struct {
	Enabled          *bool         `yaml:"enabled"`
	AllowOrigins     []string      `yaml:"allow_origins"`     // required; "*" any; "https://*.example.com" one wildcard label
	AllowMethods     []string      `yaml:"allow_methods"`     // default [GET, HEAD, POST]
	AllowHeaders     []string      `yaml:"allow_headers"`     // default none beyond the CORS-safelisted ones
	ExposeHeaders    []string      `yaml:"expose_headers"`    // default none
	AllowCredentials bool          `yaml:"allow_credentials"` // with a "*" origin: a config error
	MaxAge           time.Duration `yaml:"max_age"`           // preflight cache; default 0: not sent
}

// Compress compresses responses the client accepts compressed.
type Compress struct {
	Enabled  *bool    `yaml:"enabled"`
	MinBytes int      `yaml:"min_bytes"` // smaller bodies go as they are; default 1024
	Types    []string `yaml:"types"`     // media types compressed; default text/*, JSON, JS, XML, SVG, wasm
}
