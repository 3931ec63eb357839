package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// MaxRetries is the most `retries` a route may ask for. Each retry goes to an endpoint not
// tried yet, and the proxy remembers at most upstream.MaxExcluded tried endpoints per
// request, so one try plus seven retries fill it. The value is written here rather than
// imported so that config depends on no other package of the module; a test in
// cmd/switchyard keeps the two in step.
const MaxRetries = 7

var (
	lbPolicies      = []string{LBRoundRobin, LBWeighted, LBLeastConn, LBRandom, LBLeastTime}
	knownRegistries = []string{RegistryEtcd, RegistryConsul, RegistryZooKeeper}
)

// KnownRegistries names every registry a route may read from: the static registry (routes
// with `upstreams:`) and every one `discovery:` can configure. The binary must be able to
// open each of them.
func KnownRegistries() []string {
	return append([]string{RegistryStatic}, knownRegistries...)
}

func (v *validator) routes(c *Config) {
	if len(c.Routes) == 0 {
		v.errorf("routes", "at least one route is required")
	}
	regs := registries(c.Discovery)
	seen := map[string]int{} // conditionsKey -> route index
	for i := range c.Routes {
		r, p := &c.Routes[i], routePath(i)
		r.Line = v.lines[p]
		if !v.set(p) {
			continue // the item itself failed to decode; that error is enough
		}
		if !v.route(r, p, regs) {
			continue
		}
		key := conditionsKey(r)
		if j, dup := seen[key]; dup {
			v.errorf(p+".prefix", "duplicate route: same host, prefix and match conditions as routes[%d] (line %d); routes may share host and prefix only with different conditions", j, c.Routes[j].Line)
			continue
		}
		seen[key] = i
	}
}

// route validates and normalizes one route; it reports whether prefix and host are usable
// for the duplicate check.
func (v *validator) route(r *Route, p string, regs []string) bool {
	ok := true
	if !v.set(p + ".prefix") {
		v.errorf(p, "missing prefix (e.g. prefix: /api)")
		ok = false
	} else if clean, err := cleanPrefix(r.Prefix); err != nil {
		v.errorf(p+".prefix", "%v", err)
		ok = false
	} else {
		r.Prefix = clean
	}
	if v.set(p + ".host") {
		if h, err := cleanHost(r.Host); err != nil {
			v.errorf(p+".host", "%v", err)
			ok = false
		} else {
			r.Host = h
		}
	}

	hasSplit := v.set(p + ".split")
	if targets := writtenOf(v, p, "service", "upstreams", "split"); len(targets) > 1 {
		both := "both " + strings.Join(targets, " and ")
		if len(targets) == 3 {
			both = "service, upstreams and split"
		}
		v.errorf(p, "has %s (want exactly one of service, upstreams, split)", both)
	} else if len(targets) == 0 {
		v.errorf(p, "needs service (a registry name), upstreams (static URLs) or split (weighted branches)")
	}
	var registries []string // of every target of the route, for the consul-only keys
	if hasSplit {
		for _, k := range []string{"discovery", "tags", "datacenter"} {
			v.check(p+"."+k, false, "not with split (each split branch names its own)")
		}
		registries = v.split(p+".split", r.Split, regs)
	} else {
		b := Backend{Service: r.Service, Upstreams: r.Upstreams, Discovery: r.Discovery, Tags: r.Tags, Datacenter: r.Datacenter}
		registries = append(registries, v.backend(p, &b, regs, routeTarget, false))
	}
	if r.Mirror != nil {
		registries = append(registries, v.mirror(p+".mirror", r.Mirror, regs))
	}
	if !slices.Contains(registries, RegistryConsul) && !slices.Contains(registries, "") {
		v.check(p+".passing_only", false, "only for consul routes (this route uses %s)", describeRegistries(registries))
	}
	v.match(p+".match", r.Match)
	if m := r.Match; m != nil && len(m.Methods) == 0 && len(m.Headers) == 0 && len(m.Query) == 0 {
		r.Match = nil // `match: {}` is no condition: the matcher's fast path
	}
	v.sticky(p+".sticky", r.Sticky)
	v.rewrite(p, r)
	v.policy(p, &r.Policy)
	return ok
}

