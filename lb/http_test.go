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
// 50 ms per request. With eight concurrent clients least_conn keeps the in-flight counts
// level, so the slow backend, whose requests stay in flight far longer, gets a small
// fraction of the traffic. With one client sending requests one after the other every
// backend is idle at each pick, so in-flight counts say nothing: least_conn, the control,
// gives the slow backend about a third, and least_time must do better from the latency it
// measured (its estimates are checked too, so the test fails if nothing is measured).
// Round robin gives exactly a third. Connections are opened before counting, so no dial
// inflates a fast backend's first estimate.
func TestAvoidsSlowBackend(t *testing.T) {
	const delay = 50 * time.Millisecond
	fast := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
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
		resp, err := client.Get(srv.URL) // warm one connection
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	tests := []struct {
		name     string
		builder  upstream.PickerBuilder
		clients  int
		total    int
		maxShare float64
		minShare float64
	}{
		{"least_conn/8 clients", LeastConn{}, 8, 600, 0.15, 0},
		// Not near 0: on a loaded machine (the race detector, a CI run) a fast backend's
		// answer can take 50 ms too, and then the slow one rightly gets requests.
		{"least_time/1 client", LeastTime{}, 1, 150, 0.10, 0},
		// A third expected; 0.2 is 3.5 standard deviations below it at 150 requests.
		{"least_conn/1 client", LeastConn{}, 1, 150, 0.5, 0.2},
		{"round_robin/8 clients", RoundRobin{}, 8, 600, 0.34, 0.33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := upstream.NewPool("svc", tt.builder, upstream.PoolOptions{})
			pool.Update(upstream.NewSnapshot(eps))
			drainAfter(t, pool.View().Members)
			var budget atomic.Int64
			budget.Store(int64(tt.total))
			var mu sync.Mutex
			counts := make(map[string]int)
			var wg sync.WaitGroup
			for range tt.clients {
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
			share := float64(counts[slowKey]) / float64(tt.total)
			t.Logf("slow backend share %.3f (counts %v)", share, counts)
			if share > tt.maxShare || share < tt.minShare {
				t.Fatalf("slow backend got %.3f of %d requests, want between %.2f and %.2f (counts %v)",
					share, tt.total, tt.minShare, tt.maxShare, counts)
			}
			if _, ok := tt.builder.(LeastTime); !ok {
				return
			}
			for _, m := range pool.View().Members {
				nanos, _, measured := m.State.LatencyEstimate()
				if !measured {
					t.Fatalf("%s: latency not measured", m.Key)
				}
				if m.Key == slowKey && time.Duration(nanos) < delay {
					t.Fatalf("slow backend's estimate %v, want at least its delay %v", time.Duration(nanos), delay)
				}
			}
		})
	}
}
