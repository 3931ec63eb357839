package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/configsource/etcdsource"
	"github.com/switchyard/switchyard/gateway"
	upetcd "github.com/switchyard/switchyard/upstream/etcd"
)

// Credentials for an etcd config source come from the environment, never the URL.
const (
	envEtcdUsername = "SWITCHYARD_ETCD_USERNAME"
	envEtcdPassword = "SWITCHYARD_ETCD_PASSWORD"
)

// startupReadTimeout bounds the first read of an etcd config key at startup; with a
// last-known-good copy on disk the gateway waits cachedReadTimeout before starting from it.
const (
	startupReadTimeout = 10 * time.Second
	cachedReadTimeout  = 3 * time.Second
)

// etcdFlags are the TLS flags of an etcd:// config source (serve and `config push|get`).
type etcdFlags struct {
	ca, cert, key, serverName string
	cacheDir                  string // serve only: the last-known-good copy's directory
}

func (e *etcdFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&e.ca, "etcd-ca", "", "CA file to verify etcd with, for an etcd:// config source")
	fs.StringVar(&e.cert, "etcd-cert", "", "client certificate file for etcd (with -etcd-key)")
	fs.StringVar(&e.key, "etcd-key", "", "client key file for etcd")
	fs.StringVar(&e.serverName, "etcd-server-name", "", "TLS server name etcd's certificate must carry")
}

// etcdSource is an etcd://HOST:PORT/KEY config source.
type etcdSource struct {
	endpoints []string
	key       string
	flags     etcdFlags
	cacheDir  string // "" for no last-known-good copy
	rev       int64  // mod revision of the document the gateway started from
	fromCache bool   // that document is the last-known-good copy: etcd did not answer
}

func parseEtcdSource(u string, fl etcdFlags) (*etcdSource, error) {
	eps, key, err := etcdsource.ParseURL(u)
	if err != nil {
		return nil, err
	}
	return &etcdSource{endpoints: eps, key: key, flags: fl, cacheDir: fl.cacheDir}, nil
}

// client connects as the etcd discoverer does (upstream/etcd.NewClient: reconnect backoff
// capped at 1 s), with TLS from flags and credentials from the environment.
func (s *etcdSource) client() (*clientv3.Client, error) {
	c := &config.Etcd{
		Endpoints:   s.endpoints,
		Username:    os.Getenv(envEtcdUsername),
		Password:    os.Getenv(envEtcdPassword),
		DialTimeout: config.DefaultEtcdDialTimeout,
	}
	if f := s.flags; f.ca != "" || f.cert != "" || f.key != "" || f.serverName != "" {
		c.TLS = &config.TLS{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key, ServerName: f.serverName}
	}
	return upetcd.NewClient(c)
}

