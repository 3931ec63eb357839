package consul

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// registerConcurrency is how many registrations the scale rig sends to the agent at once.
const registerConcurrency = 16

// timedRecorder records a Watch's snapshots with the time each arrived, so a test can tell
// how long a change took to reach the update callback.
type timedRecorder struct {
	mu    sync.Mutex
	snaps []upstream.Snapshot
	at    []time.Time
	wake  chan struct{}
}

func (r *timedRecorder) update(s upstream.Snapshot) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
	r.at = append(r.at, now)
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

// count is how many snapshots arrived so far.
func (r *timedRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

// waitFor waits for the first snapshot numbered from `from` that satisfies ok and returns its
// number and arrival time.
func (r *timedRecorder) waitFor(t testing.TB, from int, what string, ok func(upstream.Snapshot) bool) (int, time.Time) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for i := from; ; {
		r.mu.Lock()
		for ; i < len(r.snaps); i++ {
			if ok(r.snaps[i]) {
				at := r.at[i]
				r.mu.Unlock()
				return i, at
			}
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			r.mu.Lock()
			var last []string
			if len(r.snaps) > 0 {
				last = testkit.Keys(r.snaps[len(r.snaps)-1])
			}
			r.mu.Unlock()
			t.Fatalf("no snapshot with %s after %v; last: %v", what, waitLimit, last)
		}
	}
}

// scaleRig is a real agent with n services of one passing instance each, all watched by one
// Discoverer through a counting proxy.
type scaleRig struct {
	agent   *consultest.Agent
	admin   *api.Client
	proxy   *countingProxy
	names   []string
	recs    []*timedRecorder
	startup time.Duration // from the first Watch to every Watch's first snapshot
}

// baseKey is service i's first instance.
func baseKey(i int) string { return fmt.Sprintf("10.%d.%d.1:80", 1+i/250, i%250) }

func newScaleRig(t testing.TB, n int, opts Options) *scaleRig {
	t.Helper()
	r := &scaleRig{agent: consultest.Start(t)}
	r.admin = r.agent.Client(t)
	r.names = make([]string, n)
	regs := make([]*api.AgentServiceRegistration, n)
	for i := range n {
		r.names[i] = fmt.Sprintf("svc%04d", i)
		regs[i] = &api.AgentServiceRegistration{ID: r.names[i] + "-0", Name: r.names[i],
			Address: fmt.Sprintf("10.%d.%d.1", 1+i/250, i%250), Port: 80,
			Check: &api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing}}
	}
	registerAll(t, r.admin, regs)

	r.proxy = newCountingProxy(t, r.agent)
	d := New(newClient(t, r.proxy.Listener.Addr().String()), opts)
	r.recs = make([]*timedRecorder, n)
	start := time.Now()
	for i, name := range r.names {
		r.recs[i] = &timedRecorder{}
		startWatch(t, d, upstream.Target{Service: name}, r.recs[i].update)
	}
	for i, rec := range r.recs {
		rec.waitFor(t, 0, baseKey(i), testkit.HasKeys(baseKey(i)))
	}
	r.startup = time.Since(start)
	return r
}

