package jwt

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/config"
)

// Why a KeySet fetches itself instead of using keyfunc's HTTP storage: see doc.go.

const (
	// unknownKeyRefreshEvery bounds refreshes caused by tokens with an unknown kid, per set:
	// a storm of random kids costs the JWKS server at most one fetch per period.
	unknownKeyRefreshEvery = 10 * time.Second
	// firstRetry is the wait before retrying a failed fetch; it doubles up to the refresh
	// interval, so a JWKS that is down at start is not left alone for a whole interval.
	firstRetry = time.Second
	// The loader's defaults, used when a hand-built config leaves them zero.
	defaultRefreshInterval = 10 * time.Minute
	defaultTimeout         = 5 * time.Second
)

// KeySets holds the JWKS key sets of every jwt block of the config, shared across reloads
// so a reload that keeps a JWKS URL keeps its keys.
type KeySets struct {
	ctx       context.Context
	cancel    context.CancelFunc
	log       *slog.Logger
	metrics   *keySetMetrics
	transport *http.Transport
	// unknownKeyRefreshEvery and firstRetry are fields so tests can shorten them.
	unknownKeyRefreshEvery time.Duration
	firstRetry             time.Duration

	mu   sync.Mutex
	sets map[keySetID]*KeySet
	wg   sync.WaitGroup
}

// keySetID is what makes two jwt blocks share a key set.
type keySetID struct {
	url             string
	refreshInterval time.Duration
	timeout         time.Duration
}

// NewKeySets returns an empty registry whose key sets live until ctx ends or Close is
// called. reg may be nil (metrics not exported); log may be nil (nothing logged).
func NewKeySets(ctx context.Context, log *slog.Logger, reg prometheus.Registerer) *KeySets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &KeySets{
		ctx:     ctx,
		cancel:  cancel,
		log:     log,
		metrics: newKeySetMetrics(reg),
		transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   1,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		unknownKeyRefreshEvery: unknownKeyRefreshEvery,
		firstRetry:             firstRetry,
		sets:                   make(map[keySetID]*KeySet),
	}
}

// Get returns the key set for cfg's jwks_url, refresh_interval and timeout, starting it
// (a background goroutine that fetches at once, then every refresh_interval) if it is new.
// It never waits for a fetch. After Close it returns a set that never loads.
func (k *KeySets) Get(cfg *config.JWTAuth) *KeySet {
	id := keySetID{url: cfg.JWKSURL, refreshInterval: cfg.RefreshInterval, timeout: cfg.Timeout}
	// The loader applies these defaults; a zero here would spin or never time out.
	if id.refreshInterval <= 0 {
		id.refreshInterval = defaultRefreshInterval
	}
	if id.timeout <= 0 {
		id.timeout = defaultTimeout
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.sets[id]; s != nil {
		return s
	}
	s := newKeySet(k, id)
	if k.ctx.Err() == nil {
		k.sets[id] = s
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			s.run()
		}()
	} else {
		s.cancel()
		close(s.done)
		close(s.firstAttempt)
	}
	return s
}

// Prune stops every key set not in inUse (the sets of the table now serving) and forgets
// it; a later Get for it starts afresh. A stopped set keeps its last keys for requests
// still holding it, but never refreshes again, so Prune must not overlap a table build
// whose sets it does not list: call both from the one goroutine that reloads.
func (k *KeySets) Prune(inUse []*KeySet) {
	keep := make(map[*KeySet]bool, len(inUse))
	for _, s := range inUse {
		keep[s] = true
	}
	var stopped []*KeySet
	k.mu.Lock()
	for id, s := range k.sets {
		if !keep[s] {
			delete(k.sets, id)
			s.cancel()
			stopped = append(stopped, s)
		}
	}
	k.mu.Unlock()
	for _, s := range stopped {
		<-s.done
	}
	k.forgetMetrics(stopped)
}

// forgetMetrics drops the keys gauge of stopped sets whose URL no running set shares.
func (k *KeySets) forgetMetrics(stopped []*KeySet) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range stopped {
		shared := false
		for id := range k.sets {
			shared = shared || id.url == s.url
		}
		if !shared {
			k.metrics.forget(s.url)
		}
	}
}

// Close stops every key set and waits for their goroutines.
func (k *KeySets) Close() {
	k.cancel()
	k.wg.Wait()
	k.mu.Lock()
	var stopped []*KeySet
	for id, s := range k.sets {
		delete(k.sets, id)
		stopped = append(stopped, s)
	}
	k.mu.Unlock()
	k.forgetMetrics(stopped)
	k.transport.CloseIdleConnections()
}

// KeySet is one JWKS URL's keys, refreshed in the background.
type KeySet struct {
	url             string
	refreshInterval time.Duration
	timeout         time.Duration
	firstRetry      time.Duration
	client          *http.Client
	log             *slog.Logger
	metrics         *keySetMetrics

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	// firstAttempt is closed when the first fetch has ended, well or not, so requests
	// arriving while it runs wait for it instead of failing at start-up.
	firstAttempt chan struct{}

	current atomic.Pointer[keySnapshot] // nil until a fetch succeeds

	unknownKeyLimiter *rate.Limiter
	kick              chan struct{} // an unknown-kid refresh is wanted; buffered 1
	mu                sync.Mutex
	pending           chan struct{} // closed when the wanted refresh has ended; nil when none
}

