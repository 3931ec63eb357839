package ratelimit

import (
	"fmt"
	"hash/maphash"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/config"
)

// newAt builds a limiter whose clock is *now, moved only by the test.
func newAt(t testing.TB, cfg config.RateLimit, m *Metrics, now *time.Time) *Limiter {
	t.Helper()
	l, err := New("r", &cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return *now }
	return l
}

func req(header, value string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if header != "" {
		r.Header.Set(header, value)
	}
	return r
}

func TestAdmitsRateTimesTimePlusBurst(t *testing.T) {
	// Steps are chosen so rps x step is exact in binary floating point.
	tests := []struct {
		rps   float64
		burst int
		step  time.Duration
		span  time.Duration
		want  int
	}{
		{4, 3, 62500 * time.Microsecond, 4 * time.Second, 3 + 16},
		{1, 1, 250 * time.Millisecond, 10 * time.Second, 1 + 10},
		{0.5, 2, 500 * time.Millisecond, 8 * time.Second, 2 + 4},
		{8, 0, 125 * time.Millisecond, 2 * time.Second, 8 + 16}, // burst defaults to ceil(rps)
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("rps=%v burst=%d", tc.rps, tc.burst), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			now := time.Unix(1_700_000_000, 0)
			l := newAt(t, config.RateLimit{RPS: tc.rps, Burst: tc.burst}, m, &now)
			allowed, total := 0, 0
			for el := time.Duration(0); el <= tc.span; el += tc.step {
				now = time.Unix(1_700_000_000, 0).Add(el)
				// Several requests per step: more than the bucket can hold.
				for range 3 {
					total++
					if l.Allow(req("", ""), "10.0.0.1").Allowed {
						allowed++
					}
				}
			}
			if allowed != tc.want {
				t.Fatalf("allowed %d of %d, want %d", allowed, total, tc.want)
			}
			if got := testutil.ToFloat64(m.limited.WithLabelValues("r")); int(got) != total-allowed {
				t.Fatalf("limited metric = %v, want %d", got, total-allowed)
			}
		})
	}
}

