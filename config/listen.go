package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// listener is a listen address the way the kernel will see it, so that two spellings of one
// socket compare equal: `localhost`, `127.1` and `127.0.0.1` are one host, `[::0]` is `[::]`,
// and port `08080` is 8080.
type listener struct {
	ip   netip.Addr // invalid when the host is a name the resolver would have to look up
	name string     // that name, lower-cased
	port uint64
}

// parseListener reads a host:port that checkHostPort accepted (so the port is numeric:
// service names such as `:http`, which net.Listen would look up, are refused there).
func parseListener(s string) (listener, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return listener{}, false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return listener{}, false
	}
	l := listener{port: n}
	if ip, ok := hostIP(host); ok {
		l.ip = ip
	} else {
		l.name = strings.ToLower(host)
	}
	return l, true
}

// hostIP returns the address a listen host stands for without asking a resolver: an empty
// host is every interface (Go listens dual-stack), `localhost` is 127.0.0.1 (Go's resolver
// answers it first), and all-numeric IPv4 forms are read as inet_aton(3) reads them, since
// that is what the cgo resolver does with `127.1` or `2130706433`.
func hostIP(h string) (netip.Addr, bool) {
	switch {
	case h == "":
		return netip.IPv6Unspecified(), true
	case strings.EqualFold(h, "localhost"):
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), true
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap(), true // ::ffff:127.0.0.1 is bound as 127.0.0.1
	}
	return inetAton(h)
}

// inetAton parses the IPv4 forms inet_aton(3) accepts: a, a.b, a.b.c and a.b.c.d, each
// part decimal, octal (leading 0) or hex (0x), the last part filling the remaining bytes.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var ip uint64
	for i, p := range parts {
		last := i == len(parts)-1
		base, digits := 10, p
		switch {
		case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
			base, digits = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		if digits == "" || strings.ContainsAny(digits, "+-_") {
			return netip.Addr{}, false
		}
		n, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		if !last {
			if n > 255 {
				return netip.Addr{}, false
			}
			ip |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, false
		}
		ip |= n
	}
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// overlaps reports whether two listeners would take the same socket, or could: the same
// port on the same host, or on a wildcard host on either side (Go's wildcard listener is
// dual-stack). A host name cannot be compared without a resolver (it may resolve to the
// other address), so on the same port it overlaps anything.
func (a listener) overlaps(b listener) bool {
	if a.port != b.port || a.port == 0 { // port 0: the kernel picks a free one
		return false
	}
	if a.ip.IsValid() && b.ip.IsValid() {
		return a.ip == b.ip || a.ip.IsUnspecified() || b.ip.IsUnspecified()
	}
	return true
}

// loopback reports whether only this machine can reach the listener.
func (a listener) loopback() bool {
	return a.ip.IsValid() && a.ip.IsLoopback()
}

// listeners checks the admin listener against the public one and against the network:
// the admin API (pprof, routes, upstream addresses) must not be reachable from outside
// unless admin_expose says so (issue #11, item 14).
func (v *validator) listeners(c *Config) {
	listenSet, adminSet := v.set("listen"), v.set("admin")
	if !listenSet && !adminSet {
		return
	}
	listen, admin := c.Listen, c.Admin
	if !listenSet {
		listen = ":8080"
	}
	if !adminSet {
		admin = "127.0.0.1:9901"
	}
	pl, ok1 := parseListener(listen)
	al, ok2 := parseListener(admin)
	if !ok1 || !ok2 {
		return // checkHostPort accepted both, so this does not happen
	}
	if adminSet && !c.AdminExpose && !al.loopback() {
		v.errorf("admin", "%q is not a loopback address, so the admin API (pprof, routes, upstream addresses) would be reachable from the network; "+
			"use 127.0.0.1, [::1] or localhost, or set admin_expose: true to expose it on purpose", admin)
	}
	if pl.overlaps(al) {
		p := "admin"
		if !adminSet {
			p = "listen"
		}
		why := ""
		if !pl.ip.IsValid() || !al.ip.IsValid() {
			why = " (a host name may resolve to the other address: use different ports)"
		}
		v.errorf(p, "admin and listen must differ (%q and %q overlap%s): the admin API must not be public", admin, listen, why)
	}
}