// keySnapshot is one successfully fetched key set.
type keySnapshot struct {
	keyfunc jwtv5.Keyfunc
	keys    int
}

func newKeySet(k *KeySets, id keySetID) *KeySet {
	ctx, cancel := context.WithCancel(k.ctx)
	return &KeySet{
		url:               id.url,
		refreshInterval:   id.refreshInterval,
		timeout:           id.timeout,
		firstRetry:        k.firstRetry,
		client:            &http.Client{Transport: k.transport, Timeout: id.timeout, CheckRedirect: checkJWKSRedirect},
		log:               k.log.With("jwks_url", redactURL(id.url)),
		metrics:           k.metrics,
		ctx:               ctx,
		cancel:            cancel,
		done:              make(chan struct{}),
		firstAttempt:      make(chan struct{}),
		unknownKeyLimiter: rate.NewLimiter(rate.Every(k.unknownKeyRefreshEvery), 1),
		kick:              make(chan struct{}, 1),
	}
}

// maxJWKSRedirects bounds the redirects a JWKS fetch follows (net/http's default is 10).
const maxJWKSRedirects = 3

// checkJWKSRedirect refuses a redirect from https to http, which would fetch the keys that
// decide who is admitted over a connection anyone on the path can rewrite, and a chain of
// more than maxJWKSRedirects redirects.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxJWKSRedirects {
		return fmt.Errorf("stopped after %d redirects", maxJWKSRedirects)
	}
	if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused a redirect from https to %s", req.URL.Scheme)
	}
	return nil
}

// URL is the JWKS URL the set is fetched from.
func (s *KeySet) URL() string { return s.url }

// Loaded reports whether a fetch has ever succeeded.
func (s *KeySet) Loaded() bool { return s.current.Load() != nil }

// snapshot returns the last good keys, waiting (until ctx ends) for the first fetch if it
// is still running; nil when no fetch has succeeded.
func (s *KeySet) snapshot(ctx context.Context) *keySnapshot {
	if snap := s.current.Load(); snap != nil {
		return snap
	}
	select {
	case <-s.firstAttempt:
	case <-ctx.Done():
	}
	return s.current.Load()
}

// refreshForUnknownKey asks for a refresh because a token named a kid the set lacks, and
// waits for it (until ctx ends). It reports false without waiting when the rate limit
// refuses a new refresh; a refresh already asked for is joined rather than repeated.
func (s *KeySet) refreshForUnknownKey(ctx context.Context) bool {
	s.mu.Lock()
	wait := s.pending
	if wait == nil {
		// A stopped set's run has returned: nobody would ever close pending.
		if s.ctx.Err() != nil || !s.unknownKeyLimiter.Allow() {
			s.mu.Unlock()
			return false
		}
		select {
		case s.kick <- struct{}{}:
		default:
			// A kick is buffered while nothing is pending: run returned without taking
			// it. Never block while holding s.mu.
			s.mu.Unlock()
			return false
		}
		wait = make(chan struct{})
		s.pending = wait
	}
	s.mu.Unlock()
	select {
	case <-wait:
		return true
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return false
}

// run fetches at once, then every refresh interval (sooner after a failure) and whenever
// an unknown kid asks, until the set is stopped.
func (s *KeySet) run() {
	defer close(s.done)
	defer s.releasePending()
	backoff := s.firstRetry
	ok := s.refresh()
	close(s.firstAttempt)
	timer := time.NewTimer(s.nextWait(ok, &backoff))
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-timer.C:
			ok = s.refresh()
		case <-s.kick:
			ok = s.refresh()
			s.releasePending()
		}
		// Since Go 1.23 Reset needs no drain: a stale tick is discarded.
		timer.Reset(s.nextWait(ok, &backoff))
	}
}

// nextWait is the time until the next scheduled fetch: the refresh interval after a good
// one, else a retry delay that doubles (in *backoff) up to that interval.
func (s *KeySet) nextWait(ok bool, backoff *time.Duration) time.Duration {
	if ok {
		*backoff = s.firstRetry
		return s.refreshInterval
	}
	wait := min(*backoff, s.refreshInterval)
	*backoff = min(2**backoff, s.refreshInterval)
	return wait
}

// releasePending wakes the requests waiting for an unknown-kid refresh.
func (s *KeySet) releasePending() {
	s.mu.Lock()
	if s.pending != nil {
		close(s.pending)
		s.pending = nil
	}
	s.mu.Unlock()
}

// refresh fetches the set once; on failure the last good keys stay.
func (s *KeySet) refresh() bool {
	snap, err := fetchKeys(s.ctx, s.client, s.url, s.timeout)
	if err != nil {
		if s.ctx.Err() != nil {
			return false // stopping: not a failure of the URL
		}
		s.metrics.refreshed(false)
		s.log.Warn("jwks refresh failed; keeping the last good keys", "error", err, "loaded", s.Loaded())
		return false
	}
	// Counted before stored, so whoever sees the keys loaded sees the fetch counted.
	s.metrics.refreshed(true)
	s.metrics.keys(s.url, snap.keys)
	s.current.Store(snap)
	s.log.Debug("jwks refreshed", "keys", snap.keys)
	return true
}
