package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/configsource/etcdsource"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/testkit"
)

const cfgKey = "/switchyard/config"

func etcdURL(srv *etcdtest.Server) string { return "etcd://" + srv.Endpoints()[0] + cfgKey }

// pushFile writes doc to a file and runs `switchyard config push`; it returns the exit code,
// stdout and stderr.
func pushFile(t *testing.T, url, doc string, extra ...string) (int, string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	args := append([]string{"config", "push", "-to", url}, extra...)
	code := run(context.Background(), append(args, path), &out, &errb)
	return code, out.String(), errb.String()
}

func currentRev(t *testing.T, srv *etcdtest.Server) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	doc, rev, err := etcdsource.Get(ctx, srv.Client(t), cfgKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(doc), rev
}

func TestConfigPushGet(t *testing.T) {
	srv := etcdtest.Start(t)
	url := etcdURL(srv)
	good := "discovery: {}\nroutes:\n  - prefix: /a\n    upstreams: [\"http://127.0.0.1:9001\"]\n"

	code, out, errs := pushFile(t, url, good, "-expect-revision", "0")
	if code != 0 || !strings.HasPrefix(out, "revision ") {
		t.Fatalf("first push: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	doc, rev := currentRev(t, srv)
	if doc != good || out != fmt.Sprintf("revision %d\n", rev) {
		t.Fatalf("after push: %q@%d; push printed %q", doc, rev, out)
	}

	// get round-trips: the document on stdout, its revision on stderr.
	var gout, gerr bytes.Buffer
	if code := run(context.Background(), []string{"config", "get", "-from", url}, &gout, &gerr); code != 0 {
		t.Fatalf("get: exit %d: %s", code, gerr.String())
	}
	if gout.String() != good || gerr.String() != fmt.Sprintf("revision %d\n", rev) {
		t.Fatalf("get: stdout %q, stderr %q", gout.String(), gerr.String())
	}

	// An invalid file is refused before anything is written.
	bad := "routes:\n  - prefix: a\n    upstreams: [\"ftp://x\"]\n"
	code, _, errs = pushFile(t, url, bad, "-force")
	if code != 1 || !strings.Contains(errs, "nothing written") || !strings.Contains(errs, "routes[0].prefix") {
		t.Fatalf("invalid push: exit %d, stderr %q", code, errs)
	}
	if _, r := currentRev(t, srv); r != rev {
		t.Fatalf("invalid push changed the key: rev %d -> %d", rev, r)
	}

	// A push at the current revision wins; one at the old revision loses without writing.
	second := strings.Replace(good, "/a", "/b", 1)
	code, out, errs = pushFile(t, url, second, "-expect-revision", fmt.Sprint(rev))
	if code != 0 {
		t.Fatalf("push at the current revision: exit %d: %s", code, errs)
	}
	_, rev2 := currentRev(t, srv)
	code, _, errs = pushFile(t, url, strings.Replace(good, "/a", "/stale", 1), "-expect-revision", fmt.Sprint(rev))
	if code != 1 || !strings.Contains(errs, "nothing written") {
		t.Fatalf("stale push: exit %d, stderr %q", code, errs)
	}
	if doc, r := currentRev(t, srv); doc != second || r != rev2 {
		t.Fatalf("stale push changed the key: %q@%d, want the second push @%d", doc, r, rev2)
	}
	if out != fmt.Sprintf("revision %d\n", rev2) {
		t.Fatalf("second push printed %q, want revision %d", out, rev2)
	}

	// Without the revision the edit started from, a push is refused (an in-between push by
	// someone else would be overwritten); -force says overwriting is meant.
	if code, _, errs := pushFile(t, url, good); code != 2 || !strings.Contains(errs, "-expect-revision") {
		t.Fatalf("push without -expect-revision or -force: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := pushFile(t, url, good, "-force"); code != 0 {
		t.Fatalf("push -force: exit %d, stderr %q", code, errs)
	}

	// Credentials never go in the URL.
	code, _, errs = pushFile(t, "etcd://u:pw@"+srv.Endpoints()[0]+cfgKey, good)
	if code != 2 || strings.Contains(errs, "pw@") {
		t.Fatalf("URL with credentials: exit %d, stderr %q", code, errs)
	}
}

// startEtcdGateway runs the gateway with -config url and -config-cache cacheDir until stop
// (or the test's end) and waits until it is ready; stop checks it exited 0.
func startEtcdGateway(t *testing.T, url, admin, cacheDir string) (logs *testkit.SyncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	logs = &testkit.SyncBuffer{}
	go func() { exit <- run(ctx, []string{"-config", url, "-config-cache", cacheDir}, io.Discard, logs) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit %d; log:\n%s", code, logs.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s")
		}
	})
	t.Cleanup(stop)
	waitFor(t, "readyz", 15*time.Second, func() bool { c, _ := httpGet("http://" + admin + "/readyz"); return c == 200 })
	return logs, stop
}

