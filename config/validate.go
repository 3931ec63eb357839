package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// validator checks a decoded (not yet defaulted) config. Because defaults come later, a
// zero value here means "not written" unless set(path) says otherwise; range checks apply
// only to what the file wrote, so the message points at the line that wrote it.
type validator struct {
	lines map[string]int
	sizes map[string]int // entries written in each data mapping, refused ones included
	errs  *errorList
}

func (v *validator) set(path string) bool {
	_, ok := v.lines[path]
	return ok
}

// line finds the line of path, or of its nearest written parent (a required key that is
// missing is reported where its block starts).
func (v *validator) line(path string) int {
	for path != "" {
		if l, ok := v.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs.add(v.line(path), path, format, args...)
}

// check reports msg at path when the file wrote path and ok is false.
func (v *validator) check(path string, ok bool, format string, args ...any) {
	if v.set(path) && !ok {
		v.errorf(path, format, args...)
	}
}

func (v *validator) config(c *Config) {
	if listenOK, adminOK := v.address("listen", c.Listen), v.address("admin", c.Admin); listenOK && adminOK {
		v.listeners(c)
	}
	for i, s := range c.TrustedProxies {
		p := fmt.Sprintf("trusted_proxies[%d]", i)
		if pfx, err := netip.ParsePrefix(s); err == nil {
			c.TrustedNets = append(c.TrustedNets, pfx.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			c.TrustedNets = append(c.TrustedNets, netip.PrefixFrom(a, a.BitLen()))
		} else {
			v.errorf(p, "%q is neither a CIDR (10.0.0.0/8) nor an IP address", s)
		}
	}
	v.check("server.max_header_bytes", c.Server.MaxHeaderBytes >= 0, "must not be negative")
	v.check("server.max_connections", c.Server.MaxConnections >= 0, "must not be negative (0 = unlimited), got %d", c.Server.MaxConnections)
	v.check("server.min_body_rate", c.Server.MinBodyRate >= 0, "must not be negative (0 = off), got %d", c.Server.MinBodyRate)
	// A load balancer notices a failing /readyz within seconds; minutes is a unit typo (5m for
	// 5s) that would hold every SIGTERM, and so every step of a rolling update, that long.
	v.check("server.drain_delay", c.Server.DrainDelay <= MaxDrainDelay,
		"must be at most %s (it delays every stop; load balancers notice /readyz failing within seconds), got %s", MaxDrainDelay, c.Server.DrainDelay)
	v.check("transport.max_idle_conns_per_host", c.Transport.MaxIdleConnsPerHost >= 0, "must not be negative")
	v.check("transport.max_conns_per_host", c.Transport.MaxConnsPerHost >= 0, "must not be negative")
	v.tls("transport.tls", c.Transport.TLS)
	v.serverTLS(c.Server.TLS)
	v.discovery(c.Discovery)
	v.redis(c.Redis)
	v.policy("defaults", &c.Defaults)
	v.routes(c)
}

// address checks a host:port to listen on; an empty host means all interfaces. It reports
// whether the address is usable (or was not written).
func (v *validator) address(path, s string) bool {
	if !v.set(path) {
		return true
	}
	if err := checkHostPort(s, true); err != nil {
		v.errorf(path, "invalid address %q: %v", s, err)
		return false
	}
	return true
}

func checkHostPort(s string, emptyHostOK bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. 127.0.0.1:8080")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && !emptyHostOK) {
		return fmt.Errorf("bad port %q", port)
	}
	if host == "" && !emptyHostOK {
		return fmt.Errorf("missing host")
	}
	if strings.ContainsAny(host, " /\\?#@") {
		return fmt.Errorf("bad host %q", host)
	}
	return nil
}

func (v *validator) tls(path string, t *TLS) {
	if t == nil {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.errorf(path, "cert_file and key_file go together (client certificate)")
	}
}

// httpURL checks an absolute http(s) URL with a host and no path beyond "/".
func httpURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil && !strings.Contains(s, "://"), err == nil && u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("URL %q must start with http:// or https://", s)
	case err != nil:
		return nil, fmt.Errorf("invalid URL %q", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("URL %q has no host", s)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("URL %q must not have a path (the request path is forwarded as is)", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "":
		return nil, fmt.Errorf("URL %q must be only scheme://host[:port]", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("URL %q has a bad port", s)
		}
	}
	return u, nil
}

func (v *validator) discovery(d *Discovery) {
	if d == nil {
		return
	}
	if e := d.Embedded; e != nil {
		const p = "discovery.embedded"
		var client, peer *url.URL
		if v.set(p + ".client_url") {
			var err error
			if client, err = httpURL(e.ClientURL); err != nil {
				v.errorf(p+".client_url", "%v", err)
			}
		}
		if v.set(p + ".peer_url") {
			var err error
			if peer, err = httpURL(e.PeerURL); err != nil {
				v.errorf(p+".peer_url", "%v", err)
			}
		}
		if client != nil && peer != nil && client.Host == peer.Host {
			v.errorf(p+".peer_url", "must differ from client_url")
		}
	}
	if e := d.Etcd; e != nil {
		const p = "discovery.etcd"
		v.check(p+".endpoints", len(e.Endpoints) > 0, "must not be empty")
		for i, ep := range e.Endpoints {
			var err error
			if strings.Contains(ep, "://") {
				_, err = httpURL(ep)
			} else if err = checkHostPort(ep, false); err != nil {
				err = fmt.Errorf("invalid endpoint %q: %v", ep, err)
			}
			if err != nil {
				v.errorf(fmt.Sprintf("%s.endpoints[%d]", p, i), "%v", err)
			}
		}
		if v.set(p + ".prefix") {
			if !strings.HasPrefix(e.Prefix, "/") {
				v.errorf(p+".prefix", "must start with \"/\", got %q", e.Prefix)
			} else if !strings.HasSuffix(e.Prefix, "/") {
				e.Prefix += "/" // so /services/users does not also match /services/users2
			}
		}
		v.check(p+".debounce", e.Debounce <= time.Second, "must be at most 1s (it delays every update), got %s", e.Debounce)
		v.tls(p+".tls", e.TLS)
	}
	if c := d.Consul; c != nil {
		const p = "discovery.consul"
		if v.set(p + ".address") {
			if err := checkHostPort(c.Address, false); err != nil {
				v.errorf(p+".address", "invalid address %q: %v", c.Address, err)
			}
		}
		v.check(p+".scheme", c.Scheme == "http" || c.Scheme == "https", "unknown scheme %q (want http, https)", c.Scheme)
		v.check(p+".wait_time", c.WaitTime > 0 && c.WaitTime <= 10*time.Minute, "must be positive and at most 10m (Consul's limit), got %s", c.WaitTime)
		v.tls(p+".tls", c.TLS)
	}
	if z := d.ZooKeeper; z != nil {
		const p = "discovery.zookeeper"
		v.check(p+".servers", len(z.Servers) > 0, "must not be empty")
		for i, s := range z.Servers {
			if err := checkHostPort(s, false); err != nil {
				v.errorf(fmt.Sprintf("%s.servers[%d]", p, i), "invalid server %q: %v", s, err)
			}
		}
		if v.set(p + ".root") {
			if !strings.HasPrefix(z.Root, "/") {
				v.errorf(p+".root", "must start with \"/\", got %q", z.Root)
			} else if z.Root = strings.TrimRight(z.Root, "/"); z.Root == "" {
				z.Root = "/"
			}
		}
		v.check(p+".session_timeout", z.SessionTimeout > 0, "must be positive")
	}
}

// serverTLS checks the listener's certificate and key at load time, so a bad pair is a
// config error (with its line) rather than a failed start or reload.
func (v *validator) serverTLS(t *ServerTLS) {
	if t == nil {
		return
	}
	if t.CertFile == "" {
		v.errorf("server.tls.cert_file", "required when server.tls is set")
	}
	if t.KeyFile == "" {
		v.errorf("server.tls.key_file", "required when server.tls is set")
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		v.errorf("server.tls.cert_file", "cannot load certificate and key: %v", err)
	}
}

// MaxRedisTimeout caps redis.timeout: every rate-limited request may wait that long while
// Redis is unreachable, so seconds is a unit typo (5s for 5ms), not a setting.
const MaxRedisTimeout = time.Second

var redisOnErrorModes = []string{RedisOnErrorLocal, RedisOnErrorAllow, RedisOnErrorDeny}

func (v *validator) redis(r *Redis) {
	if r == nil {
		return
	}
	const p = "redis"
	if v.set(p + ".address") {
		if err := checkHostPort(r.Address, false); err != nil {
			v.errorf(p+".address", "invalid address %q: %v", r.Address, err)
		}
	}
	v.check(p+".db", r.DB >= 0, "must not be negative, got %d", r.DB)
	v.check(p+".timeout", r.Timeout > 0 && r.Timeout <= MaxRedisTimeout,
		"must be positive and at most %s (each rate-limited request may wait this long while Redis is down), got %s", MaxRedisTimeout, r.Timeout)
	v.oneOf(p+".on_error", r.OnError, redisOnErrorModes)
	if r.Username != "" && r.Password == "" {
		v.errorf(p+".username", "needs password (an ACL login; e.g. password: ${REDIS_PASSWORD})")
	}
	v.tls(p+".tls", r.TLS)
}
