package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestAuthAcrossReloads: a route's auth filter is kept while its block and the files it
// reads are unchanged (basic auth's cache survives an unrelated edit), rebuilt when the keys
// file changes, and closed when the route goes; requests see each version's keys.
func TestAuthAcrossReloads(t *testing.T) {
	backend := named(t, "users")
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	writeKeys := func(key string) {
		sum := sha256.Sum256([]byte(key))
		if err := os.WriteFile(keys, []byte("keys:\n  - { name: ci, sha256: "+hex.EncodeToString(sum[:])+" }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKeys("key-1")
	body := func(extra string) string {
		return fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin: \"127.0.0.1:0\"\nroutes:\n"+
			"  - { prefix: /svc, upstreams: [%q], auth: { api_key: { keys_file: %q } } }\n%s", backend, keys, extra)
	}
	f := newFixture(t, body(""))
	status := func(key string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, f.server.URL+"/svc/a", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Api-Key", key)
		resp, err := f.server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("key-1"); got != 200 {
		t.Fatalf("key-1: %d, want 200", got)
	}
	first := f.gw.auths["/svc"]
	if first == nil {
		t.Fatal("no auth entry for /svc")
	}

	f.write(t, body(fmt.Sprintf("  - { prefix: /other, upstreams: [%q] }\n", backend)))
	if err := f.gw.Reload(f.path); err != nil {
		t.Fatal(err)
	}
	if f.gw.auths["/svc"] != first {
		t.Fatal("an unrelated edit rebuilt the route's auth filter")
	}

	writeKeys("key-2")
	if err := f.gw.Reload(f.path); err != nil {
		t.Fatal(err)
	}
	if f.gw.auths["/svc"] == first {
		t.Fatal("a new keys file kept the old auth filter")
	}
	if got := status("key-1"); got != 401 {
		t.Fatalf("old key after the keys file changed: %d, want 401", got)
	}
	if got := status("key-2"); got != 200 {
		t.Fatalf("new key: %d, want 200", got)
	}

	f.write(t, fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin: \"127.0.0.1:0\"\nroutes:\n  - { prefix: /svc, upstreams: [%q] }\n", backend))
	if err := f.gw.Reload(f.path); err != nil {
		t.Fatal(err)
	}
	if len(f.gw.auths) != 0 {
		t.Fatalf("auth entries after the block went: %v", f.gw.auths)
	}
	if got := status(""); got != 200 {
		t.Fatalf("route without auth: %d, want 200", got)
	}
}
