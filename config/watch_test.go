package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const testDebounce = 20 * time.Millisecond

// startWatch runs watchFile on path until the test ends and returns its onChange signals.
func startWatch(t *testing.T, path string) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 16)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- watchFile(ctx, path, nil, testDebounce, func() { changes <- struct{}{} }, func() { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("watchFile returned %v, want context.Canceled", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("watchFile: %v", err)
	}
	return changes
}

func expectChange(t *testing.T, changes <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no change reported", what)
	}
}

func expectQuiet(t *testing.T, changes <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-changes:
		t.Fatalf("%s: change reported", what)
	case <-time.After(10*testDebounce + 200*time.Millisecond):
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatchFile(t *testing.T) {
	tests := []struct {
		name string
		// setup creates the watched file and returns its path and a change to make.
		setup func(t *testing.T, dir string) (path string, change func())
	}{
		{"write in place", func(t *testing.T, dir string) (string, func()) {
			p := filepath.Join(dir, "routes.yaml")
			write(t, p, "a")
			return p, func() { write(t, p, "b") }
		}},
		{"rename over (editor save)", func(t *testing.T, dir string) (string, func()) {
			p := filepath.Join(dir, "routes.yaml")
			write(t, p, "a")
			return p, func() {
				tmp := filepath.Join(dir, ".routes.yaml.swp")
				write(t, tmp, "b")
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"delete and recreate", func(t *testing.T, dir string) (string, func()) {
			p := filepath.Join(dir, "routes.yaml")
			write(t, p, "a")
			return p, func() {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				write(t, p, "b")
			}
		}},
		{"configmap symlink swap", func(t *testing.T, dir string) (string, func()) {
			// Kubernetes' layout: routes.yaml -> ..data/routes.yaml, ..data -> ..<timestamp>.
			mkdir(t, filepath.Join(dir, "..v1"))
			write(t, filepath.Join(dir, "..v1", "routes.yaml"), "a")
			symlink(t, "..v1", filepath.Join(dir, "..data"))
			p := filepath.Join(dir, "routes.yaml")
			symlink(t, filepath.Join("..data", "routes.yaml"), p)
			return p, func() {
				mkdir(t, filepath.Join(dir, "..v2"))
				write(t, filepath.Join(dir, "..v2", "routes.yaml"), "b")
				symlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
				if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"symlink into another directory", func(t *testing.T, dir string) (string, func()) {
			other := t.TempDir()
			target := filepath.Join(other, "real.yaml")
			write(t, target, "a")
			p := filepath.Join(dir, "routes.yaml")
			symlink(t, target, p)
			return p, func() { write(t, target, "b") }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, change := tc.setup(t, t.TempDir())
			changes := startWatch(t, path)
			change()
			expectChange(t, changes, "first change")
			expectQuiet(t, changes, "after the change settled") // one save, one call
		})
	}
}

func TestWatchFileIgnoresSameContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "routes.yaml")
	write(t, p, "same")
	changes := startWatch(t, p)

	write(t, p, "same")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "neighbour.yaml"), "x")
	expectQuiet(t, changes, "touch and rewrite with the same bytes")

	// The watch is still alive: a real change after the quiet period is seen.
	write(t, p, "different")
	expectChange(t, changes, "real change")
}

const minimalRoutes = "routes:\n  - prefix: /\n    upstreams: [\"http://127.0.0.1:9\"]\n"

// TestWatchFileFromLoadedDigest: a save that lands between the caller's load and the start of
// the watch is reported once the watch is in place; an unchanged file is not.
func TestWatchFileFromLoadedDigest(t *testing.T) {
	for _, tc := range []struct {
		name        string
		loaded, now string
		wantChange  bool
	}{
		{"saved after the load", minimalRoutes, minimalRoutes + "# edited\n", true},
		{"unchanged since the load", minimalRoutes, minimalRoutes, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "routes.yaml")
			write(t, p, tc.loaded)
			cfg, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			write(t, p, tc.now) // before the watch exists: no event will ever say so
			ctx, cancel := context.WithCancel(context.Background())
			changes := make(chan struct{}, 4)
			done := make(chan error, 1)
			go func() { done <- WatchFile(ctx, p, cfg.Digest, testDebounce, func() { changes <- struct{}{} }) }()
			defer func() {
				cancel()
				<-done
			}()
			if tc.wantChange {
				expectChange(t, changes, tc.name)
			} else {
				expectQuiet(t, changes, tc.name)
			}
		})
	}
}

func TestWatchFileSetupError(t *testing.T) {
	err := WatchFile(context.Background(), filepath.Join(t.TempDir(), "missing-dir", "routes.yaml"), nil, testDebounce, func() {})
	if err == nil {
		t.Fatal("watching a file in a missing directory succeeded")
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
