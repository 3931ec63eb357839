package consul

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/upstream"
)

const (
	// Errors back off from backoffInitial towards backoffMax (±50% jitter, so at most
	// ~1 s): short enough that a restarted agent is caught up with within a second, long
	// enough that a dead agent sees a handful of requests per second per service.
	backoffInitial = 50 * time.Millisecond
	backoffMax     = 700 * time.Millisecond
)

// minIntervalBurst is how many back-to-back immediate returns are served before MinInterval
// spacing applies.
const minIntervalBurst = 3

// watch is one service's blocking-query loop.
type watch struct {
	cli    *api.Client
	opts   Options
	target upstream.Target
	log    *slog.Logger
}

// run follows Consul's blocking-query rules
// (https://developer.hashicorp.com/consul/api-docs/features/blocking): reset the index when
// it goes backwards, never block on index 0, rate-limit calls that return at once, back off
// on errors. Errors never clear the pool: the last good snapshot stays in force (fabio#861
// dropped routes on a failed read; traefik#3944 stopped updating after one 500).
func (w *watch) run(ctx context.Context, update func(upstream.Snapshot)) error {
	var (
		index    uint64
		last     upstream.Snapshot
		emitted  bool
		failures int
	)
	// A small burst lets a change that follows another at once (deregister right after a
	// register, a rolling restart) be read without waiting; the sustained rate of calls
	// that return at once stays at one per MinInterval, so an index stuck at 0 or a
	// flapping check cannot turn the watch into a hot loop against the agent.
	limiter := rate.NewLimiter(rate.Every(w.opts.MinInterval), minIntervalBurst)
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     backoffInitial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         backoffMax,
	}
	bo.Reset()
	for {
		// A call that blocked for a while finds a token at once; only back-to-back
		// immediate returns wait here.
		if err := limiter.Wait(ctx); err != nil {
			return ctx.Err()
		}
		entries, meta, err := w.fetch(ctx, index)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failures++
			w.opts.Metrics.Error(registryName, w.target.Service)
			delay := bo.NextBackOff()
			// One warning per outage; the rest are counted and logged at debug so a
			// long outage with many watched services does not flood the log.
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			w.log.Log(ctx, level, "consul query failed; keeping last endpoints",
				"error", err, "failures", failures, "retry_in", delay, "endpoints", last.Len())
			// The agent may come back with lower indexes (a restart, a new leader without
			// the old state): blocking on the old index would then wait a full WaitTime
			// before noticing. Re-read from scratch instead.
			index = 0
			if !upstream.Sleep(ctx, delay) {
				return ctx.Err()
			}
			continue
		}
		if failures > 0 {
			w.log.Info("consul query recovered", "failures", failures)
			failures = 0
		}
		bo.Reset()
		index = nextIndex(index, meta.LastIndex)

		snap := upstream.NewSnapshot(w.endpoints(entries))
		if emitted && snap.Equal(last) {
			continue // a wake-up for another service's or a check output's change
		}
		last, emitted = snap, true
		w.opts.Metrics.Updated(registryName, w.target.Service)
		update(snap)
	}
}

// nextIndex is the index for the next blocking query after a response carrying got, given
// the index the request was made with.
func nextIndex(prev, got uint64) uint64 {
	if got < prev {
		// The index went backwards (snapshot restore, new cluster): start over, or the
		// next query would block until the new cluster catches up with the old index.
		return 0
	}
	// An index of 0 would return at once forever; 1 is always safe to block on.
	return max(got, 1)
}

// endpoints turns health entries into endpoints, skipping (and counting) malformed ones.
func (w *watch) endpoints(entries []*api.ServiceEntry) []upstream.Endpoint {
	eps := make([]upstream.Endpoint, 0, len(entries))
	for _, e := range entries {
		ep, ok, err := toEndpoint(e, !w.target.IncludeWarning)
		if err != nil {
			w.opts.Metrics.Rejected(registryName, w.target.Service)
			w.log.Warn("skipping malformed consul entry", "error", err, "id", serviceID(e))
			continue
		}
		if ok {
			eps = append(eps, ep)
		}
	}
	return eps
}

// toEndpoint converts one health entry. ok is false for an instance that is well formed but
// not wanted (critical or in maintenance); err is set for a malformed one.
func toEndpoint(e *api.ServiceEntry, passingOnly bool) (ep upstream.Endpoint, ok bool, err error) {
	if e == nil || e.Service == nil {
		return ep, false, errMalformed("entry has no service")
	}
	s := e.Service
	weight := s.Weights.Passing
	if !passingOnly {
		// Consul already dropped non-passing instances for a ?passing query; here the
		// filter is ours: warning stays (at its own weight), anything worse goes.
		switch e.Checks.AggregatedStatus() {
		case api.HealthPassing:
		case api.HealthWarning:
			weight = s.Weights.Warning
		default:
			return ep, false, nil
		}
	}
	addr := s.Address
	if addr == "" && e.Node != nil {
		addr = e.Node.Address
	}
	key, err := upstream.JoinHostPort(strings.Trim(addr, "[]"), s.Port)
	if err != nil {
		return ep, false, err
	}
	scheme := s.Meta["scheme"]
	if scheme != "" && scheme != "http" && scheme != "https" {
		return ep, false, errMalformed("meta scheme " + scheme + " is not http or https")
	}
	var meta map[string]string
	if len(s.Meta) > 0 || len(s.Tags) > 0 {
		meta = maps.Clone(s.Meta)
		if meta == nil {
			meta = make(map[string]string, 1)
		}
		// Tags ride along for the admin API and logs; a service's own "tags" meta wins.
		if _, taken := meta["tags"]; !taken && len(s.Tags) > 0 {
			meta["tags"] = strings.Join(s.Tags, ",")
		}
	}
	return upstream.Endpoint{Key: key, Scheme: scheme, Weight: weight, Meta: meta}, true, nil
}

type errMalformed string

func (e errMalformed) Error() string { return string(e) }

func serviceID(e *api.ServiceEntry) string {
	if e == nil || e.Service == nil {
		return ""
	}
	return e.Service.ID
}
