package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy"
	"go.uber.org/goleak"
)

// trafficConfig loads a config with three placeholder routes and turns them into a split
// route, a sticky split route and a mirrored route (the loader's split/mirror validation is
// another change; these tests need only the fields it would fill).
func trafficConfig(t *testing.T, split, sticky, mirror []config.SplitBranch, mirrorTo string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.yaml")
	placeholder := named(t, "placeholder")
	doc := fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: "127.0.0.1:0"
routes:
  - prefix: /split
    upstreams: [%[1]q]
  - prefix: /sticky
    upstreams: [%[1]q]
  - prefix: /mirror
    upstreams: [%[1]q]
`, placeholder)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Routes[0].Upstreams, cfg.Routes[0].Split = nil, split
	cfg.Routes[1].Upstreams, cfg.Routes[1].Split = nil, sticky
	cfg.Routes[1].Sticky = &config.Sticky{Cookie: "sy"}
	cfg.Routes[2].Upstreams = mirror[0].Upstreams
	cfg.Routes[2].Mirror = &config.Mirror{Backend: config.Backend{Upstreams: []config.Upstream{{URL: mirrorTo, Weight: 1}}}, Percent: 100}
	return cfg
}

// static is a split branch of static upstreams.
func static(weight int, urls ...string) config.SplitBranch {
	b := config.SplitBranch{Weight: weight}
	for _, u := range urls {
		b.Upstreams = append(b.Upstreams, config.Upstream{URL: u, Weight: 1})
	}
	return b
}

func TestTrafficEndToEnd(t *testing.T) {
	copies := make(chan string, 100)
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		copies <- r.Host + " " + r.URL.Path + " " + string(b)
	}))
	t.Cleanup(shadow.Close)
	cfg := trafficConfig(t,
		[]config.SplitBranch{static(10, named(t, "a")), static(90, named(t, "b1"), named(t, "b2"))},
		[]config.SplitBranch{static(1, named(t, "s1"), named(t, "s2")), static(1, named(t, "t1"), named(t, "t2"))},
		[]config.SplitBranch{static(1, named(t, "main"))}, shadow.URL)

	tr, err := proxy.NewTransport(config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	handler := proxy.New(proxy.Options{Transport: tr})
	ctx, cancel := context.WithCancel(context.Background())
	gw := New(ctx, Options{Handler: handler})
	if err := gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		gw.Wait()
		tr.CloseIdleConnections()
	})
	c := srv.Client()
	fetch := func(path string, cookie *http.Cookie) (string, *http.Response) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("payload"))
		if cookie != nil {
			req.AddCookie(cookie)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("%s: status %d %s", path, res.StatusCode, b)
		}
		return string(b), res
	}

	t.Run("readiness covers branch and mirror pools", func(t *testing.T) {
		ready, waiting := gw.Ready()
		if !ready {
			t.Fatalf("not ready: %v", waiting)
		}
		var names []string
		for _, p := range gw.Upstreams() {
			names = append(names, p.Name)
		}
		for _, want := range []string{"static:/split#0", "static:/split#1", "static:/sticky#0", "static:/sticky#1", "static:/mirror", "static:/mirror#mirror"} {
			if !slices.Contains(names, want) {
				t.Errorf("pool %s missing from %v", want, names)
			}
		}
		routes := gw.Routes()
		wantSplit := []BranchInfo{{Pool: "static:/split#0", Weight: 10}, {Pool: "static:/split#1", Weight: 90}}
		if r := routes[0]; r.Pool != "" || !slices.Equal(r.Split, wantSplit) || r.Mirror != "" {
			t.Errorf("split route info: pool %q split %v mirror %q", r.Pool, r.Split, r.Mirror)
		}
		if r := routes[2]; r.Pool != "static:/mirror" || r.Split != nil || r.Mirror != "static:/mirror#mirror" {
			t.Errorf("mirrored route info: pool %q split %v mirror %q", r.Pool, r.Split, r.Mirror)
		}
	})

	t.Run("split 10/90 is exact", func(t *testing.T) {
		counts := map[string]int{}
		for range 1000 {
			body, _ := fetch("/split/x", nil)
			counts[body[:1]]++
		}
		if counts["a"] != 100 || counts["b"] != 900 {
			t.Fatalf("counts %v, want a:100 b:900", counts)
		}
	})

	t.Run("sticky clients stay", func(t *testing.T) {
		branches := map[byte]int{}
		for client := range 10 {
			first, res := fetch("/sticky/", nil)
			var ck *http.Cookie
			for _, k := range res.Cookies() {
				if k.Name == "sy" {
					ck = k
				}
			}
			if ck == nil {
				t.Fatalf("client %d: no cookie", client)
			}
			branches[first[0]]++
			for i := range 30 {
				if body, _ := fetch("/sticky/", ck); body != first {
					t.Fatalf("client %d request %d: %q, pinned to %q", client, i, body, first)
				}
			}
		}
		if branches['s'] != 5 || branches['t'] != 5 {
			t.Fatalf("first picks by branch %v, want 5 each", branches)
		}
	})

	t.Run("mirror receives copies", func(t *testing.T) {
		for i := range 5 {
			if body, _ := fetch("/mirror/p", nil); body != "main" {
				t.Fatalf("request %d answered %q", i, body)
			}
		}
		host := strings.TrimPrefix(srv.URL, "http://")
		h, port, _ := strings.Cut(host, ":")
		for range 5 {
			select {
			case got := <-copies:
				if want := h + "-shadow:" + port + " /mirror/p payload"; got != want {
					t.Errorf("copy %q, want %q", got, want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("a copy did not arrive")
			}
		}
	})

	t.Run("reload drops the mirror", func(t *testing.T) {
		next := *cfg
		next.Routes = slices.Clone(cfg.Routes[:2])
		if err := gw.Apply(&next); err != nil {
			t.Fatal(err)
		}
		for _, p := range gw.Upstreams() {
			if strings.HasPrefix(p.Name, "static:/mirror") {
				t.Errorf("pool %s still running", p.Name)
			}
		}
		if res, err := c.Get(srv.URL + "/mirror/p"); err != nil || res.StatusCode != http.StatusNotFound {
			t.Fatalf("removed route answered %v %v", res, err)
		} else {
			res.Body.Close()
		}
	})
}

// TestWaitStopsMirrors: the mirror workers of the routes in force stop with the gateway, and
// those of a config that failed to apply at once.
func TestWaitStopsMirrors(t *testing.T) {
	before := goleak.IgnoreCurrent()
	// Registered first, so it runs after every other cleanup (the placeholder backend's).
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	shadow := httptest.NewServer(http.NotFoundHandler())
	main := httptest.NewServer(http.NotFoundHandler())
	cfg := trafficConfig(t, []config.SplitBranch{static(1, main.URL)}, []config.SplitBranch{static(1, main.URL)},
		[]config.SplitBranch{static(1, main.URL)}, shadow.URL)
	handler := proxy.New(proxy.Options{Transport: http.DefaultTransport})
	ctx, cancel := context.WithCancel(context.Background())
	gw := New(ctx, Options{Handler: handler})
	// A config that fails after the mirrored route was built leaves no workers behind.
	bad := *cfg
	broken := cfg.Routes[0]
	broken.Prefix, broken.Split, broken.Service, broken.Discovery = "/broken", nil, "users", config.RegistryConsul
	bad.Routes = append(slices.Clone(cfg.Routes), broken)
	if err := gw.Apply(&bad); err == nil || !strings.Contains(err.Error(), "routes[3]") {
		t.Fatalf("Apply of a route on a registry that is not running: %v", err)
	}
	if err := gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	cancel()
	gw.Wait()
	shadow.Close()
	main.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// TestBranchPoolsShared: branch and mirror pools are shared by key with routes and with each
// other, as route pools are.
func TestBranchPoolsShared(t *testing.T) {
	x, y, z := named(t, "x"), named(t, "y"), named(t, "z")
	cfg := trafficConfig(t, []config.SplitBranch{static(1, x), static(1, y)}, []config.SplitBranch{static(1, x), static(1, z)},
		[]config.SplitBranch{static(1, x)}, y)
	handler := proxy.New(proxy.Options{Transport: http.DefaultTransport})
	ctx, cancel := context.WithCancel(context.Background())
	gw := New(ctx, Options{Handler: handler})
	t.Cleanup(func() { cancel(); gw.Wait() })
	if err := gw.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range gw.Upstreams() {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if want := []string{"static:/split#0", "static:/split#1", "static:/sticky#1"}; !slices.Equal(names, want) {
		t.Fatalf("pools %v, want %v (x, y and z once each)", names, want)
	}
}
