package consul

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/upstream"
)

const (
	// Errors back off from backoffInitial towards backoffMax (±50% jitter, so at most
	// ~1 s): short enough that a restarted agent is caught up with within a second, long
	// enough that a dead agent sees a handful of requests per second per query.
	backoffInitial = 50 * time.Millisecond
	backoffMax     = 700 * time.Millisecond
)

// minIntervalBurst is how many back-to-back immediate returns are served before MinInterval
// spacing applies.
const minIntervalBurst = 3

// watch is one Watch: it turns its service's shared reads into its own Target's snapshots.
type watch struct {
	opts   Options
	target upstream.Target
	log    *slog.Logger
}

// run delivers a snapshot whenever the feed has a new read of the service whose filtered
// endpoint set differs from the last one delivered. It runs on the Watch's own goroutine, so
// update is never called concurrently with itself and a slow update holds up no other Watch.
func (w *watch) run(ctx context.Context, f *feed, update func(upstream.Snapshot)) error {
	sub := f.subscribe(w.target.Service)
	defer f.unsubscribe(sub)
	var (
		last    upstream.Snapshot
		emitted bool
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.notify:
		}
		snap := upstream.NewSnapshot(w.endpoints(f.entries(sub)))
		if emitted && snap.Equal(last) {
			continue // a change this Target filters out (another tag, a critical instance)
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
		if !w.wanted(e) {
			continue
		}
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

// wanted filters the service's full read as Consul's query parameters would: every target
// tag present (compared case-insensitively, as Consul's ?tag filter does) and, for passing
// only, every check passing (Consul's ?passing). Malformed entries pass on to toEndpoint,
// which counts them.
func (w *watch) wanted(e *api.ServiceEntry) bool {
	if e == nil || e.Service == nil {
		return true
	}
	for _, want := range w.target.Tags {
		if !slices.ContainsFunc(e.Service.Tags, func(tag string) bool { return strings.EqualFold(tag, want) }) {
			return false
		}
	}
	return w.target.IncludeWarning || e.Checks.AggregatedStatus() == api.HealthPassing
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
		// wanted already dropped non-passing instances for passing only; here warning
		// stays (at its own weight), anything worse goes.
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
	out := upstream.Endpoint{Key: key, Scheme: scheme, Weight: weight, Meta: meta}
	if err := upstream.EndpointProtocol(&out); err != nil {
		return ep, false, errMalformed(err.Error())
	}
	return out, true, nil
}

// errMalformed is why an entry from Consul was refused (counted, logged and skipped).
type errMalformed string

// Error returns the reason the entry was refused.
func (e errMalformed) Error() string { return string(e) }

// serviceID returns e's service ID for logs, "" when e has no service.
func serviceID(e *api.ServiceEntry) string {
	if e == nil || e.Service == nil {
		return ""
	}
	return e.Service.ID
}
