package config

import (
	"fmt"
	"mime"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// managedHeaders are the fields a headers block may not set, add or remove: hop-by-hop and
// framing fields are the proxy's to write (editing them would desynchronize the message
// framing or the connection), and Host is changed with rewrite.host.
var managedHeaders = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "host",
	"proxy-authorization", "proxy-authenticate", "http2-settings"}

// gatewayRequestHeaders are the request fields the gateway itself writes after the filters
// (the forwarding fields and the request ID): an edit of them would be overwritten, so a
// request block may not name them.
var gatewayRequestHeaders = []string{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip", "forwarded", "x-request-id"}

// managedHeader says why a filter may not write the header name (Host aside, which each
// caller words for itself), or returns "": hop-by-hop and framing fields in both
// directions, and in a request (upstream) also the fields the gateway writes after the
// filters.
func managedHeader(name string, request bool) string {
	lower := strings.ToLower(name)
	switch {
	case lower != "host" && slices.Contains(managedHeaders, lower):
		return fmt.Sprintf("%q is a hop-by-hop or framing header the gateway manages; it cannot be edited", name)
	case request && slices.Contains(gatewayRequestHeaders, lower):
		return fmt.Sprintf("%q is written by the gateway after the filters (forwarding fields, request ID); an edit would be overwritten", name)
	}
	return ""
}

// filters validates a policy's filter keys, normalizing IP lists, origins, methods and types.
func (v *validator) filters(p string, f *Filters) {
	if h := f.Headers; h != nil {
		v.headerEdits(p+".headers.request", h.Request)
		v.headerEdits(p+".headers.response", h.Response)
	}
	if f.MaxBodyBytes != nil {
		v.check(p+".max_body_bytes", *f.MaxBodyBytes >= 0, "must not be negative (0 = no limit), got %d", *f.MaxBodyBytes)
	}
	f.IPAllow = v.ipList(p+".ip_allow", f.IPAllow)
	f.IPDeny = v.ipList(p+".ip_deny", f.IPDeny)
	if a := f.Auth; a != nil {
		v.auth(p+".auth", a)
	}
	if c := f.CORS; c != nil {
		v.cors(p+".cors", c)
	}
	if c := f.Compress; c != nil {
		cp := p + ".compress"
		v.check(cp+".min_bytes", c.MinBytes >= 0, "must not be negative (0 compresses every size), got %d", c.MinBytes)
		v.check(cp+".types", len(c.Types) > 0, "must not be empty (leave it out for the default list, or write enabled: false)")
		for i, t := range c.Types {
			tp := fmt.Sprintf("%s.types[%d]", cp, i)
			if norm, ok := mediaRange(t); ok {
				c.Types[i] = norm
			} else {
				v.check(tp, false, "invalid media type %q: want type/subtype or type/*, e.g. text/html, text/*", t)
			}
		}
	}
}

// headerEdits checks one direction's set, add and remove: valid names, none of the managed
// ones, values without control characters, and no name both removed and written, or written
// twice in one map in different case.
func (v *validator) headerEdits(p string, e *HeaderEdits) {
	if e == nil {
		return
	}
	type edit struct{ kind, path string }
	where := map[string]edit{} // lower-case name -> where first written
	name := func(kind, np, n string) {
		lower := strings.ToLower(n)
		switch {
		case !httpguts.ValidHeaderFieldName(n):
			v.errorf(np, "invalid header name %q", n)
		case lower == "host":
			v.errorf(np, "Host cannot be edited here (use rewrite.host to change the Host sent upstream)")
		case managedHeader(n, strings.HasSuffix(p, ".request")) != "":
			v.errorf(np, "%s", message(managedHeader(n, strings.HasSuffix(p, ".request"))))
		default:
			// set then add is well defined (replace, then append); anything else twice is
			// a contradiction or a case-only repeat.
			first, dup := where[lower]
			switch {
			case !dup:
				where[lower] = edit{kind, np}
			case first.kind != "set" || kind != "add":
				v.errorf(np, "header %q is already edited at %s (header names are case-insensitive)", n, first.path)
			}
		}
	}
	for i, n := range e.Remove {
		if np := fmt.Sprintf("%s.remove[%d]", p, i); v.set(np) {
			name("remove", np, n)
		}
	}
	for _, kind := range []string{"set", "add"} {
		m := e.Set
		if kind == "add" {
			m = e.Add
		}
		for _, n := range sortedKeys(m) {
			np := p + "." + kind + "." + n
			name(kind, np, n)
			if !httpguts.ValidHeaderFieldValue(m[n]) {
				v.errorf(np, "invalid value %q: control characters (CR, LF, NUL...) are not allowed", m[n])
			}
		}
	}
}

// ipList parses ip_allow or ip_deny entries, each an address or a CIDR, and returns them as
// CIDRs (a bare address becomes /32 or /128, host bits are cleared, IPv4-mapped IPv6 becomes
// IPv4), so the filter parses one form. Entries that fail are reported and left out.
func (v *validator) ipList(p string, list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for i, s := range list {
		ip := fmt.Sprintf("%s[%d]", p, i)
		if !v.set(ip) {
			continue
		}
		pfx, err := parseIPEntry(s)
		if err != nil {
			v.errorf(ip, "%v", err)
			continue
		}
		out = append(out, pfx.String())
	}
	return out
}

func parseIPEntry(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%q: zones (%%eth0) are not allowed", s)
	}
	if pfx, err := netip.ParsePrefix(s); err == nil {
		a, bits := pfx.Addr(), pfx.Bits()
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an IP address", s)
}

func (v *validator) cors(p string, c *CORS) {
	v.check(p+".allow_origins", len(c.AllowOrigins) > 0, "must not be empty (list the origins, or \"*\" for any)")
	for i, o := range c.AllowOrigins {
		op := fmt.Sprintf("%s.allow_origins[%d]", p, i)
		if !v.set(op) {
			continue
		}
		if norm, err := checkOrigin(o); err != nil {
			v.errorf(op, "%v", err)
		} else {
			c.AllowOrigins[i] = norm
		}
	}
	v.check(p+".allow_methods", len(c.AllowMethods) > 0, "must not be empty (leave it out for GET, HEAD, POST)")
	for i, m := range c.AllowMethods {
		mp := fmt.Sprintf("%s.allow_methods[%d]", p, i)
		if !isToken(m) {
			v.check(mp, false, "invalid method %q: want an HTTP token such as GET", m)
			continue
		}
		c.AllowMethods[i] = strings.ToUpper(m)
	}
	for _, k := range []struct {
		key  string
		list []string
	}{{"allow_headers", c.AllowHeaders}, {"expose_headers", c.ExposeHeaders}} {
		for i, h := range k.list {
			v.check(fmt.Sprintf("%s.%s[%d]", p, k.key, i), httpguts.ValidHeaderFieldName(h), "invalid header name %q", h)
		}
	}
}

// checkOrigin checks one allow_origins entry, "*" or scheme://host[:port] where host may
// start with one "*." label, and returns it lower-cased (browsers send Origin so).
func checkOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	bad := fmt.Errorf("invalid origin %q: want \"*\" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path", o)
	scheme, rest, ok := strings.Cut(strings.ToLower(o), "://")
	if !ok || !validScheme(scheme) || rest == "" {
		return "", bad
	}
	host := rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		port, err := strconv.ParseUint(rest[i+1:], 10, 16)
		if err != nil || port == 0 {
			return "", bad
		}
		host = rest[:i]
	}
	name := strings.TrimPrefix(host, wildcardLabel)
	ipv6 := false
	if inner, ok := strings.CutPrefix(host, "["); ok && strings.HasSuffix(inner, "]") {
		a, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		ipv6 = err == nil && a.Is6() && a.Zone() == ""
	}
	if !ipv6 && (!validHostName(name) || strings.HasPrefix(name, ".")) {
		return "", bad
	}
	return scheme + "://" + rest, nil
}

// validScheme reports an RFC 3986 scheme: a letter, then letters, digits, "+", "-", ".".
func validScheme(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// mediaRange checks a compress.types entry, "type/subtype" or "type/*" without parameters,
// and returns it lower-cased.
func mediaRange(s string) (string, bool) {
	mt, params, err := mime.ParseMediaType(s)
	if err != nil || len(params) > 0 || strings.Contains(s, ";") {
		return "", false
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "*" || sub == "" || !isToken(typ) || sub != "*" && !isToken(sub) {
		return "", false
	}
	return mt, true
}
