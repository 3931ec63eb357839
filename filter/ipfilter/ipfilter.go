// Package ipfilter is the per-route ip_allow / ip_deny request filter: it refuses (403) a
// client whose address is denied, or not allowed when an allow list is set.
//
// The client address is q.ClientIP, already resolved through trusted_proxies. It is parsed
// with net/netip: an IPv4-mapped IPv6 address counts as the IPv4 address it carries (a dual-
// stack listener reports IPv4 clients that way) and an IPv6 zone is ignored (a zone names
// the local interface, not the client). An address that does not parse is refused whenever a
// list is set, so garbage never slips past an allow list.
//
// Each list is compiled into sorted, merged, non-overlapping address ranges per family and
// searched by bisection: O(log n) with no allocation, the same code for ten entries and for
// ten thousand. go4.org/netipx's IPSet does the same but is not in the module list the
// project draws from, and sorted ranges are a few dozen lines. At 1,000 entries a linear
// netip.Prefix.Contains scan costs about 16 us per request against about 0.1 us here.
package ipfilter

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/switchyard/switchyard/filter"
)

// Filter is a compiled ip_allow / ip_deny pair. It is safe for concurrent use. A nil
// *Filter (what New returns for empty lists) lets everyone through.
type Filter struct {
	allow *addrSet // nil: every client not denied passes
	deny  *addrSet // nil: nobody is denied
}

// New compiles the allow and deny lists (CIDRs or single addresses, IPv4 or IPv6). It
// returns nil, nil when both are empty, so the route's chain skips the filter.
func New(allow, deny []string) (*Filter, error) {
	if len(allow) == 0 && len(deny) == 0 {
		return nil, nil
	}
	f := &Filter{}
	var errs []error
	var err error
	if f.allow, err = compile(allow); err != nil {
		errs = append(errs, fmt.Errorf("ip_allow: %w", err))
	}
	if f.deny, err = compile(deny); err != nil {
		errs = append(errs, fmt.Errorf("ip_deny: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// ServeRequest refuses the request with 403 when the client is denied, not allowed, or its
// address does not parse.
func (f *Filter) ServeRequest(w http.ResponseWriter, _ *http.Request, q *filter.Request) bool {
	if f.Allowed(q.ClientIP) {
		return true
	}
	q.Refuse(w, http.StatusForbidden)
	return false
}

// Allowed reports whether a client at address ip (text, as in filter.Request.ClientIP) may
// pass: deny wins over allow, and an unparseable address never passes.
func (f *Filter) Allowed(ip string) bool {
	if f == nil {
		return true
	}
	addr, ok := parseClient(ip)
	if !ok {
		return false
	}
	if f.deny.contains(addr) {
		return false
	}
	return f.allow == nil || f.allow.contains(addr)
}

// parseClient parses a client address without allocating: the zone is cut off before
// parsing (netip interns zones, which allocates the first time one is seen, and a client
// chooses its zone text), and an IPv4-mapped address is unmapped.
func parseClient(ip string) (netip.Addr, bool) {
	if i := strings.IndexByte(ip, '%'); i >= 0 {
		// Only IPv6 has zones, and a zone is never empty: anything else is malformed.
		if i == len(ip)-1 || strings.IndexByte(ip[:i], ':') < 0 {
			return netip.Addr{}, false
		}
		ip = ip[:i]
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}

// parseEntry reads one list entry: a CIDR or a single address, normalized so IPv4-mapped
// IPv6 entries match the IPv4 clients they describe.
func parseEntry(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has a zone; zones name local interfaces, not clients", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		// ::ffff:10.0.0.0/104 means 10.0.0.0/8; a shorter mapped prefix would cover IPv6
		// space too, which is almost certainly a mistake.
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped prefix shorter than /96", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