// registerAll registers regs through the agent API, registerConcurrency at a time.
func registerAll(t testing.TB, admin *api.Client, regs []*api.AgentServiceRegistration) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	next := make(chan *api.AgentServiceRegistration)
	for range registerConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reg := range next {
				if err := admin.Agent().ServiceRegister(reg); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("register %s: %w", reg.ID, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, reg := range regs {
		next <- reg
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d registrations failed, first: %v", len(errs), errs[0])
	}
}

// catalogRegistration is a passing instance of service at key (host:80) on a node of its own.
// Changes are made through the catalog API: the agent API's register call alone takes
// 40-450 ms on an agent holding 1,000 local services (its local state and anti-entropy,
// not the discoverer), which would swamp what is measured here. The node is not the
// agent's, so anti-entropy leaves these entries alone.
func catalogRegistration(service, id, key string) *api.CatalogRegistration {
	host := key[:len(key)-len(":80")]
	return &api.CatalogRegistration{
		Node: "node-" + id, Address: host, SkipNodeUpdate: false,
		Service: &api.AgentService{ID: id, Service: service, Address: host, Port: 80},
		Check:   &api.AgentCheck{CheckID: "check-" + id, Name: "check", ServiceID: id, Status: api.HealthPassing},
	}
}

// oneAtATime registers a new passing instance on each of samples services in turn and
// returns how long each took to reach its Watch.
func (r *scaleRig) oneAtATime(t testing.TB, samples, round int) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, 0, samples)
	for k := range samples {
		i := k * len(r.names) / samples
		from := r.recs[i].count()
		key := fmt.Sprintf("10.%d.%d.%d:80", 200+round%50, k%250, 1+k/250)
		reg := catalogRegistration(r.names[i], fmt.Sprintf("%s-one%d", r.names[i], round), key)
		start := time.Now()
		if _, err := r.admin.Catalog().Register(reg, nil); err != nil {
			t.Fatal(err)
		}
		_, at := r.recs[i].waitFor(t, from, key, func(s upstream.Snapshot) bool { return slices.Contains(testkit.Keys(s), key) })
		lat = append(lat, at.Sub(start))
		// Spaced like BenchmarkPropagation, so each change is measured on its own.
		time.Sleep(DefaultMinInterval)
	}
	return lat
}

// atOnce registers a new passing instance on each of count services at the same moment and
// returns how long each took to reach its Watch, measured from the first registration, and
// how long the registrations themselves took (the last answered).
func (r *scaleRig) atOnce(t testing.TB, count, round int) (lat []time.Duration, registered time.Duration) {
	t.Helper()
	services := make([]int, count)
	regs := make([]*api.CatalogRegistration, count)
	froms := make([]int, count)
	keys := make([]string, count)
	for k := range count {
		i := (k*len(r.names)/count + len(r.names)/(2*count)) % len(r.names) // other services than oneAtATime's
		services[k], froms[k] = i, r.recs[i].count()
		keys[k] = fmt.Sprintf("10.%d.%d.%d:80", 150+round%50, k%250, 1+k/250)
		regs[k] = catalogRegistration(r.names[i], fmt.Sprintf("%s-burst%d", r.names[i], round), keys[k])
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, count)
	for k, reg := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[k] = r.admin.Catalog().Register(reg, nil)
		}()
	}
	wg.Wait()
	registered = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	lat = make([]time.Duration, count)
	for k, i := range services {
		key := keys[k]
		_, at := r.recs[i].waitFor(t, froms[k], key, func(s upstream.Snapshot) bool { return slices.Contains(testkit.Keys(s), key) })
		lat[k] = at.Sub(start)
	}
	return lat, registered
}

