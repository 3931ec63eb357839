package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
)

// weightBranches makes branches with the given weights and no pools (the splitter never
// looks at them).
func weightBranches(weights ...int) []Branch {
	bs := make([]Branch, len(weights))
	for i, w := range weights {
		bs[i].Weight = w
	}
	return bs
}

func TestSplitterExact(t *testing.T) {
	for _, tc := range []struct {
		name     string
		weights  []int
		fallback bool // weights too large for the schedule
	}{
		{"one branch", []int{1}, false},
		{"10/90", []int{10, 90}, false},
		{"drained branch", []int{0, 5}, false},
		{"drained middle", []int{3, 0, 7}, false},
		{"equal thirds", []int{1, 1, 1}, false},
		{"coprime", []int{2, 3, 5}, false},
		{"gcd reduces", []int{4000, 6000}, false},
		{"past the schedule", []int{4097, 1}, true},
		{"large coprime", []int{9973, 7919, 0, 104729}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSplitter(weightBranches(tc.weights...))
			if (s.schedule == nil) != tc.fallback {
				t.Fatalf("schedule %v, want fallback %v", s.schedule != nil, tc.fallback)
			}
			// At least 10,000 picks, rounded up to whole periods: exact there.
			n := (10000 + s.total - 1) / s.total * s.total
			counts := make([]uint64, len(tc.weights))
			for range n {
				counts[s.pick()]++
			}
			var g uint64
			for _, w := range tc.weights {
				g = gcd(g, uint64(w))
			}
			for i, w := range tc.weights {
				if want := n / s.total * (uint64(w) / g); counts[i] != want {
					t.Errorf("branch %d (weight %d): %d picks of %d, want %d", i, w, counts[i], n, want)
				}
			}
		})
	}
}

func TestSplitterAllZero(t *testing.T) {
	s := newSplitter(weightBranches(0, 0))
	for range 10 {
		if b := s.pick(); b != -1 {
			t.Fatalf("pick = %d, want -1 when every weight is 0", b)
		}
	}
	if newSplitter(nil) != nil {
		t.Fatal("no branches must mean no splitter")
	}
}

// TestSplitterSmooth: the schedule interleaves; 10/90 sends exactly one of every 10
// consecutive requests to the small branch, not ten in a row.
func TestSplitterSmooth(t *testing.T) {
	s := newSplitter(weightBranches(10, 90))
	for period := range 100 {
		small := 0
		for range 10 {
			if s.pick() == 0 {
				small++
			}
		}
		if small != 1 {
			t.Fatalf("period %d: %d picks of branch 0 in 10, want 1", period, small)
		}
	}
}

// TestSplitterConcurrent: exact under concurrent picks (one atomic ticket per pick).
func TestSplitterConcurrent(t *testing.T) {
	s := newSplitter(weightBranches(1, 3))
	var mu sync.Mutex
	counts := make([]int, 2)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]int, 2)
			for range 1000 {
				local[s.pick()]++
			}
			mu.Lock()
			counts[0] += local[0]
			counts[1] += local[1]
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[0] != 2000 || counts[1] != 6000 {
		t.Fatalf("counts %v, want [2000 6000]", counts)
	}
}

// namedBackend answers every request with its name.
func namedBackend(t testing.TB, name string) string {
	t.Helper()
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	})
}

// poolOf is a round-robin pool of the given endpoints (host:port).
func poolOf(t testing.TB, name string, hp upstream.HealthPolicy, keys ...string) *upstream.Pool {
	t.Helper()
	b, err := lb.New(config.LBRoundRobin)
	if err != nil {
		t.Fatal(err)
	}
	p := upstream.NewPool(name, b, upstream.PoolOptions{Health: hp})
	setEndpoints(p, keys...)
	return p
}

func setEndpoints(p *upstream.Pool, keys ...string) {
	eps := make([]upstream.Endpoint, len(keys))
	for i, k := range keys {
		eps[i] = upstream.Endpoint{Key: k}
	}
	p.Update(upstream.NewSnapshot(eps))
}

