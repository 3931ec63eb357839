package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unsafe"
)

// pathCases are canonicalPath's cases; want "" means ok=false (answered 400).
var pathCases = []struct{ in, want string }{
	// Already canonical: returned as is.
	{"/", "/"},
	{"/api/users/42", "/api/users/42"},
	{"/api/users/", "/api/users/"},
	{"/a/.hidden/x", "/a/.hidden/x"},
	{"/a/..b/x...", "/a/..b/x..."},
	{"/a;b=c,d/e:f@g!$&'()*+", "/a;b=c,d/e:f@g!$&'()*+"},
	{"/caf%C3%A9", "/caf%C3%A9"},
	{"/a%2Fb", "/a%2Fb"},
	{"/%25", "/%25"},

	// Rooted, repeated slashes merged.
	{"", "/"},
	{"relative/x", "/relative/x"},
	{"//x", "/x"},
	{"//double//slash//", "/double/slash/"},

	// Dot segments, never above the root; trailing slash only when the input ends in one.
	{"/public/../admin", "/admin"},
	{"/public/./x", "/public/x"},
	{"/../../etc/passwd", "/etc/passwd"},
	{"/a/b/..", "/a"},
	{"/a/b/../", "/a/"},
	{"/a/.", "/a"},
	{"/a/./", "/a/"},
	{"/a/./b/../../..", "/"},
	{"/..", "/"},
	{"/.", "/"},
	{".", "/"},
	{"..", "/"},
	{"/a/b/c/../../d/./e/..", "/a/d"},
	{"/a;b/../c", "/c"},

	// Unreserved characters decoded: encoded dots are dots, and resolved.
	{"/public/%2e%2e/admin", "/admin"},
	{"/public/%2E%2E/admin", "/admin"},
	{"/public/.%2e/admin", "/admin"},
	{"/public/%2e/admin", "/public/admin"},
	{"/%41%62%2D%5f%7E%30", "/Ab-_~0"},
	{"/a/%2e%2e", "/"},
	{"/a/b/%2e%2e/", "/a/"},

	// Every other escape stays, upper-cased; %2F and %5C are never separators.
	{"/a%2fb", "/a%2Fb"},
	{"/a/..%2f..%2fetc", "/a/..%2F..%2Fetc"},
	{"/a/..%2f..%2fetc/..", "/a"},
	{"/%2F%2F", "/%2F%2F"},
	{"/%2f/..", "/"},
	{"/a%5cb", "/a%5Cb"},
	{"/api%2Fx", "/api%2Fx"},
	{"/%c3%a9", "/%C3%A9"},
	{"/%3b%21%25", "/%3B%21%25"},
	{"/%20", "/%20"},

	// Raw bytes with no place in a path are encoded.
	{"/a b", "/a%20b"},
	{"/a\\b", "/a%5Cb"},
	{"/é", "/%C3%A9"},
	{"/a[b]", "/a%5Bb%5D"},
	{"/a\"<>^`{|}", "/a%22%3C%3E%5E%60%7B%7C%7D"},
	{"/a?b#c", "/a%3Fb%23c"},

	// Refused.
	{"%", ""},
	{"/%", ""},
	{"/%4", ""},
	{"/%zz", ""},
	{"/%4g", ""},
	{"/a%2", ""},
	{"/%00", ""},
	{"/a%00.html", ""},
	{"/a\x00b", ""},
	{"/%0d%0aSet-Cookie:x", ""},
	{"/a\nb", ""},
	{"/%7F", ""},
	{"/%09", ""},
	{"/%c0%ae%c0%ae/etc", ""},
	{"/..%c0%af..%c0%afetc", ""},
	{"/%C1%9C", ""},
	{"/%e0%80%af", ""},
	{"/%f0%80%80%af", ""},
	{"/\xc0\xae", ""},
	{"/%C0\xae", ""},
	{"/x/../%00", ""},
	// Not overlong: a lead byte that a separator or an ASCII byte follows, real UTF-8.
	{"/%C0/%AE", "/%C0/%AE"},
	{"/%C0a", "/%C0a"},
	{"/%E0%A0%80", "/%E0%A0%80"},
	{"/%F0%90%80%80", "/%F0%90%80%80"},
}

