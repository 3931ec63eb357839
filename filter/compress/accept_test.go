package compress

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		header []string // nil: no Accept-Encoding at all
		want   encoding
	}{
		{nil, identity},
		{[]string{""}, identity},
		{[]string{"gzip"}, encodingGzip},
		{[]string{"GZIP"}, encodingGzip},
		{[]string{"x-gzip"}, encodingGzip},
		{[]string{"zstd"}, encodingZstd},
		{[]string{"gzip, deflate, br, zstd"}, encodingZstd}, // equal q: zstd first
		{[]string{"gzip, zstd;q=0.9"}, encodingGzip},
		{[]string{"gzip;q=0.5, zstd;q=0.501"}, encodingZstd},
		{[]string{"zstd;q=0, gzip"}, encodingGzip},
		{[]string{"gzip;q=0"}, identity},
		{[]string{"gzip;q=0.000"}, identity},
		{[]string{"gzip;q=0.001"}, encodingGzip},
		{[]string{"*"}, encodingZstd},
		{[]string{"*;q=0.5, gzip"}, encodingGzip},
		{[]string{"*, zstd;q=0"}, encodingGzip},
		{[]string{"*;q=0"}, identity},
		{[]string{"*;q=0, gzip;q=0.2"}, encodingGzip},
		{[]string{"br, deflate"}, identity},
		{[]string{"identity"}, identity},
		{[]string{"gzip;q=0.5, identity"}, identity}, // identity explicitly preferred
		{[]string{"gzip, identity;q=0.5"}, encodingGzip},
		{[]string{"gzip;q=0.5, identity;q=0.5"}, encodingGzip},
		{[]string{"gzip", "zstd"}, encodingZstd}, // several header lines form one list
		{[]string{" \tgzip \t; \tq=1 "}, encodingGzip},
		{[]string{"gzip;Q=0.7"}, encodingGzip},
		{[]string{",,gzip,,"}, encodingGzip},
		{[]string{"gzip;level=9"}, encodingGzip}, // unknown parameter ignored
		// Malformed q-values drop their element.
		{[]string{"gzip;q=2"}, identity},
		{[]string{"gzip;q=1.5"}, identity},
		{[]string{"gzip;q=0.1234"}, identity},
		{[]string{"gzip;q=.5"}, identity},
		{[]string{"gzip;q=-1"}, identity},
		{[]string{"gzip;q="}, identity},
		{[]string{"gzip;q=abc, zstd;q=0.1"}, encodingZstd},
		{[]string{"gzip;q =0.5"}, encodingGzip}, // "q " is not a weight: ignored like an unknown parameter
		{[]string{"gzipx, xgzip, gzip2"}, identity},
		{[]string{"gzip;q=0, gzip;q=0.8"}, encodingGzip}, // listed twice: the higher q
	}
	for _, tc := range cases {
		if got := negotiate(tc.header); got != tc.want {
			t.Errorf("negotiate(%q) = %d, want %d", tc.header, got, tc.want)
		}
	}
}

func TestNegotiateAllocs(t *testing.T) {
	header := []string{"gzip;q=0.8, deflate, br;q=1.0, zstd;q=0.9, *;q=0.1, identity;q=0.5"}
	if n := testing.AllocsPerRun(100, func() { negotiate(header) }); n != 0 {
		t.Fatalf("negotiate allocates %v times", n)
	}
}

func TestParseQValue(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"1", 1000, true}, {"0.", 0, true}, {"1.", 1000, true},
		{"0.5", 500, true}, {"0.05", 50, true}, {"0.005", 5, true}, {"0.999", 999, true},
		{"1.0", 1000, true}, {"1.000", 1000, true},
		{"", 0, false}, {"1.001", 0, false}, {"0.0000", 0, false}, {"2", 0, false},
		{"0,5", 0, false}, {"00", 0, false}, {" 0", 0, false}, {"0.5 ", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseQValue(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseQValue(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// qValuePattern is RFC 9110's qvalue grammar, for the reference parser.
var qValuePattern = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

// referenceNegotiate is a plain, allocating reading of the same rules, for the fuzzer to
// compare negotiate against.
func referenceNegotiate(values []string) encoding {
	listed := map[string]float64{}
	for _, v := range values {
		for _, element := range strings.Split(v, ",") {
			parts := strings.Split(element, ";")
			name := strings.ToLower(strings.Trim(parts[0], " \t"))
			if name == "" {
				continue
			}
			q, valid := 1.0, true
			for _, p := range parts[1:] {
				p = strings.Trim(p, " \t")
				if len(p) < 2 || !strings.EqualFold(p[:2], "q=") {
					continue
				}
				if !qValuePattern.MatchString(p[2:]) {
					valid = false
					break
				}
				q, _ = strconv.ParseFloat(strings.TrimSuffix(p[2:], "."), 64)
			}
			if !valid {
				continue
			}
			if name == "x-gzip" {
				name = "gzip"
			}
			if old, ok := listed[name]; !ok || q > old {
				listed[name] = q
			}
		}
	}
	weight := func(name string) float64 {
		if q, ok := listed[name]; ok {
			return q
		}
		return math.Max(listed["*"], 0) // absent "*": 0
	}
	zstdQ, gzipQ := weight("zstd"), weight("gzip")
	best, bestQ := identity, 0.0
	if zstdQ > 0 && zstdQ >= gzipQ {
		best, bestQ = encodingZstd, zstdQ
	} else if gzipQ > 0 {
		best, bestQ = encodingGzip, gzipQ
	}
	if q, ok := listed["identity"]; ok && q > bestQ {
		return identity
	}
	return best
}

// FuzzNegotiate checks negotiate against referenceNegotiate; a newline in the input splits
// it into several Accept-Encoding header lines. The seed corpus is in testdata/fuzz.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "zstd;q=0.5, gzip;q=0.4", "*;q=0\nidentity", "x-gzip;q=1.000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		values := strings.Split(s, "\n")
		got, want := negotiate(values), referenceNegotiate(values)
		if got != want {
			t.Fatalf("negotiate(%q) = %d, reference says %d", values, got, want)
		}
	})
}