// upstreams validates a static upstream list written at p+".upstreams", normalizing URLs in
// place.
func (v *validator) upstreams(p string, ups []Upstream) {
	v.check(p+".upstreams", len(ups) > 0, "must not be empty")
	seen := map[string]int{}
	for j := range ups {
		up, upp := &ups[j], p+upstreamPath(j)
		if !v.set(upp) {
			continue
		}
		urlp := upp
		if v.set(upp + ".url") {
			urlp = upp + ".url"
		}
		if up.URL == "" {
			v.errorf(urlp, "missing url (e.g. http://10.0.0.5:8080)")
		} else if u, err := upstreamURL(up.URL); err != nil {
			v.errorf(urlp, "%v", err)
		} else {
			// scheme://host[:port] only, lower-cased, so equal upstreams compare equal.
			up.URL = u.Scheme + "://" + strings.ToLower(u.Host)
			if k, dup := seen[up.URL]; dup {
				v.errorf(urlp, "duplicate of upstreams[%d] (%s)", k, up.URL)
			} else {
				seen[up.URL] = j
			}
		}
		v.check(upp+".weight", up.Weight > 0, "must be positive, got %d", up.Weight)
	}
}

// upstreamURL checks a static upstream URL: http:// or https://, or h2c:// (plain HTTP/2,
// as plain gRPC servers speak).
func upstreamURL(s string) (*url.URL, error) {
	rest, h2c := strings.CutPrefix(s, "h2c://")
	if !h2c {
		return httpURL(s)
	}
	u, err := httpURL("http://" + rest)
	if err != nil {
		// The message names the URL as written, not the http:// form checked.
		return nil, fmt.Errorf("%s", strings.Replace(err.Error(), "http://"+rest, s, 1))
	}
	u.Scheme = "h2c"
	return u, nil
}

// cleanPrefix normalizes a route prefix with path.Clean minus the trailing slash. Anything
// cleaning would change beyond that ("/a/../b", "//x", "/a/./b") is refused rather than
// silently rewritten: such a prefix in a file is almost always a mistake, and routing must
// match what the operator reads.
func cleanPrefix(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("must start with \"/\", got %q", p)
	}
	if strings.ContainsAny(p, "?# \t\r\n") {
		return "", fmt.Errorf("must be a plain path (no query, fragment or spaces), got %q", p)
	}
	c := path.Clean(p)
	if p != c && (c == "/" || p != c+"/") {
		return "", fmt.Errorf("%q is not a clean path (want %q)", p, c)
	}
	return c, nil
}

