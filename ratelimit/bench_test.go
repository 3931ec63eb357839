package ratelimit

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/config"
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