// TestServeFromEtcd runs the gateway with -config etcd://...: a push changes what it serves,
// an invalid document is rejected with key@rev:line errors while the previous config keeps
// serving, and pushes reach traffic within a bounded time (p50/p99 logged).
func TestServeFromEtcd(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok:%s", r.URL.Path)
	}))
	defer backend.Close()
	srv := etcdtest.Start(t)
	url := etcdURL(srv)
	listen, admin := freeAddr(t), freeAddr(t)
	doc := func(prefix string) string {
		return fmt.Sprintf("listen: %q\nadmin: %q\ndiscovery: {}\nserver: { shutdown_grace: 2s }\nroutes:\n  - prefix: %s\n    upstreams: [%q]\n",
			listen, admin, prefix, backend.URL)
	}
	if code, _, errs := pushFile(t, url, doc("/one"), "-force"); code != 0 {
		t.Fatalf("initial push: %s", errs)
	}

	logs, _ := startEtcdGateway(t, url, admin, t.TempDir())
	if code, body := httpGet("http://" + listen + "/one/x"); code != 200 || body != "ok:/one/x" {
		t.Fatalf("/one before any push: %d %q", code, body)
	}

	// A push changes what the gateway serves.
	if code, _, errs := pushFile(t, url, doc("/two"), "-force"); code != 0 {
		t.Fatalf("push: %s", errs)
	}
	waitFor(t, "the pushed route", 5*time.Second, func() bool { c, _ := httpGet("http://" + listen + "/two/x"); return c == 200 })
	if code, _ := httpGet("http://" + listen + "/one/x"); code != 404 {
		t.Fatalf("/one after the push replaced it: %d, want 404", code)
	}
	_, pushedRev := currentRev(t, srv)
	if ci := adminConfig(t, admin); ci.Source != "etcd:"+cfgKey || ci.Revision != pushedRev || ci.AppliedAt == nil ||
		ci.Digest != sha256Hex(doc("/two")) || ci.LastRejected != nil || ci.LastKnownGood != nil {
		t.Fatalf("/admin/config after a push at revision %d: %+v", pushedRev, ci)
	}
	if _, body := httpGet("http://" + admin + "/metrics"); !strings.Contains(body, fmt.Sprintf("switchyard_config_revision %d\n", pushedRev)) {
		t.Errorf("/metrics: switchyard_config_revision is not %d", pushedRev)
	}

	// An invalid document written straight to etcd (bypassing push's check) is rejected by
	// the gateway: logged as key@rev:line, counted, and /two keeps serving.
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := srv.Client(t).Put(pctx, cfgKey, strings.Replace(doc("/two"), "prefix: /two", "prefix: two", 1))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("etcd:%s@rev %d:6: routes[0].prefix", cfgKey, resp.Header.Revision)
	waitFor(t, "the rejection in the log", 5*time.Second, func() bool { return strings.Contains(logs.String(), want) })
	if code, _ := httpGet("http://" + listen + "/two/x"); code != 200 {
		t.Fatalf("/two after an invalid document: %d, want the previous config serving", code)
	}
	if _, body := httpGet("http://" + admin + "/metrics"); !strings.Contains(body, `switchyard_config_reloads_total{result="failed"} 1`) {
		t.Errorf("failed reload not counted in /metrics")
	}
	if ci := adminConfig(t, admin); ci.Revision != pushedRev || ci.Digest != sha256Hex(doc("/two")) || ci.LastRejected == nil ||
		ci.LastRejected.Revision != resp.Header.Revision || len(ci.LastRejected.Errors) != 1 || !strings.HasPrefix(ci.LastRejected.Errors[0], want) {
		t.Fatalf("/admin/config after a rejected document at revision %d: %+v, want revision %d in force", resp.Header.Revision, ci, pushedRev)
	}

	// Push to applied, over a few dozen pushes.
	var took []time.Duration
	for i := range 30 {
		prefix := fmt.Sprintf("/p%d", i)
		start := time.Now()
		if code, _, errs := pushFile(t, url, doc(prefix), "-force"); code != 0 {
			t.Fatalf("push %d: %s", i, errs)
		}
		waitFor(t, prefix, 5*time.Second, func() bool { c, _ := httpGet("http://" + listen + prefix + "/x"); return c == 200 })
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("push (command run in-process, incl. validation and CAS) to served: p50 %v, p99 %v, max %v over %d pushes",
		took[len(took)/2], took[len(took)*99/100], took[len(took)-1], len(took))
}

