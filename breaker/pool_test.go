package breaker

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// backend is a loopback HTTP server answering with a status the test can change.
type backend struct {
	srv    *httptest.Server
	status atomic.Int32
	hits   atomic.Int64
}

func newBackend(t *testing.T, status int) *backend {
	t.Helper()
	b := &backend{}
	b.status.Store(int32(status))
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.hits.Add(1)
		w.WriteHeader(int(b.status.Load()))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) endpoint() upstream.Endpoint {
	u, _ := url.Parse(b.srv.URL)
	return upstream.Endpoint{Key: u.Host, Scheme: "http"}
}

// send proxies one request the way the proxy does: pick, send, report the outcome.
func send(t *testing.T, pool *upstream.Pool, client *http.Client) (string, error) {
	t.Helper()
	m, err := pool.Pick(nil, upstream.Excluded{})
	if err != nil {
		return "", err
	}
	start := time.Now()
	resp, err := client.Get(m.Scheme + "://" + m.Key + "/")
	o := upstream.Outcome{Latency: time.Since(start)}
	if err != nil {
		o.Err = upstream.ErrConnect
	} else {
		o.Status = resp.StatusCode
		_ = resp.Body.Close()
	}
	m.State.Done(o)
	return m.Key, nil
}

func TestPoolEjectsBadBackendAndStateSurvivesUpdates(t *testing.T) {
	good, bad := newBackend(t, 200), newBackend(t, 503)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	hp := NewPolicy("users", &config.PassiveHealth{
		ConsecutiveFailures: 3, EjectionTime: time.Hour, MaxEjectionTime: time.Hour,
		MaxEjectedPercent: 50, PanicThreshold: 50,
	}, &config.Breaker{FailureRatio: 0.5, MinRequests: 100, Interval: time.Minute, OpenTimeout: time.Minute, HalfOpenRequests: 1}, m, nil)
	pool := upstream.NewPool("users", rrBuilder{}, upstream.PoolOptions{Health: hp})
	snap := upstream.NewSnapshot([]upstream.Endpoint{good.endpoint(), bad.endpoint()})
	pool.Update(snap)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	for range 10 {
		if _, err := send(t, pool, client); err != nil {
			t.Fatal(err)
		}
	}
	if got := bad.hits.Load(); got != 3 {
		t.Fatalf("bad backend got %d requests, want exactly 3 before ejection", got)
	}
	if got := testutil.ToFloat64(m.ejections.WithLabelValues("users")); got != 1 {
		t.Fatalf("ejections = %v, want 1", got)
	}

	// The registry re-announces the same set, then drops and re-adds the bad endpoint:
	// its ejection must survive both.
	pool.Update(snap)
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{good.endpoint()}))
	pool.Update(snap)
	for range 10 {
		key, err := send(t, pool, client)
		if err != nil {
			t.Fatal(err)
		}
		if key == bad.endpoint().Key {
			t.Fatal("ejected endpoint picked after a pool update")
		}
	}
	var st Status
	for _, mb := range pool.View().Members {
		if mb.Key == bad.endpoint().Key {
			st, _ = StatusOf(mb.State.Health())
		}
	}
	if st.State != StateEjected || st.TimesEjected != 1 || st.EjectedUntil == nil {
		t.Fatalf("bad endpoint status after updates = %+v", st)
	}

	// Now the other fails too: max_ejected_percent (50%, counted after) refuses a second
	// ejection, so the pool keeps serving instead of failing closed.
	good.status.Store(503)
	for range 10 {
		if _, err := send(t, pool, client); errors.Is(err, upstream.ErrNoEndpoint) {
			t.Fatal("pool failed closed with every endpoint failing")
		}
	}
}

func TestPoolRefusingEndpointSetAside(t *testing.T) {
	good := newBackend(t, 200)
	dead := newBackend(t, 200)
	deadEP := dead.endpoint()
	dead.srv.Close() // connection refused from now on
	hp := NewPolicy("r", &config.PassiveHealth{ConsecutiveFailures: 2, EjectionTime: time.Hour, MaxEjectedPercent: 50}, nil, nil, nil)
	pool := upstream.NewPool("r", rrBuilder{}, upstream.PoolOptions{Health: hp})
	pool.Update(upstream.NewSnapshot([]upstream.Endpoint{good.endpoint(), deadEP}))
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for range 8 {
		if _, err := send(t, pool, client); err != nil {
			t.Fatal(err)
		}
	}
	// The dead one takes one request: its refused dial sets it aside at once (refusing.go).
	if got := good.hits.Load(); got != 7 {
		t.Fatalf("good backend got %d of 8 requests, want 7 (the dead one took 1, then was set aside)", got)
	}
}
