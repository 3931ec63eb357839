package proxy

import (
	"net/url"
	"strings"
	"testing"
)

// pathFuzzSeeds are inputs that have broken path handling somewhere.
var pathFuzzSeeds = []string{
	"/public/%2e%2e/admin",
	"/a/..%2f..%2fetc",
	"/%2F%2F",
	"//x",
	"/a/./b/../../..",
	"/api%2Fx",
	"%",
	"/%zz",
	"/%C3%A9",
	"/a;b/../c",
	"/api/users/42",
	"/api/./users/%2e%2E/",
	"/.%2e/.%2E/%2e./x",
	"/%c0%ae%c0%ae/",
	"/%E0%80%AF",
	"/a b\\c\x00",
	"/api/users/../../api%2fusers",
	"/café/menu/../%2e",
	"/a!b/(c)*'",
	"/" + strings.Repeat("a/", 2000) + strings.Repeat("../", 2001) + "x",
	strings.Repeat("/%2e%2E", 1000),
}

// FuzzCanonicalPath checks canonicalPath on any input: it never panics, its result is a
// fixed point of the one-pass check and the slow path alike, rooted, made of canonical
// bytes and escapes only, without empty (but a trailing), "." or ".." segments, even when
// each segment is decoded; a different spelling of the same path (unreserved characters
// encoded, hex in lower case) gives the same result; and forwardURLPath round-trips it
// through net/url.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range pathFuzzSeeds {
		f.Add(s)
	}
	for _, c := range pathCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, ok := canonicalPath(in)
		if slow, sok := canonicalize(in); sok != ok || slow != c {
			t.Fatalf("canonicalPath(%q) = %q, %v; slow path %q, %v", in, c, ok, slow, sok)
		}
		if alt, aok := canonicalPath(respell(in)); aok != ok || alt != c {
			t.Fatalf("canonicalPath(%q) = %q, %v; respelled %q: %q, %v", in, c, ok, respell(in), alt, aok)
		}
		if !ok {
			if c != "" {
				t.Fatalf("canonicalPath(%q) refused but returned %q", in, c)
			}
			return
		}
		if again, ok := canonicalPath(c); !ok || again != c {
			t.Fatalf("canonicalPath(%q) = %q; again: %q, %v", in, c, again, ok)
		}
		if !isCanonical(c) {
			t.Fatalf("canonicalPath(%q) = %q, which isCanonical rejects", in, c)
		}
		checkCanonicalShape(t, c)
		if strings.HasSuffix(c, "/") != (c == "/" || strings.HasSuffix(in, "/")) {
			t.Fatalf("canonicalPath(%q) = %q: trailing slash not kept as the input's", in, c)
		}
		checkForwardURL(t, c)
	})
}

// checkCanonicalShape fails unless c is a canonical path: rooted, only pchar, '/' and
// upper-case escapes of bytes that are not unreserved, and no empty (but a trailing), "."
// or ".." segment, decoded or not. Without an encoded slash, not even an upstream that
// decodes the whole path before splitting it (on '/' or '\\') finds a dot segment.
func checkCanonicalShape(t *testing.T, c string) {
	t.Helper()
	if !strings.HasPrefix(c, "/") {
		t.Fatalf("%q is not rooted", c)
	}
	for i := 0; i < len(c); i++ {
		switch pathClass[c[i]] {
		case pcUnreserved, pcReserved, pcSlash:
		case pcPercent:
			if i+2 >= len(c) || !isUpperHex(c[i+1]) || !isUpperHex(c[i+2]) {
				t.Fatalf("%q: bad escape at %d", c, i)
			}
			if k := pathClass[unhex(c[i+1])<<4|unhex(c[i+2])]; k == pcUnreserved || k == pcControl {
				t.Fatalf("%q: escape at %d must not be", c, i)
			}
			i += 2
		default:
			t.Fatalf("%q: byte %#x at %d", c, c[i], i)
		}
	}
	segs := strings.Split(c[1:], "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			t.Fatalf("%q: segment %q: %v", c, s, err)
		}
		if s == "" && !(i == len(segs)-1) || d == "." || d == ".." {
			t.Fatalf("%q: segment %d %q (%q)", c, i, s, d)
		}
	}
	if !hasEncodedSlash(c) {
		d, _ := url.PathUnescape(c)
		for _, s := range strings.FieldsFunc(d, func(r rune) bool { return r == '/' || r == '\\' }) {
			if s == "." || s == ".." {
				t.Fatalf("%q decodes to %q, with a dot segment, and has no encoded slash", c, d)
			}
		}
	}
}

