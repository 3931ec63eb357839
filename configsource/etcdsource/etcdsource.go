// Package etcdsource reads the gateway's whole routes.yaml document from one etcd key and
// follows its changes, for `switchyard -config etcd://HOST:PORT/KEY` and `switchyard config
// push|get`. It moves bytes only: callers validate a document with config.Parse, naming it
// with Name so errors read "etcd:/switchyard/config@rev 42:12: ...".
//
// Package config stays a leaf with no etcd client; this package is where the two meet.
package etcdsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/upstream"
)

// Scheme prefixes a -config value that names an etcd key.
const Scheme = "etcd://"

const (
	// getTimeout bounds one read of the key; a slow answer is retried after backoff.
	getTimeout = 5 * time.Second
	// maxBackoff caps the retry delay, jitter included, as the etcd discoverer does.
	maxBackoff = time.Second
)

// IsURL reports whether s names an etcd key (etcd://...).
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseURL splits etcd://HOST:PORT[,HOST:PORT...]/KEY into endpoints and key (which keeps
// its leading "/"). Credentials are refused in the URL: they belong in flags or the
// environment, never in a string that is logged or shows in `ps`.
func ParseURL(s string) (endpoints []string, key string, err error) {
	if !IsURL(s) {
		return nil, "", fmt.Errorf("%q: want etcd://HOST:PORT[,HOST:PORT]/KEY", s)
	}
	rest := strings.TrimPrefix(s, Scheme)
	hosts, path, ok := strings.Cut(rest, "/")
	if !ok || path == "" {
		return nil, "", fmt.Errorf("etcd URL %q has no key: want etcd://HOST:PORT/KEY", redact(s))
	}
	if strings.Contains(hosts, "@") {
		return nil, "", errors.New("etcd URL carries credentials: pass them as SWITCHYARD_ETCD_USERNAME/SWITCHYARD_ETCD_PASSWORD instead")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, "", fmt.Errorf("etcd URL %q: a query or fragment is not supported", s)
	}
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			return nil, "", fmt.Errorf("etcd URL %q: empty endpoint", s)
		}
		if _, err := url.Parse("http://" + h); err != nil {
			return nil, "", fmt.Errorf("etcd URL %q: endpoint %q: %v", s, h, err)
		}
		endpoints = append(endpoints, h)
	}
	return endpoints, "/" + path, nil
}

// redact drops anything before an "@" in the host part, so an error never repeats a password.
func redact(s string) string {
	rest := strings.TrimPrefix(s, Scheme)
	hosts, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(hosts, "@"); i >= 0 {
		hosts = "REDACTED@" + hosts[i+1:]
	}
	return Scheme + hosts + "/" + path
}

// Name is how a document read from key at mod revision rev is named in errors and logs.
func Name(key string, rev int64) string { return "etcd:" + key + "@rev " + strconv.FormatInt(rev, 10) }

// ErrConflict is Put's error when the key's mod revision is not the one expected: someone
// else wrote it first. Nothing was written.
var ErrConflict = errors.New("the key changed since the expected revision (someone else pushed): nothing written")

// ErrNotFound is Get's error when the key does not exist.
var ErrNotFound = errors.New("key not found")

