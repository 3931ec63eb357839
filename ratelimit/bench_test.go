package ratelimit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/redistest"
)

func benchLimiter(b *testing.B, key string) *Limiter {
	b.Helper()
	// A huge rate: the benchmark measures the allowed path, not the deny branch.
	l, err := New("r", &config.RateLimit{RPS: 1e9, Burst: 1e9, Key: key}, NewMetrics(nil))
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkAllow(b *testing.B) {
	ips := make([]string, 1024)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.0.%d.%d", i>>8, i&255)
	}
	for _, key := range []string{"route", "client_ip"} {
		b.Run(key, func(b *testing.B) {
			l := benchLimiter(b, key)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l.Allow(nil, ips[i&1023])
				i++
			}
		})
		b.Run(key+"/parallel", func(b *testing.B) {
			l := benchLimiter(b, key)
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(512)
				for pb.Next() {
					l.Allow(nil, ips[i&1023])
					i++
				}
			})
		})
	}
}

// BenchmarkAllowStore compares one decision on the local buckets with one on Redis over
// loopback (a real redis-server, internal/redistest): the cost of sharing a limit.
func BenchmarkAllowStore(b *testing.B) {
	srv := redistest.Start(b)
	cfg := config.RateLimit{RPS: 1e9, Burst: 1e9, Key: config.RateLimitKeyClientIP} // the allowed path, as BenchmarkAllow
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, store := range []string{config.RateLimitStoreLocal, config.RateLimitStoreRedis} {
		newLim := func(b *testing.B) *Limiter {
			c := cfg
			c.Store = store
			l, err := NewWithStore("r", &c, NewMetrics(nil), newRedisStore(b, srv.Addr, config.Redis{Timeout: time.Second}))
			if err != nil {
				b.Fatal(err)
			}
			return l
		}
		b.Run(store, func(b *testing.B) {
			l := newLim(b)
			b.ReportAllocs()
			for b.Loop() {
				if !l.Allow(r, "10.0.0.1").Allowed {
					b.Fatal("denied")
				}
			}
		})
		b.Run(store+"/parallel", func(b *testing.B) {
			l := newLim(b)
			b.ReportAllocs()
			b.SetParallelism(8) // requests in flight at once, as on a busy gateway
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.Allow(r, "10.0.0.1")
				}
			})
		})
	}
}
