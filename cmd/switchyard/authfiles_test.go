package main

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

// TestAuthFileWatches: a change to a watched keys or users file signals a reload; a file
// the config no longer names is not watched any more; stop ends every watch (goleak).
func TestAuthFileWatches(t *testing.T) {
	dir := t.TempDir()
	keys, users := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "htpasswd")
	loaded := func(path, content string) config.AuthFile {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		return config.AuthFile{Path: path, Digest: sum[:]}
	}
	keysFile, usersFile := loaded(keys, "keys: []\n"), loaded(users, "# none\n")

	a := newAuthFileWatches(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer a.stop()
	a.sync([]config.AuthFile{keysFile, usersFile})
	if len(a.watches) != 2 {
		t.Fatalf("%d watches, want 2", len(a.watches))
	}
	// The watch starts from the loaded digest, so this rewrite is a change even if it
	// lands before the watch is in place.
	loaded(users, "alice:$2y$04$x\n")
	expectSignal(t, a.changed, true, "users file rewritten")

	a.sync([]config.AuthFile{keysFile}) // a reload that no longer names the users file
	if len(a.watches) != 1 || a.watches[keys] == nil {
		t.Fatalf("watches after sync: %v", a.watches)
	}
	loaded(users, "bob:$2y$04$y\n")
	expectSignal(t, a.changed, false, "unwatched users file rewritten")
	loaded(keys, "keys: [{name: a, sha256: x}]\n")
	expectSignal(t, a.changed, true, "keys file rewritten")

	a.stop()
	if len(a.watches) != 0 {
		t.Fatalf("watches after stop: %v", a.watches)
	}
	var off *authFileWatches // -watch=false
	off.sync([]config.AuthFile{keysFile})
	off.stop()
}

func expectSignal(t *testing.T, ch <-chan struct{}, want bool, what string) {
	t.Helper()
	wait := 5 * time.Second
	if !want {
		wait = time.Second // several debounce periods
	}
	select {
	case <-ch:
		if !want {
			t.Fatalf("%s: reload signalled", what)
		}
	case <-time.After(wait):
		if want {
			t.Fatalf("%s: no reload signalled", what)
		}
	}
}