// adminConfig reads /admin/config.
func adminConfig(t *testing.T, admin string) gateway.ConfigInfo {
	t.Helper()
	code, body := httpGet("http://" + admin + "/admin/config")
	var ci gateway.ConfigInfo
	if err := json.Unmarshal([]byte(body), &ci); code != 200 || err != nil {
		t.Fatalf("/admin/config: %d %v %s", code, err, body)
	}
	return ci
}

func sha256Hex(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestAdminConfigFromFile: /admin/config and switchyard_config_revision for a config file.
func TestAdminConfigFromFile(t *testing.T) {
	listen, admin := freeAddr(t), freeAddr(t)
	doc := fmt.Sprintf("listen: %q\nadmin: %q\ndiscovery: {}\nserver: { shutdown_grace: 2s }\nroutes:\n  - prefix: /a\n    upstreams: [\"http://127.0.0.1:9\"]\n", listen, admin)
	path := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	logs := &testkit.SyncBuffer{}
	go func() { exit <- run(ctx, []string{"-config", path}, io.Discard, logs) }()
	defer func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("exit %d; log:\n%s", code, logs.String())
		}
	}()
	waitFor(t, "/admin/config", 15*time.Second, func() bool {
		c, body := httpGet("http://" + admin + "/admin/config")
		return c == 200 && strings.Contains(body, `"source": "file:`)
	})
	ci := adminConfig(t, admin)
	if ci.Source != "file:"+path || ci.Revision != 0 || ci.AppliedAt == nil || ci.Digest != sha256Hex(doc) || ci.LastRejected != nil || ci.LastKnownGood != nil {
		t.Fatalf("/admin/config: %+v", ci)
	}
	if _, body := httpGet("http://" + admin + "/metrics"); !strings.Contains(body, "switchyard_config_revision 0\n") {
		t.Errorf("/metrics: switchyard_config_revision is not 0 for a file")
	}
	if c, body := httpGet("http://" + admin + "/readyz"); c != 200 || strings.Contains(body, `"config"`) {
		t.Errorf("/readyz from a file: %d %s", c, body)
	}
}