// respell returns another spelling of the same escaped path: raw unreserved characters
// percent-encoded, and the hex of every escape in lower case.
func respell(in string) string {
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case pathClass[c] == pcUnreserved && i%2 == 0: // only some, so both spellings mix
			const lowerHex = "0123456789abcdef"
			b.Write([]byte{'%', lowerHex[c>>4], lowerHex[c&15]})
		case c == '%' && i+2 < len(in):
			b.WriteByte('%')
			b.WriteString(strings.ToLower(in[i+1 : i+3]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// fuzzRoutes is a small table with nested, escaped, strip_prefix and host routes.
func fuzzRoutes() []*Route {
	return []*Route{
		{Name: "root", Prefix: "/"},
		{Name: "api", Prefix: "/api", StripPrefix: true},
		{Name: "users", Prefix: "/api/users"},
		{Name: "public", Prefix: "/public", StripPrefix: true},
		{Name: "admin", Prefix: "/admin"},
		{Name: "static", Prefix: "/static/v1", StripPrefix: true},
		{Name: "space", Prefix: "/a b", StripPrefix: true},
		{Name: "cafe", Prefix: "/café", StripPrefix: true},
		{Name: "dots", Prefix: "/..a/b.", StripPrefix: true},
		{Name: "host-api", Prefix: "/api", Host: "admin.example.com", StripPrefix: true},
		{Name: "host-x", Prefix: "/x", Host: "admin.example.com"},
	}
}

// FuzzMatchNeverEscapesRoute checks routing on any path: the route Match picks is the one
// with the longest prefix that is a whole-segment prefix of the canonical path (for the
// request host, else host-less); with strip_prefix, what is forwarded is the rest, rooted
// and canonical, and the prefix followed by it is the path again; and no forwarded path
// has a dot segment.
func FuzzMatchNeverEscapesRoute(f *testing.F) {
	for _, s := range pathFuzzSeeds {
		f.Add("example.com", s)
	}
	for _, s := range []string{"/api/users/../../admin", "/api%2F..%2Fadmin", "/api/..", "/public/%2e%2e/admin",
		"/static/v1/../../admin", "/static/v1%2F..", "/a%20b/../a b/x", "/caf%C3%A9/", "/..a/b./../b./c"} {
		f.Add("example.com", s)
		f.Add("ADMIN.example.com.:443", s)
	}
	routes := fuzzRoutes()
	tbl := NewTable(routes, nil)
	f.Fuzz(func(t *testing.T, host, in string) {
		c, ok := canonicalPath(in)
		if !ok {
			return
		}
		rt := tbl.Match(plainRequest, host, c)
		if want := bruteMatch(routes, host, c); rt != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", host, c, routeName(rt), routeName(want))
		}
		if rt == nil {
			t.Fatalf("Match(%q, %q): no route, although there is a root", host, c)
		}
		prefix, _ := canonicalPrefix(rt.Prefix)
		up := tbl.upstreamPath(rt, c)
		if !rt.StripPrefix {
			if up != c {
				t.Fatalf("%s: forwards %q for %q", rt.Name, up, c)
			}
		} else {
			if again, ok := canonicalPath(up); !ok || again != up {
				t.Fatalf("%s: forwards %q for %q, not canonical (%q, %v)", rt.Name, up, c, again, ok)
			}
			if up == "/" { // "/api" and "/api/" both forward "/"
				if c != prefix && c != prefix+"/" {
					t.Fatalf("%s: forwards %q for %q", rt.Name, up, c)
				}
			} else if j, _ := canonicalPath(prefix + up); j != c || prefix+up != c {
				t.Fatalf("%s: prefix %q + forwarded %q = %q, want %q", rt.Name, prefix, up, j, c)
			}
		}
		checkCanonicalShape(t, up)
		checkForwardURL(t, up)
	})
}

// bruteMatch is Match by definition: of the routes for host (else those without a host),
// the one with the longest prefix that is c or a whole-segment prefix of it.
func bruteMatch(routes []*Route, host, c string) *Route {
	find := func(host string) *Route {
		var best *Route
		bestLen := -1
		for _, r := range routes {
			p, _ := canonicalPrefix(r.Prefix)
			if routeHost(r.Host) != host || !segmentPrefix(p, c) || len(p) <= bestLen {
				continue
			}
			best, bestLen = r, len(p)
		}
		return best
	}
	if h := normalizeHost(host); h != "" {
		if r := find(h); r != nil {
			return r
		}
	}
	return find("")
}

func segmentPrefix(prefix, p string) bool {
	return prefix == "/" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

func routeName(r *Route) string {
	if r == nil {
		return "<nil>"
	}
	return r.Name
}
