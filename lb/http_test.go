package lb

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// TestAvoidsSlowBackend sends real requests to three loopback backends, one of which takes
// 25 ms per request, from eight concurrent clients. least_conn keeps the in-flight counts
// level, so the slow backend, whose requests stay in flight a hundred times longer, gets a
// small fraction of the traffic; least_time learns its latency from its first answer and
// then sends it almost nothing (its cost is its latency times its load, against the fast
// ones' fraction of a millisecond); round robin, the control, gives it exactly a third.
func TestAvoidsSlowBackend(t *testing.T) {
	fast := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(25 * time.Millisecond):
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	}
	var eps []upstream.Endpoint
	var slowKey string
	for _, b := range []struct {
		h    http.HandlerFunc
		slow bool
	}{{fast, false}, {slow, true}, {fast, false}} {
		srv := httptest.NewServer(b.h)
		t.Cleanup(srv.Close)
		k := strings.TrimPrefix(srv.URL, "http://")
		eps = append(eps, upstream.Endpoint{Key: k})
		if b.slow {
			slowKey = k
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	tests := []struct {
		name     string
		builder  upstream.PickerBuilder
		maxShare float64
		minShare float64
	}{
		{"least_conn", LeastConn{}, 0.15, 0},
		// Not near 0: when the fast backends queue requests (a loaded machine, the race
		// detector), the slow one's 25 ms can be the least time, and rightly gets requests.
		{"least_time", LeastTime{}, 0.10, 0},
		{"round_robin", RoundRobin{}, 0.34, 0.33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := upstream.NewPool("svc", tt.builder, upstream.PoolOptions{})
			pool.Update(upstream.NewSnapshot(eps))
			drainAfter(t, pool.View().Members)
			const total = 600
			var budget atomic.Int64
			budget.Store(total)
			var mu sync.Mutex
			counts := make(map[string]int)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for budget.Add(-1) >= 0 {
						m, err := pool.Pick(nil, upstream.Excluded{})
						if err != nil {
							t.Error(err)
							return
						}
						start := time.Now()
						resp, err := client.Get(m.Scheme + "://" + m.Key + "/")
						if err != nil {
							m.State.Done(upstream.Outcome{Err: upstream.ErrConnect, Latency: time.Since(start)})
							t.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						m.State.Done(upstream.Outcome{Status: resp.StatusCode, Latency: time.Since(start)})
						mu.Lock()
						counts[m.Key]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			share := float64(counts[slowKey]) / total
			t.Logf("slow backend share %.3f (counts %v)", share, counts)
			if share > tt.maxShare || share < tt.minShare {
				t.Fatalf("slow backend got %.3f of %d requests, want between %.2f and %.2f (counts %v)",
					share, total, tt.minShare, tt.maxShare, counts)
			}
		})
	}
}