// TestServeFromEtcdLastKnownGood: a gateway keeps the last document it applied on disk and,
// when etcd is down at start, serves from it, then follows etcd once it is back.
func TestServeFromEtcdLastKnownGood(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok:%s", r.URL.Path)
	}))
	defer backend.Close()
	srv := etcdtest.Start(t)
	url := etcdURL(srv)
	listen, admin := freeAddr(t), freeAddr(t)
	doc := func(prefix string) string {
		return fmt.Sprintf("listen: %q\nadmin: %q\ndiscovery: {}\nserver: { shutdown_grace: 2s }\nroutes:\n  - prefix: %s\n    upstreams: [%q]\n",
			listen, admin, prefix, backend.URL)
	}
	served := func(prefix string) func() bool {
		return func() bool { c, _ := httpGet("http://" + listen + prefix + "/x"); return c == 200 }
	}
	if code, _, errs := pushFile(t, url, doc("/one"), "-force"); code != 0 {
		t.Fatalf("initial push: %s", errs)
	}
	cacheDir := t.TempDir()
	_, stop := startEtcdGateway(t, url, admin, cacheDir)
	if code, _, errs := pushFile(t, url, doc("/two"), "-force"); code != 0 {
		t.Fatalf("push: %s", errs)
	}
	waitFor(t, "the pushed route", 5*time.Second, served("/two"))
	stop()
	_, rev := currentRev(t, srv)
	data, err := os.ReadFile(filepath.Join(cacheDir, "switchyard_config.json"))
	if err != nil || !strings.Contains(string(data), fmt.Sprintf(`"revision":%d`, rev)) {
		t.Fatalf("last-known-good copy: %v %s, want revision %d", err, data, rev)
	}

	srv.Stop()
	logs, _ := startEtcdGateway(t, url, admin, cacheDir)
	if !served("/two")() {
		t.Fatalf("started from the copy but /two is not served; log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "last-known-good") {
		t.Errorf("the log does not say the gateway started from the copy:\n%s", logs.String())
	}
	// Ready (it serves a config) but /readyz says from what, until etcd's document is applied.
	note := fmt.Sprintf(`"config": "last-known-good copy (rev %d); etcd unreachable"`, rev)
	waitFor(t, "the last-known-good note in /readyz", 5*time.Second, func() bool {
		c, body := httpGet("http://" + admin + "/readyz")
		return c == 200 && strings.Contains(body, note)
	})
	if ci := adminConfig(t, admin); ci.LastKnownGood == nil || ci.LastKnownGood.Revision != rev || ci.LastKnownGood.Superseded || ci.Revision != rev {
		t.Fatalf("/admin/config started from the copy at revision %d: %+v", rev, ci)
	}
	srv.Restart(t)
	waitFor(t, "the note gone once etcd answers", 10*time.Second, func() bool {
		c, body := httpGet("http://" + admin + "/readyz")
		return c == 200 && !strings.Contains(body, `"config"`)
	})
	if code, _, errs := pushFile(t, url, doc("/three"), "-force"); code != 0 {
		t.Fatalf("push after the restart: %s", errs)
	}
	waitFor(t, "a push once etcd is back", 10*time.Second, served("/three"))
}

// TestInvalidEtcdDocumentKeepsTheCopy: a document in etcd that fails validation at start is
// refused and never replaces the last-known-good copy a start without etcd will need.
func TestInvalidEtcdDocumentKeepsTheCopy(t *testing.T) {
	srv := etcdtest.Start(t)
	url := etcdURL(srv)
	good := "discovery: {}\nroutes:\n  - prefix: /good\n    upstreams: [\"http://127.0.0.1:9001\"]\n"
	if code, _, errs := pushFile(t, url, good, "-expect-revision", "0"); code != 0 {
		t.Fatalf("push: %s", errs)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &serveFlags{config: url, etcd: etcdFlags{cacheDir: t.TempDir()}}
	if _, err := loadConfig(context.Background(), f, log); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := srv.Client(t).Put(ctx, cfgKey, "routes: [ {prefix: nope} ]\n"); err != nil {
		t.Fatal(err)
	}
	f2 := &serveFlags{config: url, etcd: f.etcd}
	if _, err := loadConfig(context.Background(), f2, log); err == nil {
		t.Fatal("an invalid document in etcd loaded")
	}
	doc, _, err := f.src.loadCache()
	if err != nil || string(doc) != good {
		t.Fatalf("the copy after an invalid document: %q, %v; want the good document", doc, err)
	}
}
