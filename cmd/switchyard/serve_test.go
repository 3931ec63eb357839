package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startGateway runs `switchyard -config F` on a file of listen and admin addresses of its own
// followed by rest, until the test ends (then it must exit 0), and waits for readiness.
func startGateway(t *testing.T, rest string) (listen, admin string) {
	t.Helper()
	listen, admin = freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: %q\nadmin: %q\n", listen, admin)+rest), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	var stderr bytes.Buffer // read only after exit
	go func() { exit <- run(ctx, []string{"-config", cfgPath}, io.Discard, &stderr) }()
	t.Cleanup(func() {
		stop()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit %d; log:\n%s", code, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s")
		}
	})
	waitFor(t, "readyz", 10*time.Second, func() bool { c, _ := httpGet("http://" + admin + "/readyz"); return c == 200 })
	return listen, admin
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestServeEmbeddedEtcdEndToEnd runs the gateway as `switchyard -config F` does, with no
// discovery section (so an embedded etcd server), registers a backend with a plain etcd
// client, and checks routing, readiness, the admin API, validation of a bad reload and a
// clean SIGTERM-style stop.
func TestServeEmbeddedEtcdEndToEnd(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "users:%s", r.URL.Path)
	}))
	defer backend.Close()

	listen, admin, client, peer := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "routes.yaml")
	cfg := fmt.Sprintf(`listen: %q
admin: %q
discovery:
  embedded: { client_url: "http://%s", peer_url: "http://%s", data_dir: %q }
server: { shutdown_grace: 5s }
routes:
  - prefix: /api/users
    service: users
    strip_prefix: true
`, listen, admin, client, peer, filepath.Join(dir, "etcd"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"-config", cfgPath, "-log-format", "json"}, io.Discard, &stderr) }()
	defer func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit code %d; log:\n%s", code, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s of SIGTERM")
		}
	}()

	waitFor(t, "readyz", 20*time.Second, func() bool {
		code, _ := httpGet("http://" + admin + "/readyz")
		return code == 200
	})
	if code, body := httpGet("http://" + listen + "/api/users/7"); code != 503 || !strings.Contains(body, "no healthy upstream") {
		t.Fatalf("before registration: %d %q, want 503", code, body)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := "/services/users/" + backend.Listener.Addr().String()
	putCtx, putCancel := context.WithTimeout(ctx, 5*time.Second)
	defer putCancel()
	if _, err := cli.Put(putCtx, key, backend.Listener.Addr().String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "routing to the registered backend", 5*time.Second, func() bool {
		code, body := httpGet("http://" + listen + "/api/users/7")
		return code == 200 && body == "users:/7"
	})

	_, body := httpGet("http://" + admin + "/admin/upstreams")
	var pools []struct {
		Name      string `json:"name"`
		Endpoints []struct {
			Key string `json:"key"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(body), &pools); err != nil || len(pools) != 1 || len(pools[0].Endpoints) != 1 {
		t.Fatalf("/admin/upstreams: %v %s", err, body)
	}
	if code, body := httpGet("http://" + admin + "/metrics"); code != 200 || !strings.Contains(body, `switchyard_requests_total{class="2xx",route="/api/users"}`) {
		t.Fatalf("/metrics missing request counts: %d", code)
	}

	if _, err := cli.Delete(putCtx, key); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deregistration to reach traffic", 5*time.Second, func() bool {
		code, _ := httpGet("http://" + listen + "/api/users/7")
		return code == 503
	})
}

// TestRetryLimitMatchesExclusion: config refuses more retries than the proxy can keep
// apart (config does not import upstream, so the numbers meet here).
func TestRetryLimitMatchesExclusion(t *testing.T) {
	if config.MaxRetries != upstream.MaxExcluded-1 {
		t.Errorf("config.MaxRetries = %d, upstream.MaxExcluded = %d: want one try plus retries to fill the exclusion set", config.MaxRetries, upstream.MaxExcluded)
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("discovery: {}\nroutes:\n  - prefix: /a\n    upstreams: [\"http://127.0.0.1:9001\"]\n"), 0o644)
	os.WriteFile(bad, []byte("routes:\n  - prefix: /a\n    lb: least_con\n    upstreams: [\"http://127.0.0.1:9001\"]\n  - prefix: a\n    service: x\n    upstreams: [\"ftp://x\"]\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"validate", "-config", good}, &out, &errb); code != 0 {
		t.Fatalf("good file: exit %d: %s", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"validate", "-config", bad}, &out, &errb); code != 1 {
		t.Fatalf("bad file: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("want every error reported, got:\n%s", errb.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, bad+":") {
			t.Errorf("error line without file:line: %q", l)
		}
	}
	if !strings.Contains(errb.String(), bad+`:3: routes[0].lb: unknown policy "least_con"`) {
		t.Errorf("missing the lb error:\n%s", errb.String())
	}
}

// TestShippedConfigsValidate keeps routes.yaml and the deploy/ examples loadable.
func TestShippedConfigsValidate(t *testing.T) {
	t.Setenv("ETCD_PASSWORD", "x")
	files, _ := filepath.Glob("../../deploy/*.yaml")
	files = append(files, "../../routes.yaml")
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"validate", "-config", f}, &out, &errb); code != 0 {
			t.Errorf("%s: exit %d\n%s", f, code, errb.String())
		}
	}
}

// TestSIGTERMDrainsInFlight: a request in flight when the stop signal arrives completes;
// the listener stops taking new connections; the process exits 0.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "finished")
	}))
	defer backend.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listen: %q
admin: %q
discovery: {}
server: { shutdown_grace: 10s }
routes:
  - prefix: /
    upstreams: [%q]
`, listen, admin, backend.URL)), 0o644)
	ctx, stop := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"-config", cfgPath}, io.Discard, io.Discard) }()
	waitFor(t, "readyz", 10*time.Second, func() bool { c, _ := httpGet("http://" + admin + "/readyz"); return c == 200 })

	type result struct {
		code int
		body string
	}
	inflight := make(chan result, 1)
	go func() {
		c := http.Client{Timeout: 10 * time.Second}
		res, err := c.Get("http://" + listen + "/slow")
		if err != nil {
			inflight <- result{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		inflight <- result{res.StatusCode, string(b)}
	}()
	time.Sleep(200 * time.Millisecond) // the request is now waiting on the backend
	stop()                             // SIGTERM
	waitFor(t, "listener closed", 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", listen, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if r := <-inflight; r.code != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %d %q, want 200 finished", r.code, r.body)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after drain")
	}
}
