package breaker

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

func benchHealth(b *testing.B, ph *config.PassiveHealth, br *config.Breaker) upstream.Health {
	b.Helper()
	p := NewPolicy("r", ph, br, nil, nil)
	h := p.NewHealth("a:80")
	p.SetMembers([]upstream.Health{h})
	return h
}

var (
	benchPH = &config.PassiveHealth{ConsecutiveFailures: 5, EjectionTime: 30 * time.Second, MaxEjectedPercent: 50, PanicThreshold: 50}
	benchBR = &config.Breaker{FailureRatio: 0.5, MinRequests: 20, Interval: 10 * time.Second, OpenTimeout: 30 * time.Second, HalfOpenRequests: 5}
)

// BenchmarkSuccessPath is the per-request cost of health accounting when all goes well:
// Available (the picker's filter), Admit and Report.
func BenchmarkSuccessPath(b *testing.B) {
	for _, bc := range []struct {
		name string
		ph   *config.PassiveHealth
		br   *config.Breaker
	}{
		{"outlier", benchPH, nil},
		{"breaker", nil, benchBR},
		{"outlier+breaker", benchPH, benchBR},
	} {
		o := upstream.Outcome{Status: 200, Latency: time.Millisecond}
		b.Run(bc.name, func(b *testing.B) {
			h := benchHealth(b, bc.ph, bc.br)
			b.ReportAllocs()
			for b.Loop() {
				if h.Available() && h.Admit() {
					h.Report(o)
				}
			}
		})
		// Every goroutine on the same endpoint: the worst case for gobreaker's mutex.
		b.Run(bc.name+"/parallel-one-endpoint", func(b *testing.B) {
			h := benchHealth(b, bc.ph, bc.br)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if h.Available() && h.Admit() {
						h.Report(o)
					}
				}
			})
		})
	}
}
