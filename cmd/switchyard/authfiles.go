package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/config"
)

// authFileWatches keeps one watch per keys or users file the config in force reads
// (Config.AuthFiles) and signals changed when one of them changes, so that editing an API
// keys file or an htpasswd reloads the config with it, as editing routes.yaml does. sync is
// called after every load, since a reload may name other files. A reload re-reads every
// file, so one signal is enough however many files changed.
type authFileWatches struct {
	ctx     context.Context
	log     *slog.Logger
	changed chan struct{} // capacity 1: a pending signal is not repeated
	watches map[string]*authFileWatch
}

type authFileWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newAuthFileWatches(ctx context.Context, log *slog.Logger) *authFileWatches {
	return &authFileWatches{ctx: ctx, log: log, changed: make(chan struct{}, 1), watches: make(map[string]*authFileWatch)}
}

// sync watches exactly files: new ones from the digest they were loaded with (a change that
// landed between the load and the watch still counts), dropped ones stop. Watches of files
// still named keep running: they already know the content the reload read.
func (a *authFileWatches) sync(files []config.AuthFile) {
	if a == nil { // file watching is off (-watch=false)
		return
	}
	named := make(map[string]bool, len(files))
	for _, f := range files {
		named[f.Path] = true
		if a.watches[f.Path] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(a.ctx)
		w := &authFileWatch{cancel: cancel, done: make(chan struct{})}
		a.watches[f.Path] = w
		go func(path string, digest []byte) {
			defer close(w.done)
			err := config.WatchFile(ctx, path, digest, 100*time.Millisecond, func() {
				a.log.Info("auth file changed: reloading config", "file", path)
				select {
				case a.changed <- struct{}{}:
				default:
				}
			})
			if err != nil && ctx.Err() == nil {
				a.log.Warn("auth file watch stopped; SIGHUP still reloads", "file", path, "error", err)
			}
		}(f.Path, f.Digest)
	}
	for path, w := range a.watches {
		if !named[path] {
			w.cancel()
			<-w.done
			delete(a.watches, path)
		}
	}
}

// stop ends every watch and waits for them.
func (a *authFileWatches) stop() { a.sync(nil) }
