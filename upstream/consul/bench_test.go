package consul

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// BenchmarkPropagation measures the time from a registry change (the API call that makes it)
// to the matching snapshot applied to an upstream.Pool, for the three changes that matter:
// an instance registered, deregistered, and its check failing (then passing again). Each
// iteration is one change; run with -benchtime=100x or more for a meaningful p99. Changes are
// spaced by MinInterval so each is measured on its own rather than coalesced with the last.
func BenchmarkPropagation(b *testing.B) {
	agent := consultest.Start(b)
	admin := agent.Client(b)
	cases := []struct {
		name string
		// change makes the i-th change and returns the key set it should lead to.
		change func(b *testing.B, i int) []string
	}{
		{name: "register-deregister", change: func(b *testing.B, i int) []string {
			if i%2 == 0 {
				register(b, admin, &api.AgentServiceRegistration{ID: "reg-x", Name: "reg", Address: "10.0.0.2", Port: 80}, "")
				return []string{"10.0.0.1:80", "10.0.0.2:80"}
			}
			var se api.StatusError
			if err := admin.Agent().ServiceDeregister("reg-x"); err != nil && !(errors.As(err, &se) && se.Code == 404) {
				b.Fatal(err)
			}
			return []string{"10.0.0.1:80"}
		}},
		{name: "check-fail-pass", change: func(b *testing.B, i int) []string {
			status, want := api.HealthCritical, []string{"10.0.0.1:80"}
			if i%2 == 1 {
				status, want = api.HealthPassing, []string{"10.0.0.1:80", "10.0.0.2:80"}
			}
			if err := admin.Agent().UpdateTTL("service:check-x", "", status); err != nil {
				b.Fatal(err)
			}
			return want
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			service := map[string]string{"register-deregister": "reg", "check-fail-pass": "check"}[c.name]
			register(b, admin, &api.AgentServiceRegistration{ID: service + "-1", Name: service, Address: "10.0.0.1", Port: 80}, "")
			// The framework runs this body several times with growing b.N: start each run
			// from the same state.
			var se api.StatusError
			if err := admin.Agent().ServiceDeregister("reg-x"); err != nil && !(errors.As(err, &se) && se.Code == 404) {
				b.Fatal(err)
			}
			want := []string{"10.0.0.1:80"}
			if service == "check" {
				register(b, admin, &api.AgentServiceRegistration{ID: "check-x", Name: service, Address: "10.0.0.2", Port: 80}, "")
				// Re-registering keeps a check's status, so pass it explicitly.
				if err := admin.Agent().UpdateTTL("service:check-x", "", api.HealthPassing); err != nil {
					b.Fatal(err)
				}
				want = append(want, "10.0.0.2:80")
			}
			pool := upstream.NewPool(service, firstPicker{}, upstream.PoolOptions{})
			applied := make(chan []string, 16)
			d := New(newClient(b, agent.Addr), Options{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = d.Watch(ctx, upstream.Target{Service: service}, func(s upstream.Snapshot) {
					pool.Update(s)
					select {
					case applied <- testkit.Keys(pool.View().Snapshot):
					case <-ctx.Done():
					}
				})
			}()
			defer func() { cancel(); <-done }()
			waitKeys(b, applied, want)

			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				want := c.change(b, i)
				waitKeys(b, applied, want)
				lat = append(lat, time.Since(start))
				b.StopTimer()
				time.Sleep(DefaultMinInterval)
				b.StartTimer()
			}
			b.StopTimer()
			reportPercentiles(b, lat)
		})
	}
}

// waitKeys waits until the pool applied a snapshot with exactly want.
func waitKeys(b *testing.B, applied <-chan []string, want []string) {
	b.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		select {
		case got := <-applied:
			if slices.Equal(got, want) {
				return
			}
		case <-timeout.C:
			b.Fatalf("pool never reached %v", want)
		}
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.90), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkIdleLoad reports the service reads per second per watched service that reach
// Consul while nothing changes, for 50 services and a 2 s WaitTime (short so a run takes
// seconds; the rate scales as 1/WaitTime, so the default 5 m costs 150 times less). Each
// iteration idles WaitTime/10: run with -benchtime=30x or more for a window of several waits.
func BenchmarkIdleLoad(b *testing.B) {
	const services, wait = 50, 2 * time.Second
	agent := consultest.Start(b)
	proxy := startIdleWatches(b, agent, services, wait)
	b.ResetTimer()
	before := proxy.health.Load()
	start := time.Now()
	for range b.N {
		time.Sleep(wait / 10)
	}
	rate := float64(proxy.health.Load()-before) / time.Since(start).Seconds() / services
	b.ReportMetric(rate, "queries/s/service")
	b.ReportMetric(rate*wait.Seconds()/DefaultWaitTime.Seconds(), "queries/s/service@5m")
}
