package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// writtenOf lists which of keys the file wrote under p, in the order given.
func writtenOf(v *validator, p string, keys ...string) []string {
	var out []string
	for _, k := range keys {
		if v.set(p + "." + k) {
			out = append(out, k)
		}
	}
	return out
}

// describeRegistries names the registries a route's targets use, for messages.
func describeRegistries(regs []string) string {
	var names []string
	for _, r := range regs {
		if r == RegistryStatic {
			r = "static upstreams"
		}
		if !slices.Contains(names, r) {
			names = append(names, r)
		}
	}
	return strings.Join(names, " and ")
}

// backend validates one target (a route's own service or upstreams, a split branch, a
// mirror) and returns the registry it reads, or "" when it has none (reported). what names
// the target in messages; with exclusive, the service/upstreams
// choice is checked here (a route checks it together with split).
func (v *validator) backend(p string, b *Backend, regs []string, what targetKind, exclusive bool) string {
	hasSvc, hasUps := v.set(p+".service"), v.set(p+".upstreams")
	if exclusive {
		switch {
		case hasSvc && hasUps:
			v.errorf(p, "has both service and upstreams (want exactly one)")
		case !hasSvc && !hasUps:
			v.errorf(p, "needs service (a registry name) or upstreams (static URLs)")
		}
	}
	registry := ""
	switch {
	case hasSvc:
		if b.Service == "" || strings.ContainsAny(b.Service, "/ \t\r\n") {
			v.errorf(p+".service", "invalid service name %q (non-empty, no \"/\" or spaces)", b.Service)
		}
		registry = v.registry(p, b.Discovery, regs, what)
	case hasUps:
		registry = RegistryStatic
		v.check(p+".discovery", false, "only for service %s (this %s has static upstreams)", what.many, what.one)
	}
	if hasUps {
		v.upstreams(p, b.Upstreams)
	}
	if registry != "" && registry != RegistryConsul {
		for _, k := range []string{"tags", "datacenter"} {
			v.check(p+"."+k, false, "only for consul %s (this %s uses %s)", what.many, what.one, describeRegistries([]string{registry}))
		}
	}
	for i, t := range b.Tags {
		v.check(fmt.Sprintf("%s.tags[%d]", p, i), t != "", "empty tag")
	}
	return registry
}

// targetKind names a kind of target in messages, in the singular and the plural.
type targetKind struct{ one, many string }

var (
	routeTarget  = targetKind{"route", "routes"}
	branchTarget = targetKind{"branch", "branches"}
	mirrorTarget = targetKind{"mirror", "mirrors"}
)

// registry returns the registry a service target reads, or "" after reporting why there is
// none: the one written under discovery, else the only configured one.
func (v *validator) registry(p, discovery string, regs []string, what targetKind) string {
	if v.set(p + ".discovery") {
		switch {
		case !slices.Contains(knownRegistries, discovery):
			v.errorf(p+".discovery", "unknown registry %q (want %s)", discovery, strings.Join(knownRegistries, ", "))
		case !slices.Contains(regs, discovery):
			v.errorf(p+".discovery", "registry %q is not configured under discovery:", discovery)
		default:
			return discovery
		}
		return ""
	}
	switch len(regs) {
	case 0:
		v.errorf(p, "service %s need a registry, and discovery: configures none", what.many)
	case 1:
		return regs[0]
	default:
		v.errorf(p, "needs discovery: %s (several registries are configured)", strings.Join(regs, " or "))
	}
	return ""
}

// MaxSplitWeight bounds a split branch's weight, as Gateway API bounds backendRefs' weights:
// shares finer than one in a million buy nothing, and the bound keeps sums far from overflow
// in whatever picks branches.
const MaxSplitWeight = 1000000

// split validates a route's weighted branches and returns the registries they read.
func (v *validator) split(p string, branches []SplitBranch, regs []string) []string {
	if len(branches) == 0 {
		v.errorf(p, "must have at least one branch")
		return nil
	}
	var out []string
	var total int64
	complete := true // every branch decoded with a valid weight: the total means something
	for i := range branches {
		bp := fmt.Sprintf("%s[%d]", p, i)
		if !v.set(bp) {
			complete = false
			continue // failed to decode; reported
		}
		br := &branches[i]
		out = append(out, v.backend(bp, &br.Backend, regs, branchTarget, true))
		switch {
		case !v.set(bp + ".weight"):
			total++ // the default weight, 1
		case br.Weight < 0 || br.Weight > MaxSplitWeight:
			v.errorf(bp+".weight", "must be between 0 (drains the branch) and %d, got %d", MaxSplitWeight, br.Weight)
			complete = false
		default:
			total += int64(br.Weight)
		}
	}
	if total == 0 && complete {
		v.errorf(p, "total weight is 0: at least one branch needs a positive weight")
	}
	return out
}

// mirror validates a route's mirror and returns the registry it reads.
func (v *validator) mirror(p string, m *Mirror, regs []string) string {
	reg := v.backend(p, &m.Backend, regs, mirrorTarget, true)
	v.check(p+".percent", m.Percent > 0 && m.Percent <= 100, "must be above 0 and at most 100 (leave mirror out to mirror nothing), got %g", m.Percent)
	return reg
}

func (v *validator) sticky(p string, s *Sticky) {
	if s == nil {
		return
	}
	if !v.set(p + ".cookie") {
		v.errorf(p, "missing cookie (the cookie's name, e.g. cookie: sy_route)")
	} else if !isToken(s.Cookie) {
		v.errorf(p+".cookie", "invalid cookie name %q: want a token (letters, digits, and !#$%%&'*+-.^_`|~; no spaces, \"=\" or \";\")", s.Cookie)
	}
}

// rewrite validates a route's rewrite block and its strip_prefix shorthand.
func (v *validator) rewrite(p string, r *Route) {
	rw := r.Rewrite
	if rw == nil {
		return
	}
	rp := p + ".rewrite"
	if len(writtenOf(v, rp, "prefix", "host")) == 0 {
		v.errorf(rp, "needs prefix or host (or leave rewrite out)")
	}
	if v.set(rp + ".prefix") {
		if clean, err := cleanPrefix(rw.Prefix); err != nil {
			v.errorf(rp+".prefix", "%v", err)
		} else {
			rw.Prefix = clean
		}
		if r.StripPrefix {
			v.errorf(rp+".prefix", "not with strip_prefix: true (strip_prefix is rewrite: {prefix: /}; keep one)")
		}
	}
	if v.set(rp + ".host") {
		if err := checkUpstreamHost(rw.Host); err != nil {
			v.errorf(rp+".host", "%v", err)
		}
	}
}

// checkUpstreamHost checks a Host header value to send upstream: a host name or IP, with an
// optional port; an IPv6 address in brackets, as Host writes it.
func checkUpstreamHost(s string) error {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("invalid host %q: bad port %q", s, port)
		}
		host = h
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	bracketed := strings.HasPrefix(s, "[")
	if bracketed && (!strings.Contains(host, ":") || net.ParseIP(host) == nil) || !bracketed && !validHostName(host) {
		return fmt.Errorf("invalid host %q: want host or host:port, e.g. users.internal:8080 ([::1]:8080 for IPv6)", s)
	}
	return nil
}

// validHostName reports a DNS name or IPv4 address: letters, digits, "-", "_" and dots.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}
