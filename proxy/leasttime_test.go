package proxy

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
)

// TestLeastTimeThroughProxy: the latency least_time weighs comes from where the proxy ends
// each attempt (EndpointState.Done with the time to response headers). Through the handler,
// with one backend 25 ms slower than two others and eight clients, least_time sends the
// slow one far less than round robin's third.
func TestLeastTimeThroughProxy(t *testing.T) {
	fast := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }
	var slowHits atomic.Int64
	slowKey := backend(t, func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		select {
		case <-time.After(25 * time.Millisecond):
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "ok")
	})
	keys := []string{slowKey, backend(t, fast), backend(t, fast)}
	for _, tc := range []struct {
		policy             string
		minShare, maxShare float64
	}{
		{config.LBLeastTime, 0, 0.10},
		{config.LBRoundRobin, 0.33, 0.34},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			builder, err := lb.New(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			pool := upstream.NewPool("svc", builder, upstream.PoolOptions{})
			eps := make([]upstream.Endpoint, len(keys))
			for i, k := range keys {
				eps[i] = upstream.Endpoint{Key: k}
			}
			pool.Update(upstream.NewSnapshot(eps))
			retries := 0
			rc := &config.Route{Prefix: "/"}
			rc.Timeout = 5 * time.Second
			rc.Retries = &retries
			rc.Upgrades = []string{"websocket"}
			srv, _ := startGateway(t, nil, NewRoute(rc, RouteOptions{Pool: pool}))
			slowHits.Store(0)

			const total = 600
			var budget atomic.Int64
			budget.Store(total)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for budget.Add(-1) >= 0 {
						resp, err := srv.Client().Get(srv.URL + "/")
						if err != nil {
							t.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							t.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
			}
			wg.Wait()
			for _, m := range pool.View().Members {
				if n := m.State.InFlight(); n != 0 {
					t.Errorf("%s: %d in flight after the run", m.Key, n)
				}
				latency, measured := m.State.Latency()
				if measured != (tc.policy == config.LBLeastTime) {
					t.Errorf("%s: latency measured %v under %s", m.Key, measured, tc.policy)
				}
				if m.Key == slowKey && measured && latency < 20*time.Millisecond {
					t.Errorf("slow backend's latency estimate %v, want about 25ms", latency)
				}
			}
			share := float64(slowHits.Load()) / total
			t.Logf("%s: slow backend share %.3f", tc.policy, share)
			if share < tc.minShare || share > tc.maxShare {
				t.Fatalf("slow backend share %.3f, want between %.2f and %.2f", share, tc.minShare, tc.maxShare)
			}
		})
	}
}