// percentile returns the p-th quantile (0..1) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func summary(lat []time.Duration) string {
	s := slices.Clone(lat)
	slices.Sort(s)
	return fmt.Sprintf("min %v p50 %v p99 %v max %v", s[0].Round(10*time.Microsecond), percentile(s, 0.5).Round(10*time.Microsecond),
		percentile(s, 0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// TestScale watches 1,000 services from one Discoverer against a real agent: the
// connections the agent sees stay at the feed's 3 blocking queries plus its readers, and
// every kind of change still reaches the right Watch. Propagation figures are logged (the
// assertions are about what arrives, not how fast; BenchmarkScale reports the figures).
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 1,000 services")
	}
	const services = 1000
	opts := Options{Readers: DefaultReaders, Logger: testLogger(&testkit.SyncBuffer{})}
	r := newScaleRig(t, services, opts)
	t.Logf("%d services: every first snapshot %v after the first Watch", services, r.startup.Round(time.Millisecond))

	one := r.oneAtATime(t, 50, 0)
	t.Logf("one change at a time, 50 samples: %s", summary(one))
	burst, registered := r.atOnce(t, 50, 0)
	t.Logf("50 services changing at once: %s (the 50 registrations took %v)", summary(burst), registered.Round(10*time.Microsecond))

	i := 7 // a service neither of the above touched
	rec, name, agent := r.recs[i], r.names[i], r.admin.Agent()
	steps := []struct {
		what   string
		change func() error
		want   []string
	}{
		// An instance without checks moves only the services index: the sweep finds it.
		{"instance without checks (sweep)", func() error {
			return agent.ServiceRegister(&api.AgentServiceRegistration{ID: name + "-nocheck", Name: name, Address: "10.250.0.1", Port: 80})
		}, []string{baseKey(i), "10.250.0.1:80"}},
		// A new port on an existing instance, no check change: also the sweep.
		{"port change (sweep)", func() error {
			return agent.ServiceRegister(&api.AgentServiceRegistration{ID: name + "-nocheck", Name: name, Address: "10.250.0.1", Port: 81})
		}, []string{baseKey(i), "10.250.0.1:81"}},
		// A check turning critical takes its instance out; passing again brings it back.
		{"check critical", func() error { return agent.UpdateTTL("service:"+name+"-0", "down", api.HealthCritical) },
			[]string{"10.250.0.1:81"}},
		{"check passing", func() error { return agent.UpdateTTL("service:"+name+"-0", "up", api.HealthPassing) },
			[]string{baseKey(i), "10.250.0.1:81"}},
		// Deregistration removes an instance (this one has no check: the sweep again).
		{"deregistration (sweep)", func() error { return agent.ServiceDeregister(name + "-nocheck") }, []string{baseKey(i)}},
	}
	n := rec.count() - 1
	for _, step := range steps {
		start := time.Now()
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		call := time.Since(start)
		var at time.Time
		n, at = rec.waitFor(t, n+1, step.what, testkit.HasKeys(step.want...))
		t.Logf("%s: seen after %v (the agent API call took %v)", step.what, at.Sub(start).Round(10*time.Microsecond),
			call.Round(10*time.Microsecond))
	}

	// Whatever the number of services: 3 blocking queries and the readers, plus one for a
	// connection a cancelled or timed-out call left to be replaced.
	limit := int64(3 + opts.Readers + 1)
	if got := r.proxy.maxOpen.Load(); got > limit {
		t.Errorf("%d connections open at once to watch %d services, want at most %d", got, services, limit)
	}
	t.Logf("connections: at most %d open at once, %d opened in all; %d service reads, %d requests",
		r.proxy.maxOpen.Load(), r.proxy.conns.Load(), r.proxy.health.Load(), r.proxy.requests.Load())
	// Others' changes (and the sweeps) must not have touched this service's Watch: one
	// first snapshot and one per step.
	if c := rec.count(); c != 1+len(steps) {
		t.Errorf("%d snapshots for %s, want %d", c, name, 1+len(steps))
	}
}

// BenchmarkScale reports, for a number of services watched by one Discoverer, the time until
// every Watch has its first snapshot, propagation of one change at a time and of 50 at once
// (p50/p99 in ms), and the connections the agent sees. One iteration is one round of 50
// changes of each kind; -benchtime=1x is enough for a figure, more gives more samples.
func BenchmarkScale(b *testing.B) {
	for _, services := range []int{1000, 2000} {
		b.Run(fmt.Sprint(services), func(b *testing.B) {
			r := newScaleRig(b, services, Options{})
			var one, burst []time.Duration
			var registered time.Duration
			b.ResetTimer()
			for i := range b.N {
				one = append(one, r.oneAtATime(b, 50, i)...)
				lat, took := r.atOnce(b, 50, i)
				burst, registered = append(burst, lat...), max(registered, took)
			}
			b.StopTimer()
			slices.Sort(one)
			slices.Sort(burst)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(r.startup), "startup-ms")
			b.ReportMetric(ms(percentile(one, 0.5)), "one-p50-ms")
			b.ReportMetric(ms(percentile(one, 0.99)), "one-p99-ms")
			b.ReportMetric(ms(percentile(burst, 0.5)), "burst50-p50-ms")
			b.ReportMetric(ms(percentile(burst, 0.99)), "burst50-p99-ms")
			b.ReportMetric(ms(registered), "burst50-register-ms")
			b.ReportMetric(float64(r.proxy.maxOpen.Load()), "max-conns")
		})
	}
}