// loadConfig reads the config the gateway starts from: the file, or the etcd key named by
// an etcd:// -config (then f.src is set for the reloader).
func loadConfig(ctx context.Context, f *serveFlags, log *slog.Logger) (*config.Config, error) {
	if !etcdsource.IsURL(f.config) {
		return config.Load(f.config)
	}
	src, err := parseEtcdSource(f.config, f.etcd)
	if err != nil {
		return nil, err
	}
	cli, err := src.client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	cachedDoc, cachedRev, cacheErr := src.loadCache()
	timeout := startupReadTimeout
	if cacheErr == nil {
		timeout = cachedReadTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	doc, rev, err := etcdsource.Get(rctx, cli, src.key)
	if err != nil {
		if errors.Is(err, etcdsource.ErrNotFound) {
			return nil, fmt.Errorf("etcd config key %s does not exist (write one with `switchyard config push -to %s -expect-revision 0 FILE`)", src.key, f.config)
		}
		if cacheErr != nil || ctx.Err() != nil {
			return nil, fmt.Errorf("reading etcd config key %s from %v: %w", src.key, src.endpoints, err)
		}
		log.Warn("etcd unreachable at start: starting from the last-known-good copy; the watch applies newer documents once etcd answers",
			"endpoints", src.endpoints, "key", src.key, "revision", cachedRev, "copy", src.cachePath(), "error", err)
		doc, rev = cachedDoc, cachedRev
		src.fromCache = true
	}
	cfg, err := config.Parse(etcdsource.Name(src.key, rev), doc)
	if err != nil {
		return nil, err
	}
	// Only a document that passed validation becomes the last-known-good copy: an invalid
	// one in etcd must not replace the copy a start without etcd will need.
	if !src.fromCache {
		if err := src.saveCache(doc, rev); err != nil {
			log.Warn("could not write the last-known-good config copy", "copy", src.cachePath(), "error", err)
		}
	}
	src.rev = rev
	f.src = src
	log.Info("config read from etcd", "endpoints", src.endpoints, "key", src.key, "revision", rev)
	return cfg, nil
}

// applyEtcdDoc applies one document read from etcd and, once it is in force, makes it the
// last-known-good copy.
func applyEtcdDoc(gw *gateway.Gateway, src *etcdSource, doc []byte, rev int64, log *slog.Logger) {
	if gw.ReloadRevision(etcdsource.Name(src.key, rev), rev, doc) != nil {
		return // logged and counted by ReloadRevision; the previous config keeps serving
	}
	if err := src.saveCache(doc, rev); err != nil {
		log.Warn("could not write the last-known-good config copy", "copy", src.cachePath(), "error", err)
	}
}

// startConfigReloader is startReloader for a file, or for an etcd source a watch of its key
// from the revision the gateway started with: each new document is validated and applied
// through gw.ReloadRevision (counted in switchyard_config_reloads_total), an invalid one is
// logged and the config in force keeps serving. SIGHUP re-reads the key.
func startConfigReloader(ctx context.Context, gw *gateway.Gateway, cfg *config.Config, f serveFlags, hup <-chan os.Signal, log *slog.Logger) <-chan struct{} {
	if f.src == nil {
		path := cfg.Path
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		gw.SetConfigSource(gateway.ConfigSource{Name: "file:" + path})
		return startReloader(ctx, gw, cfg.Path, cfg.Digest, cfg.AuthFiles, f.watch, hup, log)
	}
	src := f.src
	gw.SetConfigSource(gateway.ConfigSource{Name: "etcd:" + src.key, Revision: src.rev, FromLastKnownGood: src.fromCache})
	// Started from the copy, the watch delivers etcd's document at its first answer even if
	// it is the copy's revision: applying it says etcd is back (/readyz, /admin/config).
	seen := src.rev
	if src.fromCache {
		seen = 0
	}
	done := make(chan struct{})
	cli, err := src.client()
	if err != nil {
		log.Error("etcd config watch not started; the config read at startup stays in force", "error", err)
		close(done)
		return done
	}
	docs := make(chan etcdDoc, 1)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = etcdsource.Watch(ctx, cli, src.key, seen, log, func(doc []byte, rev int64) {
			select {
			case docs <- etcdDoc{doc, rev}:
			case <-ctx.Done():
			}
		})
	}()
	// Keys and users files are local to each replica even when the document is shared:
	// a change to one re-reads the key and applies it again (same revision, new files).
	var authFiles *authFileWatches
	var authChanged <-chan struct{}
	if f.watch {
		authFiles = newAuthFileWatches(ctx, log)
		authFiles.sync(cfg.AuthFiles)
		authChanged = authFiles.changed
	}
	go func() {
		defer close(done)
		defer cli.Close()
		defer authFiles.stop()
		// applied is the newest revision tried: the watch and SIGHUP's read both deliver, and
		// neither may step the gateway back to an older document than the other applied.
		// Started from the copy, the copy's own revision is still applied once from etcd.
		applied, fromCopy := src.rev, src.fromCache
		for {
			select {
			case <-ctx.Done():
				<-watchDone
				return
			case d := <-docs:
				if d.rev < applied || d.rev == applied && !fromCopy {
					continue // older than what SIGHUP's read applied
				}
				log.Info("etcd config changed: reloading", "key", src.key, "revision", d.rev)
				applyEtcdDoc(gw, src, d.doc, d.rev, log)
				applied, fromCopy = d.rev, false
				authFiles.sync(gw.Config().AuthFiles)
				continue
			case <-hup:
				log.Info("SIGHUP: re-reading the etcd config key", "key", src.key)
			case <-authChanged: // logged by the watch, with the file's name
			}
			rctx, cancel := context.WithTimeout(ctx, startupReadTimeout)
			doc, rev, err := etcdsource.Get(rctx, cli, src.key)
			cancel()
			if err != nil {
				log.Error("etcd config read failed; previous config still serving", "key", src.key, "error", err)
				continue
			}
			if rev < applied {
				continue
			}
			applyEtcdDoc(gw, src, doc, rev, log)
			applied, fromCopy = rev, false
			authFiles.sync(gw.Config().AuthFiles)
		}
	}()
	return done
}

type etcdDoc struct {
	doc []byte
	rev int64
}
