package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchFile calls onChange each time the content of the file at path changes, until ctx
// ends; it then returns ctx.Err(). Events are coalesced for debounce (editors and
// `kubectl apply` write in several steps), then the file is hashed: a touch, or a rewrite
// with the same bytes, does not call onChange. A file that is missing or unreadable for a
// moment (mid-save) is skipped until it is back.
//
// It watches the parent directory, not the file, so it sees editors' write-to-temp-and-
// rename and Kubernetes ConfigMap updates (an atomic swap of the ..data symlink beside the
// file) that replace the inode a file watch would be stuck on. When path is a symlink the
// directory of its current target is watched too, and re-resolved after every change.
// onChange runs on WatchFile's goroutine; a slow onChange delays the next check. WatchFile
// returns early with an error when the watch cannot be set up or fsnotify reports a failure
// other than a queue overflow (after which the file is simply checked again).
//
// loaded is the SHA-256 of the content the caller runs with (Config.Digest); nil means the
// content found when the watch starts. When the file already differs from it once the watch
// is in place, onChange runs after the debounce: a save that lands between the load and the
// watch is not lost.
func WatchFile(ctx context.Context, path string, loaded []byte, debounce time.Duration, onChange func()) error {
	return watchFile(ctx, path, loaded, debounce, onChange, nil)
}

// watchFile is WatchFile with a hook called once the watches are in place, for tests.
func watchFile(ctx context.Context, path string, loaded []byte, debounce time.Duration, onChange, ready func()) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	defer w.Close()
	dir := filepath.Dir(abs)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	targetDir := ""
	// follow keeps a watch on the directory the symlink at abs points into (best effort:
	// if it cannot be watched, changes through the parent directory still count).
	follow := func() {
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return
		}
		if d := filepath.Dir(real); d != dir && d != targetDir {
			if targetDir != "" {
				_ = w.Remove(targetDir) // may be gone already, which removed the watch
			}
			if w.Add(d) == nil {
				targetDir = d
			}
		}
	}
	follow()
	current, _ := hashFile(abs)
	last := loaded
	if last == nil {
		last = current
	}
	if ready != nil {
		ready()
	}

	// Since Go 1.23 a stopped timer never delivers a stale tick, so Stop needs no drain.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	if current != nil && !bytes.Equal(current, last) {
		timer.Reset(debounce) // changed between the caller's load and this watch
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-w.Events:
			if !ok {
				return errors.New("config watch: fsnotify closed its event channel")
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("config watch: fsnotify closed its error channel")
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("watch %s: %w", path, err)
			}
			timer.Reset(debounce) // events were lost: look at the file anyway
		case <-timer.C:
			follow()
			sum, err := hashFile(abs)
			if err != nil || bytes.Equal(sum, last) {
				continue
			}
			last = sum
			onChange()
		}
	}
}

// hashFile returns the SHA-256 of the file's content (following symlinks). Config files are
// small, so reading them whole on each burst of events is cheap; readFile stops past the
// size limit, beyond which Load refuses the file anyway.
func hashFile(path string) ([]byte, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return sum[:], nil
}