// trafficRoute compiles rc (given a timeout and retries) with o; closed at cleanup.
func trafficRoute(t testing.TB, rc *config.Route, o RouteOptions) *Route {
	t.Helper()
	if rc.Timeout == 0 {
		rc.Timeout = 10 * time.Second
	}
	if rc.Retries == nil {
		one := 1
		rc.Retries = &one
		rc.Retry = defaultRetry()
	}
	r := NewRoute(rc, o)
	t.Cleanup(r.Close)
	return r
}

// fetchWith sends a GET with cookies and returns the status, body and response.
func fetchWith(t testing.TB, c *http.Client, url string, cookies ...*http.Cookie) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b), res
}

// TestSplitEndToEnd: requests through the handler land on the branches in exact shares;
// retries stay in the chosen branch; an empty branch answers 503 and is not skipped.
func TestSplitEndToEnd(t *testing.T) {
	a := poolOf(t, "a", nil, namedBackend(t, "a"))
	b := poolOf(t, "b", nil, namedBackend(t, "b1"), namedBackend(t, "b2"))
	empty := poolOf(t, "empty", nil)
	rt := trafficRoute(t, &config.Route{Prefix: "/s"}, RouteOptions{Branches: []Branch{
		{Pool: a, Weight: 1}, {Pool: b, Weight: 3}, {Pool: empty, Weight: 1},
	}})
	srv, _ := startGateway(t, nil, rt)
	counts := map[string]int{}
	for range 100 {
		status, body, _ := fetchWith(t, srv.Client(), srv.URL+"/s/x")
		if status == http.StatusServiceUnavailable {
			body = "503"
		}
		counts[body]++
	}
	want := map[string]int{"a": 20, "b1": 30, "b2": 30, "503": 20}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s: %d, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
}

func BenchmarkSplitPick(b *testing.B) {
	for _, bc := range []struct {
		name    string
		weights []int
	}{
		{"schedule", []int{10, 90}},
		{"strided", []int{9973, 7919, 104729}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSplitter(weightBranches(bc.weights...))
			b.ReportAllocs()
			sum := 0
			for b.Loop() {
				sum += s.pick()
			}
			_ = sum
		})
	}
}

// BenchmarkHandlerTraffic is the handler's cost per request on a split route, and on a sticky
// route whose client sends a valid cookie beside the same request and cookie on a route
// without sticky (compare split with BenchmarkHandler/features-off, the route without it).
func BenchmarkHandlerTraffic(b *testing.B) {
	backends := []string{"127.0.0.1:9", "127.0.0.1:10"}
	for _, name := range []string{"split", "sticky-hit", "cookie-no-sticky"} {
		b.Run(name, func(b *testing.B) {
			h := New(Options{Transport: cannedTransport{body: make([]byte, 64)}, Metrics: NewMetrics(nil)})
			rc := &config.Route{Prefix: "/api"}
			rc.Timeout = 30 * time.Second
			zero := 0
			rc.Retries = &zero
			var o RouteOptions
			switch name {
			case "split":
				o.Branches = []Branch{{Pool: poolOf(b, "a", nil, backends[0]), Weight: 1}, {Pool: poolOf(b, "b", nil, backends[1]), Weight: 9}}
			case "sticky-hit":
				o.Pool = poolOf(b, "p", nil, backends...)
				rc.Sticky = &config.Sticky{Cookie: "sy"}
			default:
				o.Pool = poolOf(b, "p", nil, backends...)
			}
			rt := NewRoute(rc, o)
			h.SetTable(NewTable(append(makeRoutes(100), rt), nil))
			req := httptest.NewRequest(http.MethodGet, "http://gw.test/api/users/42?x=1", nil)
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			if rt.sticky != nil {
				req.Header.Set("Cookie", "sy="+stickyValueOf(rt.sticky, 0, backends[0]))
			} else if name == "cookie-no-sticky" {
				req.Header.Set("Cookie", "sy=LIJ0m7ExbgYjQnP1TEhEjIbcMU4IlVKc")
			}
			w := &discardWriter{h: make(http.Header, 8)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
			if len(w.h["Set-Cookie"]) != 0 {
				b.Fatal("a valid cookie was set again")
			}
		})
	}
}