// cleanHost lower-cases a host and drops any port, as routing compares it with the
// request's Host header after the same treatment.
func cleanHost(h string) (string, error) {
	orig := h
	h = strings.ToLower(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	// "a.com." and "a.com" are one name (the proxy matches requests without the dot), so
	// both spellings in one file are duplicates.
	h = strings.TrimSuffix(h, ".")
	name := strings.TrimPrefix(h, wildcardLabel)
	switch {
	case h == "":
		return "", fmt.Errorf("empty host %q", orig)
	case strings.Contains(name, "*") || name == "" || name != h && (strings.HasPrefix(name, ".") || strings.Contains(name, ":")):
		return "", fmt.Errorf("invalid wildcard host %q: want one leading \"*.\" label before a host name, e.g. \"*.example.com\"", orig)
	case strings.ContainsAny(h, " \t/\\?#@[]"):
		return "", fmt.Errorf("invalid host %q", orig)
	}
	return h, nil
}

func (v *validator) policy(p string, pol *Policy) {
	v.check(p+".lb", slices.Contains(lbPolicies, pol.LB), "unknown policy %q (want %s)", pol.LB, strings.Join(lbPolicies, ", "))
	v.check(p+".timeout", pol.Timeout > 0, "must be positive (leave it out to inherit)")
	if n := pol.Retries; n != nil {
		v.check(p+".retries", *n >= 0 && *n <= MaxRetries, "must be between 0 and %d, got %d", MaxRetries, *n)
	}
	if b, bp := pol.Retry, p+".retry"; b != nil {
		v.statuses(bp+".on_status", b.OnStatus)
		v.percent(bp+".budget_percent", b.BudgetPercent)
		v.check(bp+".min_retry_concurrency", b.MinRetryConcurrency >= 0, "must not be negative")
		v.check(bp+".max_body_bytes", b.MaxBodyBytes >= 0, "must not be negative")
	}
	if b, bp := pol.PassiveHealth, p+".passive_health"; b != nil {
		v.check(bp+".consecutive_failures", b.ConsecutiveFailures >= 1, "must be at least 1, got %d", b.ConsecutiveFailures)
		v.statuses(bp+".failure_statuses", b.FailureStatuses)
		v.check(bp+".ejection_time", b.EjectionTime > 0, "must be positive")
		v.check(bp+".max_ejection_time", b.MaxEjectionTime > 0, "must be positive")
		if v.set(bp+".ejection_time") && v.set(bp+".max_ejection_time") && b.MaxEjectionTime < b.EjectionTime {
			v.errorf(bp+".max_ejection_time", "must not be below ejection_time (%s)", b.EjectionTime)
		}
		v.percent(bp+".max_ejected_percent", float64(b.MaxEjectedPercent))
		v.percent(bp+".panic_threshold", float64(b.PanicThreshold))
	}
	if b, bp := pol.Breaker, p+".breaker"; b != nil {
		v.check(bp+".failure_ratio", b.FailureRatio > 0 && b.FailureRatio <= 1, "must be in (0, 1], got %g", b.FailureRatio)
		v.check(bp+".open_timeout", b.OpenTimeout > 0, "must be positive")
		v.check(bp+".half_open_requests", b.HalfOpenRequests >= 1, "must be at least 1")
	}
	if b, bp := pol.RateLimit, p+".rate_limit"; b != nil {
		v.check(bp+".rps", b.RPS > 0, "must be positive, got %g", b.RPS)
		v.check(bp+".burst", b.Burst >= 0, "must not be negative, got %d", b.Burst)
		v.check(bp+".key", validRateKey(b.Key), "invalid key %q (want route, client_ip, identity or header:NAME)", b.Key)
		v.check(bp+".max_keys", b.MaxKeys >= 1, "must be at least 1, got %d", b.MaxKeys)
		v.check(bp+".idle_ttl", b.IdleTTL > 0, "must be positive")
		v.oneOf(bp+".store", b.Store, rateLimitStores)
	}
	if b, bp := pol.HealthCheck, p+".health_check"; b != nil {
		if !b.GRPC || b.Path != "" {
			v.check(bp+".path", strings.HasPrefix(b.Path, "/"), "must start with \"/\", got %q", b.Path)
		}
		if b.GRPC && len(b.ExpectStatus) > 0 && v.set(bp+".expect_status") {
			v.errorf(bp+".expect_status", "does not go with grpc: a gRPC check passes on SERVING only")
		}
		if b.Service != "" && !b.GRPC && v.set(bp+".service") {
			v.errorf(bp+".service", "needs grpc: true (the gRPC health service name)")
		}
		v.check(bp+".interval", b.Interval > 0, "must be positive")
		v.check(bp+".timeout", b.Timeout > 0, "must be positive")
		v.check(bp+".healthy_threshold", b.HealthyThreshold >= 1, "must be at least 1, got %d", b.HealthyThreshold)
		v.check(bp+".unhealthy_threshold", b.UnhealthyThreshold >= 1, "must be at least 1, got %d", b.UnhealthyThreshold)
		v.statuses(bp+".expect_status", b.ExpectStatus)
	}
	if v.set(p + ".upgrades") {
		pol.Upgrades = v.upgrades(p+".upgrades", pol.Upgrades)
	}
	v.oneOf(p+".encoded_slashes", pol.EncodedSlashes, encodedSlashModes)
	v.oneOf(p+".upstream_protocol", pol.UpstreamProtocol, upstreamProtocols)
	v.filters(p, &pol.Filters)
}

var rateLimitStores = []string{RateLimitStoreLocal, RateLimitStoreRedis}

var encodedSlashModes = []string{EncodedSlashesKeep, EncodedSlashesReject}

var upstreamProtocols = []string{UpstreamProtocolAuto, UpstreamProtocolHTTP1, UpstreamProtocolH2C, UpstreamProtocolH2}

// upgrades checks the protocols a route lets clients switch to and returns them lower-cased
// without repeats: Upgrade tokens compare case-insensitively (RFC 9110 7.8).
func (v *validator) upgrades(p string, list []string) []string {
	out := make([]string, 0, len(list))
	for i, u := range list {
		ip := fmt.Sprintf("%s[%d]", p, i)
		if !v.set(ip) {
			continue // failed to decode; reported
		}
		switch lu := strings.ToLower(u); {
		case lu == "h2c":
			// RFC 9113 3.1 and 8.6 retired it; through a proxy it would open a tunnel whose
			// requests bypass routing, rate limits and every per-route check.
			v.errorf(ip, "h2c upgrades are never forwarded: requests inside the upgraded connection would bypass routing and every route setting (HTTP/2 clients use TLS, or h2c with prior knowledge)")
		case !isToken(u):
			v.errorf(ip, "invalid protocol %q: want an HTTP token such as websocket (no spaces, \"/\", \",\" or quotes)", u)
		case !slices.Contains(out, lu):
			out = append(out, lu)
		}
	}
	return out
}

// isToken reports whether s is an RFC 9110 token, the syntax of an Upgrade protocol name
// (header field names have the same one).
func isToken(s string) bool { return httpguts.ValidHeaderFieldName(s) }

// oneOf checks a key that takes one of a few words; a near miss gets a suggestion, as an
// unknown key does.
func (v *validator) oneOf(p, value string, allowed []string) {
	if !v.set(p) || slices.Contains(allowed, value) {
		return
	}
	if s := suggest(value, allowed); s != "" {
		v.errorf(p, "unknown value %q (did you mean %q? want %s)", value, s, strings.Join(allowed, " or "))
		return
	}
	v.errorf(p, "unknown value %q (want %s)", value, strings.Join(allowed, " or "))
}

func validRateKey(k string) bool {
	if name, ok := strings.CutPrefix(k, RateLimitKeyHeaderPrefix); ok {
		return httpguts.ValidHeaderFieldName(name)
	}
	return k == RateLimitKeyRoute || k == RateLimitKeyClientIP || k == RateLimitKeyIdentity
}

func (v *validator) statuses(p string, codes []int) {
	for i, c := range codes {
		v.check(fmt.Sprintf("%s[%d]", p, i), c >= 100 && c <= 599, "HTTP status must be between 100 and 599, got %d", c)
	}
}

func (v *validator) percent(p string, x float64) {
	v.check(p, x >= 0 && x <= 100, "must be a percentage between 0 and 100, got %g", x)
}

// resolved checks what only the resolved config shows: a feature block the file turned on
// without its required field anywhere in the inheritance chain. Only blocks written at that
// path are reported, so one bad `defaults:` block gives one error, not one per route.
func (v *validator) resolved(c *Config) {
	check := func(p string, pol *Policy) {
		if pol.RateLimit != nil && pol.RateLimit.RPS <= 0 && v.set(p+".rate_limit") && !v.set(p+".rate_limit.rps") {
			v.errorf(p+".rate_limit", "missing rps (requests per second, > 0)")
		}
		if pol.RateLimit != nil && pol.RateLimit.Store == RateLimitStoreRedis && c.Redis == nil && v.set(p+".rate_limit.store") {
			v.errorf(p+".rate_limit.store", "store: redis needs the top-level redis block (redis: {address: host:port})")
		}
		if pol.HealthCheck != nil && pol.HealthCheck.Path == "" && !pol.HealthCheck.GRPC && v.set(p+".health_check") && !v.set(p+".health_check.path") {
			v.errorf(p+".health_check", "missing path (e.g. path: /healthz)")
		}
		if c := pol.CORS; c != nil && v.set(p+".cors") {
			if len(c.AllowOrigins) == 0 && !v.set(p+".cors.allow_origins") {
				v.errorf(p+".cors", "missing allow_origins (e.g. allow_origins: [https://app.example.com])")
			}
			if c.AllowCredentials {
				at := p + ".cors"
				if w := writtenOf(v, at, "allow_credentials", "allow_origins"); len(w) > 0 {
					at += "." + w[0]
				}
				if slices.Contains(c.AllowOrigins, "*") {
					v.errorf(at, "allow_credentials cannot go with the \"*\" origin (browsers refuse credentials for any origin): list the origins")
				} else if i := slices.IndexFunc(c.AllowOrigins, func(o string) bool { return strings.Contains(o, "*.") }); i >= 0 {
					// Any subdomain, a forgotten or taken-over one included, could then read
					// responses made with the user's cookies.
					v.errorf(at, "allow_credentials cannot go with a wildcard origin (%q): list the origins", c.AllowOrigins[i])
				}
			}
		}
	}
	check("defaults", &c.Defaults)
	for i := range c.Routes {
		r, p := &c.Routes[i], routePath(i)
		check(p, &r.Policy)
		if r.UpstreamProtocol != UpstreamProtocolHTTP1 {
			continue
		}
		for j, up := range r.Upstreams {
			if strings.HasPrefix(up.URL, "h2c://") && v.set(p+".upstream_protocol") {
				v.errorf(p+upstreamPath(j), "an h2c:// upstream does not go with upstream_protocol: http1 (the route's protocol would win)")
			}
		}
	}
}