// Get reads key: its value and mod revision (the revision that wrote it). A missing key is
// ErrNotFound, with rev the store's current revision.
func Get(ctx context.Context, cli *clientv3.Client, key string) (doc []byte, modRev int64, err error) {
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, ErrNotFound
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// Put writes doc to key if its mod revision is still expectRev (0: the key must not
// exist), in one transaction, and returns the revision of the write. A lost race is
// ErrConflict and writes nothing.
func Put(ctx context.Context, cli *clientv3.Client, key string, doc []byte, expectRev int64) (int64, error) {
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", expectRev)).
		Then(clientv3.OpPut(key, string(doc))).
		Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// Watch follows key and calls update with each value whose mod revision is above seen (the
// mod revision the caller already holds; 0 for none), in order, from one goroutine. It reads
// the key at revision R, then watches from R+1. A compacted watch re-reads the key; other
// failures (etcd down, leader lost, a cut connection) resume from the last revision seen
// after a jittered backoff capped at 1 s, as the etcd discoverer does. A deleted key is
// logged as a warning and update is not called: the caller keeps what it has. Watch returns
// ctx.Err() when ctx ends.
func Watch(ctx context.Context, cli *clientv3.Client, key string, seen int64, log *slog.Logger, update func(doc []byte, modRev int64)) error {
	if log == nil {
		log = slog.Default()
	}
	w := &watcher{cli: cli, key: key, seen: seen, log: log.With("config_key", key), update: update}
	for {
		if err := w.get(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.fail("read", err)
			if !upstream.Sleep(ctx, w.backoff()) {
				return ctx.Err()
			}
			continue
		}
		for {
			err := w.watch(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, rpctypes.ErrCompacted) {
				w.log.Info("etcd config watch: revision compacted, re-reading the key", "revision", w.rev)
				break
			}
			w.fail("watch", err)
			if !upstream.Sleep(ctx, w.backoff()) {
				return ctx.Err()
			}
		}
	}
}

type watcher struct {
	cli    *clientv3.Client
	key    string
	seen   int64 // mod revision of the last value delivered (or held by the caller)
	rev    int64 // store revision read up to
	log    *slog.Logger
	update func([]byte, int64)
	fails  int
}

func (w *watcher) backoff() time.Duration {
	d := 50 * time.Millisecond << min(w.fails, 5)
	d = min(d, maxBackoff*2/3)
	return time.Duration(float64(d) * (0.5 + rand.Float64())) // 0.5x to 1.5x: never above 1 s
}

func (w *watcher) fail(op string, err error) {
	w.fails++
	w.log.Warn("etcd config "+op+" failed; keeping the config in force", "error", err, "revision", w.rev)
}

func (w *watcher) deliver(kv *mvccpb.KeyValue) {
	if kv.ModRevision <= w.seen {
		return
	}
	w.seen = kv.ModRevision
	w.update(kv.Value, kv.ModRevision)
}

func (w *watcher) get(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	resp, err := w.cli.Get(gctx, w.key)
	if err != nil {
		return err
	}
	w.rev = resp.Header.Revision
	w.fails = 0
	if len(resp.Kvs) == 0 {
		if w.seen > 0 {
			w.log.Warn("etcd config key is missing; keeping the last config", "revision", w.rev)
		}
		return nil
	}
	w.deliver(resp.Kvs[0])
	return nil
}

func (w *watcher) watch(ctx context.Context) error {
	// WithRequireLeader: a member cut off from its quorum cancels the watch (ErrNoLeader)
	// instead of stalling silently; the retry may land on a healthy member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.cli.Watch(wctx, w.key, clientv3.WithRev(w.rev+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			if resp.CompactRevision > 0 {
				return rpctypes.ErrCompacted
			}
			return err
		}
		w.fails = 0
		for _, ev := range resp.Events {
			switch ev.Type {
			case clientv3.EventTypePut:
				w.deliver(ev.Kv)
			case clientv3.EventTypeDelete:
				w.log.Warn("etcd config key deleted; keeping the last config", "revision", ev.Kv.ModRevision)
			}
		}
		// Resume after the last event received, not the header's revision: a lagging watch
		// gets its backlog in batches whose headers already carry the store's current
		// revision, so a break between batches would otherwise skip events. Only a response
		// without events (a progress notification) moves the resume point to its header.
		if n := len(resp.Events); n > 0 {
			if r := resp.Events[n-1].Kv.ModRevision; r > w.rev {
				w.rev = r
			}
		} else if resp.Header.Revision > w.rev {
			w.rev = resp.Header.Revision
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch channel closed")
}
