package ipfilter

import (
	"cmp"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
)

// addrSet is a set of addresses as sorted, merged, non-overlapping inclusive ranges, one
// slice per family, so a lookup is one bisection over integers.
type addrSet struct {
	v4 []range4
	v6 []range6
}

type range4 struct{ first, last uint32 }

// uint128 is an IPv6 address as two big-endian halves; comparing (high, low) orders
// addresses as netip does.
type uint128 struct{ high, low uint64 }

func (u uint128) compare(v uint128) int {
	if c := cmp.Compare(u.high, v.high); c != 0 {
		return c
	}
	return cmp.Compare(u.low, v.low)
}

// next returns u+1 and false when u is the last address (the sum would wrap).
func (u uint128) next() (uint128, bool) {
	if u.low != ^uint64(0) {
		return uint128{u.high, u.low + 1}, true
	}
	if u.high != ^uint64(0) {
		return uint128{u.high + 1, 0}, true
	}
	return u, false
}

type range6 struct{ first, last uint128 }

// compile parses entries into an addrSet; nil for an empty list. Every bad entry is named.
func compile(entries []string) (*addrSet, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	s := &addrSet{}
	var errs []error
	for _, e := range entries {
		p, err := parseEntry(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.Addr().Is4() {
			s.v4 = append(s.v4, prefixRange4(p))
		} else {
			s.v6 = append(s.v6, prefixRange6(p))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.v4 = merge4(s.v4)
	s.v6 = merge6(s.v6)
	return s, nil
}

func prefixRange4(p netip.Prefix) range4 {
	a := p.Addr().As4()
	first := binary.BigEndian.Uint32(a[:])
	hostBits := uint64(1)<<(32-p.Bits()) - 1 // in 64 bits: a /0 has 32 host bits
	return range4{first, first | uint32(hostBits)}
}

func prefixRange6(p netip.Prefix) range6 {
	a := p.Addr().As16()
	first := uint128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
	last := first
	switch hostBits := 128 - p.Bits(); {
	case hostBits >= 64:
		last.low = ^uint64(0)
		last.high |= uint64(1)<<(hostBits-64) - 1 // hostBits-64 <= 64: Go's shift by 64 gives 0, minus 1 all ones
	case hostBits > 0:
		last.low |= uint64(1)<<hostBits - 1
	}
	return range6{first, last}
}

// merge4 sorts ranges and joins the ones that overlap or touch.
func merge4(rs []range4) []range4 {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b range4) int { return cmp.Compare(a.first, b.first) })
	out := rs[:1]
	for _, r := range rs[1:] {
		top := &out[len(out)-1]
		if top.last == ^uint32(0) || r.first <= top.last+1 {
			top.last = max(top.last, r.last)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// merge6 is merge4 for IPv6.
func merge6(rs []range6) []range6 {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b range6) int { return a.first.compare(b.first) })
	out := rs[:1]
	for _, r := range rs[1:] {
		top := &out[len(out)-1]
		after, ok := top.last.next()
		if !ok || r.first.compare(after) <= 0 {
			if r.last.compare(top.last) > 0 {
				top.last = r.last
			}
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// contains reports whether addr (unmapped) is in the set; a nil set contains nothing.
func (s *addrSet) contains(addr netip.Addr) bool {
	if s == nil {
		return false
	}
	if addr.Is4() {
		a := addr.As4()
		x := binary.BigEndian.Uint32(a[:])
		// Find the first range starting after x; the one before it is the only candidate.
		lo, hi := 0, len(s.v4)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if s.v4[mid].first <= x {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return lo > 0 && x <= s.v4[lo-1].last
	}
	a := addr.As16()
	x := uint128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
	lo, hi := 0, len(s.v6)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.v6[mid].first.compare(x) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo > 0 && x.compare(s.v6[lo-1].last) <= 0
}
