package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The last-known-good copy of an etcd config: each replica keeps the last document it applied,
// with its key and revision, so it can start while etcd is unreachable.

// defaultConfigCacheDir is $XDG_STATE_HOME/switchyard/config-cache, else
// ~/.local/state/switchyard/config-cache; "" (no cache) when neither can be found.
func defaultConfigCacheDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "switchyard", "config-cache")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".local", "state", "switchyard", "config-cache")
	}
	return ""
}

// cachedConfig is the file's content.
type cachedConfig struct {
	Key      string `json:"key"`
	Revision int64  `json:"revision"`
	Document string `json:"document"`
}

// cachePath is the copy's file for s.key, or "" when caching is off.
func (s *etcdSource) cachePath() string {
	if s.cacheDir == "" {
		return ""
	}
	name := strings.NewReplacer("/", "_", "\\", "_", "..", "_").Replace(strings.Trim(s.key, "/"))
	return filepath.Join(s.cacheDir, name+".json")
}

// saveCache writes doc and rev atomically (temp file, fsync, rename): a crash leaves the old
// copy or the new one, never half of one. The file is 0600: a document may hold secrets.
func (s *etcdSource) saveCache(doc []byte, rev int64) error {
	path := s.cachePath()
	if path == "" {
		return nil
	}
	data, err := json.Marshal(cachedConfig{Key: s.key, Revision: rev, Document: string(doc)})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadCache reads the copy for s.key.
func (s *etcdSource) loadCache() ([]byte, int64, error) {
	path := s.cachePath()
	if path == "" {
		return nil, 0, errors.New("no config cache directory")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var c cachedConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if c.Key != s.key {
		return nil, 0, fmt.Errorf("%s holds key %s, not %s", path, c.Key, s.key)
	}
	return []byte(c.Document), c.Revision, nil
}
