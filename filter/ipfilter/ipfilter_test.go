package ipfilter

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/filter"
)

func TestNewOff(t *testing.T) {
	f, err := New(nil, []string{})
	if f != nil || err != nil {
		t.Fatalf("New(empty) = %v, %v; want nil, nil", f, err)
	}
	// A nil filter (off) lets everyone through, should a chain builder keep it.
	q := &filter.Request{ClientIP: "garbage"}
	if !f.Allowed("garbage") || !f.ServeRequest(httptest.NewRecorder(), nil, q) || q.Status != 0 {
		t.Fatal("a nil filter refused a client")
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		want        []string // substrings of the error
	}{
		{"bad allow", []string{"10.0.0.0/33"}, nil, []string{"ip_allow", `"10.0.0.0/33"`}},
		{"bad deny", nil, []string{"example.com"}, []string{"ip_deny", `"example.com"`}},
		{"both named", []string{"x"}, []string{"1.2.3.4", "y"}, []string{`ip_allow: "x"`, `ip_deny: "y"`}},
		{"zone", []string{"fe80::1%eth0"}, nil, []string{"zone"}},
		{"short mapped", []string{"::ffff:0:0/80"}, nil, []string{"shorter than /96"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.allow, tt.deny)
			if err == nil || f != nil {
				t.Fatalf("New = %v, %v; want an error", f, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		pass, fail  []string
	}{
		{
			name:  "allow list only",
			allow: []string{"10.0.0.0/8", "192.168.1.7"},
			pass:  []string{"10.0.0.0", "10.255.255.255", "192.168.1.7", "::ffff:10.1.2.3"},
			fail:  []string{"11.0.0.0", "9.255.255.255", "192.168.1.8", "::1", "10.0.0.0.1", "", "garbage"},
		},
		{
			name: "deny list only",
			deny: []string{"203.0.113.0/24", "2001:db8::/32"},
			pass: []string{"203.0.112.255", "203.0.114.0", "2001:db9::", "127.0.0.1", "::1"},
			fail: []string{"203.0.113.0", "203.0.113.255", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:203.0.113.9", "not-an-ip", ""},
		},
		{
			name:  "deny wins over allow",
			allow: []string{"10.0.0.0/8"},
			deny:  []string{"10.1.0.0/16"},
			pass:  []string{"10.0.255.255", "10.2.0.0"},
			fail:  []string{"10.1.0.0", "10.1.200.3", "11.0.0.1"},
		},
		{
			name:  "zones are ignored",
			allow: []string{"fe80::/10"},
			pass:  []string{"fe80::1%eth0", "fe80::1%25weird%zone"},
			fail:  []string{"fe80::1%", "%eth0", "2001:db8::1%eth0", "127.0.0.1%eth0"},
		},
		{
			name:  "mapped entries match IPv4 clients",
			allow: []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.1"},
			pass:  []string{"10.9.9.9", "::ffff:10.9.9.9", "192.0.2.1"},
			fail:  []string{"11.0.0.0", "192.0.2.2"},
		},
		{
			name:  "families do not mix",
			allow: []string{"0.0.0.0/0"},
			pass:  []string{"0.0.0.0", "255.255.255.255", "::ffff:1.2.3.4"},
			fail:  []string{"::", "::1", "2001:db8::1", "::1.2.3.4"},
		},
		{
			name:  "everything IPv6",
			allow: []string{"::/0"},
			pass:  []string{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::1"},
			fail:  []string{"1.2.3.4"},
		},
		{
			name:  "overlapping and adjacent entries",
			allow: []string{"10.0.0.0/24", "10.0.0.128/25", "10.0.1.0/24", "10.0.3.0/24", "255.255.255.255", "255.255.255.254"},
			pass:  []string{"10.0.0.200", "10.0.1.255", "10.0.3.1", "255.255.255.255", "255.255.255.254"},
			fail:  []string{"10.0.2.0", "10.0.4.0", "255.255.255.253"},
		},
		{
			name:  "entries with host bits set are masked",
			allow: []string{" 10.1.2.3/16 "},
			pass:  []string{"10.1.0.0", "10.1.255.255"},
			fail:  []string{"10.2.0.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			for _, ip := range tt.pass {
				if !f.Allowed(ip) {
					t.Errorf("Allowed(%q) = false, want true", ip)
				}
			}
			for _, ip := range tt.fail {
				if f.Allowed(ip) {
					t.Errorf("Allowed(%q) = true, want false", ip)
				}
			}
		})
	}
}

// TestServeRequest checks the filter's answer through the chain contract: a refused client
// gets the gateway's JSON 403 and q.Status; a passing one gets nothing written.
func TestServeRequest(t *testing.T) {
	f, err := New([]string{"127.0.0.0/8"}, []string{"127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	chain := &filter.Chain{Request: []filter.RequestFilter{f}}
	tests := []struct {
		client string
		pass   bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"10.0.0.1", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/x", nil)
			q := &filter.Request{ClientIP: tt.client, RequestID: "req-1"}
			got := chain.ServeRequest(w, r, q)
			if got != tt.pass {
				t.Fatalf("ServeRequest = %v, want %v", got, tt.pass)
			}
			if tt.pass {
				if q.Status != 0 || w.Body.Len() != 0 || len(w.Header()) != 0 {
					t.Fatalf("a passing request was answered: status %d, body %q", q.Status, w.Body)
				}
				return
			}
			if q.Status != http.StatusForbidden || w.Code != http.StatusForbidden {
				t.Fatalf("q.Status %d, code %d; want 403", q.Status, w.Code)
			}
			var body struct {
				Error     string `json:"error"`
				Status    int    `json:"status"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if body.Status != 403 || body.RequestID != "req-1" || body.Error != "forbidden" {
				t.Fatalf("body = %+v", body)
			}
		})
	}
}

// TestAgainstLinearScan compares the merged-range search with netip.Prefix.Contains over
// every entry, on random lists and random addresses biased to land near range edges.
func TestAgainstLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		entries, prefixes := randomEntries(rng, 1+rng.IntN(60))
		f, err := New(entries, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2000; i++ {
			addr := randomNear(rng, prefixes)
			want := false
			for _, p := range prefixes {
				if p.Contains(addr) {
					want = true
					break
				}
			}
			if got := f.Allowed(addr.String()); got != want {
				t.Fatalf("round %d: Allowed(%s) = %v, linear scan says %v (entries %v)", round, addr, got, want, entries)
			}
		}
	}
}

// randomEntries makes n prefixes of both families, many of them overlapping.
func randomEntries(rng *rand.Rand, n int) ([]string, []netip.Prefix) {
	var entries []string
	var prefixes []netip.Prefix
	for i := 0; i < n; i++ {
		var p netip.Prefix
		if rng.IntN(2) == 0 {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			p = netip.PrefixFrom(a, 8+rng.IntN(25)).Masked()
		} else {
			var b [16]byte
			b[0], b[1], b[2] = 0x20, 0x01, byte(rng.IntN(4))
			b[15] = byte(rng.IntN(256))
			b[8] = byte(rng.IntN(256))
			p = netip.PrefixFrom(netip.AddrFrom16(b), 16+rng.IntN(113)).Masked()
		}
		entries = append(entries, p.String())
		prefixes = append(prefixes, p)
	}
	return entries, prefixes
}

// randomNear returns an address just inside or just outside a random prefix, or anywhere.
func randomNear(rng *rand.Rand, prefixes []netip.Prefix) netip.Addr {
	p := prefixes[rng.IntN(len(prefixes))]
	a := p.Addr()
	switch rng.IntN(4) {
	case 0:
		return a.Prev().Unmap()
	case 1:
		last := lastAddr(p)
		if n := last.Next(); n.IsValid() {
			return n
		}
		return last
	case 2:
		return lastAddr(p)
	}
	if a.Is4() {
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	}
	b := a.As16()
	b[15] = byte(rng.IntN(256))
	b[8] = byte(rng.IntN(256))
	return netip.AddrFrom16(b)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestServeRequestAllocs holds the filter to 0 allocations for a request it lets through,
// whatever form the address takes (a refusal allocates its JSON body in filter.WriteError).
func TestServeRequestAllocs(t *testing.T) {
	f, err := New([]string{"10.0.0.0/8", "fe80::/10", "2001:db8::/32"}, []string{"10.9.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	for _, ip := range []string{"10.3.200.1", "fe80::1%eth0", "::ffff:10.0.0.1", "2001:db8::1"} {
		q := &filter.Request{ClientIP: ip}
		n := testing.AllocsPerRun(100, func() {
			if !f.ServeRequest(w, r, q) {
				t.Fatalf("%s refused", ip)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocs per request, want 0", ip, n)
		}
	}
}

// benchEntries returns n distinct /24s (IPv4) and /48s (IPv6), half each.
func benchEntries(n int) []string {
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			out = append(out, fmt.Sprintf("10.%d.%d.0/24", (i/256)%256, i%256))
		} else {
			out = append(out, fmt.Sprintf("2001:db8:%x::/48", i))
		}
	}
	return out
}

func BenchmarkServeRequest(b *testing.B) {
	for _, n := range []int{10, 1000} {
		f, err := New(benchEntries(n), []string{"192.0.2.0/24"})
		if err != nil {
			b.Fatal(err)
		}
		for _, ip := range []string{"10.0.4.7", "2001:db8:3::1"} {
			b.Run(fmt.Sprintf("entries=%d/%s", n, ip), func(b *testing.B) {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
				q := &filter.Request{ClientIP: ip}
				b.ReportAllocs()
				for b.Loop() {
					if !f.ServeRequest(w, r, q) {
						b.Fatal("refused")
					}
				}
			})
		}
	}
}

// BenchmarkLinearScan is the alternative the sorted ranges were chosen over: parse, then
// netip.Prefix.Contains on every entry until one matches (the client here is the last).
func BenchmarkLinearScan(b *testing.B) {
	for _, n := range []int{10, 1000} {
		var prefixes []netip.Prefix
		for _, e := range benchEntries(n) {
			prefixes = append(prefixes, netip.MustParsePrefix(e))
		}
		ip := prefixes[len(prefixes)-2].Addr().Next().String()
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a, _ := netip.ParseAddr(ip)
				found := false
				for _, p := range prefixes {
					if p.Contains(a) {
						found = true
						break
					}
				}
				if !found {
					b.Fatal("not found")
				}
			}
		})
	}
}

// FuzzAllowed compares the filter with a plain reading of its definition on arbitrary
// client address text: netip parses it (zone and all), the zone is dropped, a mapped address
// is unmapped, deny wins, and only the allow list's clients pass.
func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"10.1.2.3", "10.9.0.1", "::ffff:10.1.2.3", "fe80::1%eth0", "fe80::1%", "1.2.3.4%x",
		"2001:db8::1", "2001:db8:9::", "::", "0.0.0.0", "010.1.2.3", "[::1]", "::ffff:10.9.0.1%z", " 10.1.2.3"} {
		f.Add(s)
	}
	allow := []string{"10.0.0.0/8", "fe80::/10", "2001:db8::/32"}
	deny := []string{"10.9.0.0/16", "2001:db8:9::/48"}
	ipFilter, err := New(allow, deny)
	if err != nil {
		f.Fatal(err)
	}
	contains := func(list []string, a netip.Addr) bool {
		for _, e := range list {
			if netip.MustParsePrefix(e).Contains(a) {
				return true
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, ip string) {
		want := false
		if a, err := netip.ParseAddr(ip); err == nil {
			a = a.WithZone("").Unmap()
			want = !contains(deny, a) && contains(allow, a)
		}
		if got := ipFilter.Allowed(ip); got != want {
			t.Fatalf("Allowed(%q) = %v, the definition says %v", ip, got, want)
		}
	})
}