func TestCanonicalPath(t *testing.T) {
	for _, c := range pathCases {
		got, ok := canonicalPath(c.in)
		if want := c.want != ""; ok != want || got != c.want {
			t.Errorf("canonicalPath(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, want)
			continue
		}
		if !ok {
			continue
		}
		if again, ok := canonicalPath(got); !ok || again != got {
			t.Errorf("canonicalPath(%q) = %q, %v; not idempotent", got, again, ok)
		}
		if slow, _ := canonicalize(c.in); slow != got {
			t.Errorf("canonicalize(%q) = %q; fast path gave %q", c.in, slow, got)
		}
	}
}

// TestRequestPath feeds request lines through net/http's own parsing, so the cases are what a
// client can make r.URL hold, and checks that the client's spelling reaches canonicalPath even
// when it has bytes net/url does not keep raw, where EscapedPath would decode "%2F" into
// slashes. want "" means refused.
func TestRequestPath(t *testing.T) {
	cases := []struct{ target, escaped, want string }{
		{"/api/users/42", "/api/users/42", "/api/users/42"},
		{"/a%20b", "/a%20b", "/a%20b"},
		{"/a%2fb/c", "/a%2fb/c", "/a%2Fb/c"},
		{"/public/%2e%2e/admin", "/public/%2e%2e/admin", "/admin"},
		{"/public/..%2Fadmin", "/public/..%2Fadmin", "/public/..%2Fadmin"},
		{"/a!b", "/a!b", "/a!b"},
		{"/a%21b", "/a%21b", "/a%21b"},
		{"/a[b]", "/a[b]", "/a%5Bb%5D"},
		{"/é", "/%C3%A9", "/%C3%A9"},
		{"/a\\b", "/a%5Cb", "/a%5Cb"},
		{"/api%2F..%2Fadmin|", "/api/../admin%7C", "/api%2F..%2Fadmin%7C"},
		{"/x/..%2F..%2Fetc\\", "/x/../../etc%5C", "/x/..%2F..%2Fetc%5C"},
		{"/é%2F", "/%C3%A9/", "/%C3%A9%2F"},
		{"/a%00b", "/a%00b", ""},
		{"/a%0ab", "/a%0ab", ""},
	}
	for _, c := range cases {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + c.target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil {
			t.Fatalf("%q: %v", c.target, err)
		}
		if got := r.URL.EscapedPath(); got != c.escaped {
			t.Errorf("%q: EscapedPath %q, want %q", c.target, got, c.escaped)
		}
		got, ok := canonicalPath(requestPath(r.URL))
		if want := c.want != ""; ok != want || got != c.want {
			t.Errorf("%q: canonicalPath(requestPath) = %q, %v; want %q, %v", c.target, got, ok, c.want, want)
		}
	}
	u := &url.URL{Path: "/api/users/42"}
	if n := testing.AllocsPerRun(100, func() { requestPath(u) }); n != 0 {
		t.Errorf("requestPath: %v allocs, want 0", n)
	}
}

func TestCanonicalPathAllocs(t *testing.T) {
	for _, p := range []string{"/", "/api/users/42", "/api/users/", "/v1/caf%C3%A9/a%2Fb;x=1"} {
		var got string
		if n := testing.AllocsPerRun(100, func() { got, _ = canonicalPath(p) }); n != 0 {
			t.Errorf("canonicalPath(%q): %v allocs, want 0", p, n)
		}
		if unsafe.StringData(got) != unsafe.StringData(p) {
			t.Errorf("canonicalPath(%q) returned a copy, want the input", p)
		}
	}
	if n := testing.AllocsPerRun(100, func() { hasEncodedSlash("/v1/caf%C3%A9/a%2Fb") }); n != 0 {
		t.Errorf("hasEncodedSlash: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { forwardURLPath("/api/users/42") }); n != 0 {
		t.Errorf("forwardURLPath: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { stripPrefix("/api/users/42", "/api") }); n != 0 {
		t.Errorf("stripPrefix: %v allocs, want 0", n)
	}
}

func TestHasEncodedSlash(t *testing.T) {
	cases := map[string]bool{
		"/":                false,
		"/a/b":             false,
		"/a%2Fb":           true,
		"/a%5Cb":           true,
		"/a%252Fb":         false, // an encoded "%" followed by "2F"
		"/%25%2F":          true,
		"/caf%C3%A9/%2F":   true,
		"/caf%C3%A9/x%20y": false,
		"/2F%":             false,
	}
	for in, want := range cases {
		if got := hasEncodedSlash(in); got != want {
			t.Errorf("hasEncodedSlash(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestForwardURLPath(t *testing.T) {
	cases := []struct{ in, path, raw string }{
		{"/api/users/42", "/api/users/42", ""},
		{"/a;b=c/d:e@f$&+,", "/a;b=c/d:e@f$&+,", ""},
		{"/a%2Fb", "/a/b", "/a%2Fb"},
		{"/caf%C3%A9", "/café", "/caf%C3%A9"},
		{"/a%20b%25", "/a b%", "/a%20b%25"},
		{"/a!b", "/a!b", "/a!b"}, // net/url would send "%21"
		{"/(x)*'", "/(x)*'", "/(x)*'"},
	}
	for _, c := range cases {
		p, raw := forwardURLPath(c.in)
		if p != c.path || raw != c.raw {
			t.Errorf("forwardURLPath(%q) = %q, %q; want %q, %q", c.in, p, raw, c.path, c.raw)
		}
	}
	// Every canonical path round-trips through net/url, whatever it holds: the cases above,
	// pathCases, and every byte value raw and encoded.
	var ins []string
	for _, c := range cases {
		ins = append(ins, c.in)
	}
	for _, c := range pathCases {
		ins = append(ins, c.in)
	}
	for b := 0; b < 256; b++ {
		ins = append(ins, fmt.Sprintf("/x%cy/%%%02X/%%%02x", b, b, b))
	}
	for _, in := range ins {
		c, ok := canonicalPath(in)
		if !ok {
			continue
		}
		checkForwardURL(t, c)
	}
}

// checkForwardURL fails unless the url.URL built from forwardURLPath(c) writes c as its path.
func checkForwardURL(t *testing.T, c string) {
	t.Helper()
	p, raw := forwardURLPath(c)
	u := url.URL{Path: p, RawPath: raw}
	if got := u.EscapedPath(); got != c {
		t.Fatalf("forwardURLPath(%q) = %q, %q: EscapedPath %q", c, p, raw, got)
	}
	if got := u.RequestURI(); got != c {
		t.Fatalf("forwardURLPath(%q): RequestURI %q", c, got)
	}
}

func TestStripPrefix(t *testing.T) {
	cases := []struct{ path, prefix, want string }{
		{"/api", "/api", "/"},
		{"/api/", "/api", "/"},
		{"/api/x", "/api", "/x"},
		{"/api/x/", "/api", "/x/"},
		{"/api/users/42", "/api/users", "/42"},
		{"/x", "/", "/x"},
		{"/", "/", "/"},
		{"/a%20b/c%2Fd", "/a%20b", "/c%2Fd"},
	}
	for _, c := range cases {
		if got := stripPrefix(c.path, c.prefix); got != c.want {
			t.Errorf("stripPrefix(%q, %q) = %q, want %q", c.path, c.prefix, got, c.want)
		}
	}
}

func TestCanonicalPrefix(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/api/users", "/api/users", true},
		{"/a b", "/a%20b", true},
		{"/café", "/caf%C3%A9", true},
		{"/100%", "/100%25", true},
		{"/a%2Fb", "/a%252Fb", true}, // a plain path: '%' is a percent sign
		{"/a!b;c", "/a!b;c", true},
		{"/a[b]", "/a%5Bb%5D", true},
		{"/a\x00", "/a%00", false},
	}
	for _, c := range cases {
		got, ok := canonicalPrefix(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("canonicalPrefix(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// pathBenchInputs are paths of about n bytes: canonical ones (the fast path), and ones of
// nested dot segments, the worst case for a resolver that re-scans the path per segment.
func pathBenchInputs(n int) map[string]string {
	return map[string]string{
		"canonical": "/" + strings.Repeat("segment/", n/8),
		"dots":      strings.Repeat("/a", n/5) + strings.Repeat("/..", n/5),
		"encoded":   strings.Repeat("/%2e%2E/%41%2f", n/14),
	}
}

func BenchmarkCanonicalPath(b *testing.B) {
	b.Run("common", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			canonicalPath("/api/users/42")
		}
	})
	for _, size := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"10KB", 10 << 10}, {"1MB", 1 << 20}} {
		for _, kind := range []string{"canonical", "dots", "encoded"} {
			in := pathBenchInputs(size.n)[kind]
			b.Run(kind+"/"+size.name, func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					canonicalPath(in)
				}
			})
		}
	}
}