func TestDecisionNumbers(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newAt(t, config.RateLimit{RPS: 2, Burst: 4}, nil, &now)
	want := []Decision{
		{Allowed: true, Limit: 4, Remaining: 3, Reset: 500 * time.Millisecond},
		{Allowed: true, Limit: 4, Remaining: 2, Reset: time.Second},
		{Allowed: true, Limit: 4, Remaining: 1, Reset: 1500 * time.Millisecond},
		{Allowed: true, Limit: 4, Remaining: 0, Reset: 2 * time.Second},
		{Allowed: false, Limit: 4, Remaining: 0, Reset: 2 * time.Second, RetryAfter: 500 * time.Millisecond},
	}
	for i, w := range want {
		if got := l.Allow(nil, ""); got != w {
			t.Fatalf("request %d: %+v, want %+v", i+1, got, w)
		}
	}
}

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want map[string]string // "" = header absent
	}{
		{"allowed", Decision{Allowed: true, Limit: 100, Remaining: 99, Reset: 10 * time.Millisecond},
			map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "1", "Retry-After": ""}},
		{"full bucket", Decision{Allowed: true, Limit: 5, Remaining: 5},
			map[string]string{"RateLimit-Reset": "0", "Retry-After": ""}},
		{"denied rounds up", Decision{Limit: 10, Reset: 2500 * time.Millisecond, RetryAfter: 1001 * time.Millisecond},
			map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "3", "Retry-After": "2"}},
		{"denied never says 0", Decision{Limit: 10, RetryAfter: 0},
			map[string]string{"Retry-After": "1"}},
		{"no limit writes nothing", Decision{Allowed: true},
			map[string]string{"RateLimit-Limit": "", "RateLimit-Remaining": "", "RateLimit-Reset": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			tc.d.SetHeaders(h)
			for k, v := range tc.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestKeyKinds(t *testing.T) {
	type call struct {
		ip, header string
		allowed    bool
	}
	tests := []struct {
		key   string
		calls []call
	}{
		{"route", []call{{"1.1.1.1", "", true}, {"2.2.2.2", "", false}}},
		{"", []call{{"1.1.1.1", "", true}, {"2.2.2.2", "", false}}},
		{"client_ip", []call{{"1.1.1.1", "", true}, {"2.2.2.2", "", true}, {"1.1.1.1", "", false}, {"2.2.2.2", "", false}}},
		{"header:X-Api-Key", []call{
			{"1.1.1.1", "a", true}, {"2.2.2.2", "a", false}, // same key, different IPs: one bucket
			{"1.1.1.1", "b", true},
			{"1.1.1.1", "", true}, {"2.2.2.2", "", false}, // missing header: one shared bucket
		}},
		{"header:x-api-key", []call{{"1.1.1.1", "a", true}, {"1.1.1.1", "a", false}}}, // name is case-insensitive
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			l := newAt(t, config.RateLimit{RPS: 1, Burst: 1, Key: tc.key}, nil, &now)
			for i, c := range tc.calls {
				if got := l.Allow(req("X-Api-Key", c.header), c.ip).Allowed; got != c.allowed {
					t.Fatalf("call %d (%+v): allowed = %v", i+1, c, got)
				}
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	bad := []config.RateLimit{
		{RPS: 0},
		{RPS: -1},
		{RPS: 1, Burst: -1},
		{RPS: 1, Key: "cookie:x"},
		{RPS: 1, Key: "header:"},
		{RPS: 1, Key: "header:a b"},
		{RPS: 1, Key: "client_ip", MaxKeys: -1},
		{RPS: 1, IdleTTL: -time.Second},
	}
	for _, cfg := range bad {
		if _, err := New("r", &cfg, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	l, err := New("r", nil, nil)
	if l != nil || err != nil {
		t.Fatalf("New(nil) = %v, %v; want no limiter", l, err)
	}
	if d := l.Allow(nil, "1.1.1.1"); !d.Allowed {
		t.Fatal("a nil limiter refused a request")
	}
}

func TestManyKeysStayBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newAt(t, config.RateLimit{RPS: 1, Burst: 1, Key: "client_ip", MaxKeys: 1000}, nil, &now)
	for i := range 100_000 {
		now = now.Add(time.Microsecond)
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		if !l.Allow(nil, ip).Allowed {
			t.Fatalf("new client %s refused", ip)
		}
	}
	if n := l.Len(); n > 1000 || n < 900 {
		t.Fatalf("%d buckets after 100,000 clients with max_keys 1000", n)
	}
}

func TestIdleEviction(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newAt(t, config.RateLimit{RPS: 1, Burst: 1, Key: "client_ip", MaxKeys: 10_000, IdleTTL: time.Minute}, nil, &now)
	old := make([]string, 100)
	for i := range old {
		old[i] = fmt.Sprintf("192.0.2.%d", i)
		l.Allow(nil, old[i])
	}
	present := func() int {
		n := 0
		for _, k := range old {
			h := maphash.String(l.seed, k)
			s := &l.shards[h&l.mask]
			s.mu.Lock()
			if s.lru.Contains(h) {
				n++
			}
			s.mu.Unlock()
		}
		return n
	}
	fresh := 0
	touch := func(n int) {
		for range n {
			fresh++
			l.Allow(nil, fmt.Sprintf("198.51.100.%d", fresh))
		}
	}
	now = now.Add(59 * time.Second)
	touch(500)
	if got := present(); got != len(old) {
		t.Fatalf("%d of %d buckets left before the idle TTL passed", got, len(old))
	}
	now = now.Add(2 * time.Second)
	for present() > 0 && fresh < 10_000 {
		touch(1)
	}
	if got := present(); got != 0 {
		t.Fatalf("%d idle buckets still held after %d requests", got, fresh-500)
	}
	if got := l.Len(); got != fresh {
		t.Fatalf("Len = %d, want only the %d fresh keys", got, fresh)
	}
}

func TestDecisionHeadersAndDisabled(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newAt(t, config.RateLimit{RPS: 1, Burst: 1}, nil, &now)
	allow := func(h http.Header) bool {
		d := l.Allow(req("", ""), "1.1.1.1")
		d.SetHeaders(h)
		return d.Allowed
	}
	h := http.Header{}
	if !allow(h) || h.Get("RateLimit-Limit") != "1" || h.Get("Retry-After") != "" {
		t.Fatalf("first request: headers %v", h)
	}
	h = http.Header{}
	if allow(h) || h.Get("Retry-After") != "1" {
		t.Fatalf("second request allowed or headers %v", h)
	}
	off := false
	d, err := New("r", &config.RateLimit{Enabled: &off, RPS: 1}, nil)
	if d != nil || err != nil {
		t.Fatalf("disabled block: %v, %v", d, err)
	}
}
