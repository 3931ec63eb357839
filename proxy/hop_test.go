package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCopyRequestHeaders(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		keep []string
		drop []string
		ok   bool
	}{
		{"hop-by-hop", http.Header{"Connection": {"keep-alive"}, "Keep-Alive": {"5"}, "Te": {"gzip"}, "Upgrade": {"h2c"},
			"Http2-Settings": {"AAMAAABk"}, "Proxy-Authorization": {"x"}, "Accept": {"*/*"}},
			[]string{"Accept"}, []string{"Connection", "Keep-Alive", "Te", "Upgrade", "Http2-Settings", "Proxy-Authorization"}, true},
		{"named in Connection", http.Header{"Connection": {"X-Secret, x-other", " close "}, "X-Secret": {"1"}, "X-Other": {"2"}, "X-Keep": {"3"}},
			[]string{"X-Keep"}, []string{"X-Secret", "X-Other"}, true},
		{"underscore aliases", http.Header{"X_forwarded_for": {"6.6.6.6"}, "X-Forwarded_for": {"6.6.6.6"}, "X_real_ip": {"6.6.6.6"},
			"Transfer_encoding": {"chunked"}, "Content_length": {"5"}, "My_header": {"ok"}},
			[]string{"My_header"}, []string{"X_forwarded_for", "X-Forwarded_for", "X_real_ip", "Transfer_encoding", "Content_length"}, true},
		{"too many options", http.Header{"Connection": {strings.Repeat("a,", maxConnectionTokens+1)}}, nil, nil, false},
		{"options at the cap", http.Header{"Connection": {strings.TrimSuffix(strings.Repeat("a,", maxConnectionTokens), ",")}, "A": {"x"}, "B": {"y"}},
			[]string{"B"}, []string{"A"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := copyRequestHeaders(tt.in)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			for _, k := range tt.keep {
				if _, has := out[k]; !has {
					t.Errorf("%s dropped", k)
				}
			}
			for _, k := range tt.drop {
				if _, has := out[k]; has {
					t.Errorf("%s forwarded", k)
				}
			}
		})
	}
}

func TestCopyResponseHeaders(t *testing.T) {
	dst := http.Header{"X-Request-Id": {"id"}}
	src := http.Header{"Connection": {"X-Backend-Conn"}, "X-Backend-Conn": {"1"}, "Alt-Svc": {`h3=":443"`},
		"Keep-Alive": {"timeout=5"}, "Content-Type": {"text/plain"}, "X-Request-Id": {"up"}}
	if !copyResponseHeaders(dst, src) {
		t.Fatal("refused")
	}
	for _, k := range []string{"Connection", "X-Backend-Conn", "Alt-Svc", "Keep-Alive"} {
		if _, ok := dst[k]; ok {
			t.Errorf("%s relayed", k)
		}
	}
	if got := dst["X-Request-Id"]; len(got) != 2 || dst.Get("Content-Type") != "text/plain" {
		t.Errorf("end-to-end fields: %v", dst)
	}
	if copyResponseHeaders(http.Header{}, http.Header{"Connection": {strings.Repeat("x,", 100)}}) {
		t.Error("100 Connection options accepted")
	}
}

func TestForbiddenTrailer(t *testing.T) {
	for _, k := range []string{"Host", "Authorization", "Content-Length", "Transfer-Encoding", "X-Forwarded-For",
		"X-Real-Ip", "If-Match", "Cookie", "X_forwarded_for", "Trailer", "Content-Type"} {
		if !forbiddenTrailer(k) {
			t.Errorf("%s allowed as a trailer", k)
		}
	}
	for _, k := range []string{"X-Checksum", "Grpc-Status", "Server-Timing"} {
		if forbiddenTrailer(k) {
			t.Errorf("%s refused as a trailer", k)
		}
	}
}

func TestUpgradeToken(t *testing.T) {
	tests := []struct {
		conn, up []string
		want     string
	}{
		{[]string{"Upgrade"}, []string{"websocket"}, "websocket"},
		{[]string{"keep-alive, upgrade"}, []string{" WebSocket "}, "WebSocket"},
		{[]string{"keep-alive"}, []string{"websocket"}, ""},
		{[]string{"Upgrade"}, []string{"h2c, websocket"}, ""},
		{[]string{"Upgrade"}, []string{"websocket", "foo"}, ""},
		{[]string{"Upgrade"}, nil, ""},
	}
	for _, tt := range tests {
		h := http.Header{"Connection": tt.conn}
		if tt.up != nil {
			h["Upgrade"] = tt.up
		}
		if got := upgradeToken(h); got != tt.want {
			t.Errorf("Connection %q Upgrade %q: %q, want %q", tt.conn, tt.up, got, tt.want)
		}
	}
}

// hugeHeaders builds a header block of about size bytes: n fields, and a Connection header
// of tokens tokens that name none of them.
func hugeHeaders(n, tokens int) http.Header {
	h := make(http.Header, n+1)
	for i := range n {
		h[fmt.Sprintf("X-Field-%d", i)] = []string{"v"}
	}
	var b strings.Builder
	for i := range tokens {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "x-opt-%d", i)
	}
	h["Connection"] = []string{b.String()}
	return h
}

// TestHeaderCostIsLinear is the regression test for the quadratic Connection handling of
// issue #11: 4,000 fields with 40,000 Connection tokens (123 KB) took 5.9 s of CPU before.
// A 1 MiB header block must now be handled in milliseconds through the whole handler; the
// bound is generous for the race detector on a loaded machine, and still 100x below what
// the old code took for a tenth of the input.
func TestHeaderCostIsLinear(t *testing.T) {
	// The upstream answers in memory: the cost measured is the gateway's alone.
	rt := routeSpec{prefix: "/", backends: []string{"127.0.0.1:1"}}.build(t)
	h := New(Options{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})})
	h.SetTable(NewTable([]*Route{rt}, nil))
	for _, tc := range []struct {
		name           string
		fields, tokens int
		want           int
	}{
		{"many tokens", 4000, 80000, http.StatusBadRequest},
		{"many fields", 60000, maxConnectionTokens, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/x", nil)
			req.Header = hugeHeaders(tc.fields, tc.tokens)
			start := time.Now()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("%d fields, %d tokens: %v", tc.fields, tc.tokens, d)
			}
			if w.Code != tc.want {
				t.Errorf("status %d, want %d", w.Code, tc.want)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// BenchmarkCopyRequestHeaders shows cost growing linearly with the header block, whatever
// the Connection header names.
func BenchmarkCopyRequestHeaders(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		h := hugeHeaders(n, min(n, maxConnectionTokens))
		b.Run(fmt.Sprintf("fields=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				copyRequestHeaders(h)
			}
		})
	}
}
