package upstream

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// EndpointState is the per-endpoint state that outlives snapshots: an endpoint re-announced
// by its registry keeps it, and a request still running on a removed endpoint holds a pointer
// to it, so its in-flight count is still decremented correctly.
type EndpointState struct {
	key      string
	inflight atomic.Int64
	measure  bool     // Done folds latencies into latency; set before the state is shared
	latency  peakEWMA // only with measure
	health   Health   // nil: always available
}

// NewEndpointState returns state for key; health may be nil.
func NewEndpointState(key string, health Health) *EndpointState {
	return &EndpointState{key: key, health: health}
}

// NewMeasuredEndpointState is NewEndpointState for a policy that reads Latency: its Done
// keeps the peak-EWMA latency up to date. A Pool whose builder is a LatencyReader makes
// its states measured in the same way (Pool.Update sets measure directly).
func NewMeasuredEndpointState(key string, health Health) *EndpointState {
	return &EndpointState{key: key, health: health, measure: true}
}

// Key is the endpoint's host:port.
func (s *EndpointState) Key() string { return s.key }

// InFlight is the number of requests currently running on the endpoint.
func (s *EndpointState) InFlight() int64 { return s.inflight.Load() }

// Health is the endpoint's health tracker, or nil when the pool has no health policy.
func (s *EndpointState) Health() Health { return s.health }

// Available reports whether the health layer lets the endpoint take traffic now.
func (s *EndpointState) Available() bool { return s.health == nil || s.health.Available() }

// TryAcquire admits one request to the endpoint and counts it in flight. Pickers call it on
// the member they chose; on false they must try another.
func (s *EndpointState) TryAcquire() bool {
	if s.health != nil && !s.health.Admit() {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Done ends a request admitted by TryAcquire: it decrements in-flight, folds the outcome's
// latency, or a failure's penalty, into the endpoint's peak-EWMA (for a measured state; see
// observedLatency) and reports the outcome to the health layer.
func (s *EndpointState) Done(o Outcome) {
	if s.measure {
		s.latency.observeOutcome(o)
	}
	s.inflight.Add(-1)
	if s.health != nil {
		s.health.Report(o)
	}
}

// Member is one endpoint of the current snapshot joined with its long-lived state.
type Member struct {
	Endpoint
	State *EndpointState
}

// View is one immutable generation of a pool: the snapshot, its members and their picker.
type View struct {
	Snapshot  Snapshot
	Members   []Member
	Picker    Picker
	Version   uint64    // increases by one per applied update
	UpdatedAt time.Time // when the update was applied
}

// PoolOptions configure a Pool.
type PoolOptions struct {
	// Health creates per-endpoint health; nil means every endpoint is always available.
	Health HealthPolicy
	// RetainRemoved is how long the state of a removed endpoint is kept, so an endpoint
	// that comes back (a flapping registration) keeps its in-flight count, ejection and
	// breaker. Zero means 5 minutes; negative releases state at once.
	RetainRemoved time.Duration
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Pool is the live endpoint set of one route's service. Update runs off the request path
// (from a discoverer); Pick reads the current View through an atomic pointer and never locks.
type Pool struct {
	name    string
	builder PickerBuilder
	opts    PoolOptions
	measure bool // the builder reads latency: Update makes measured states, as NewMeasuredEndpointState does

	mu      sync.Mutex // serialises Update; guards states and retired
	states  map[string]*EndpointState
	retired map[string]retiredState
	version uint64

	view atomic.Pointer[View]
}

type retiredState struct {
	state *EndpointState
	since time.Time
}

// NewPool returns an empty pool that has not yet received a snapshot (Ready is false and
// every Pick fails with ErrNoEndpoint until the first Update).
func NewPool(name string, builder PickerBuilder, opts PoolOptions) *Pool {
	if opts.RetainRemoved == 0 {
		opts.RetainRemoved = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reader, ok := builder.(LatencyReader)
	return &Pool{
		name:    name,
		builder: builder,
		opts:    opts,
		measure: ok && reader.ReadsLatency(),
		states:  make(map[string]*EndpointState),
		retired: make(map[string]retiredState),
	}
}

// Name is the pool's name (the route's service, or the route prefix for static upstreams).
func (p *Pool) Name() string { return p.name }

// Ready reports whether the pool has received its first snapshot.
func (p *Pool) Ready() bool { return p.view.Load() != nil }

// View returns the current generation, or nil before the first snapshot.
func (p *Pool) View() *View { return p.view.Load() }

// Pick chooses an endpoint for r, avoiding ex. See Picker.
func (p *Pool) Pick(r *http.Request, ex Excluded) (*Member, error) {
	v := p.view.Load()
	if v == nil {
		return nil, ErrNoEndpoint
	}
	return v.Picker.Pick(r, ex)
}

// Update applies a new snapshot: state is reused for endpoints whose key survives (or comes
// back within RetainRemoved), created for new ones, and retired for removed ones; then a new
// picker is built and swapped in atomically. Requests already running keep the view they
// picked from.
func (p *Pool) Update(s Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Now()

	eps := s.Endpoints()
	members := make([]Member, len(eps))
	next := make(map[string]*EndpointState, len(eps))
	for i, e := range eps {
		st := p.states[e.Key]
		if st == nil {
			if r, ok := p.retired[e.Key]; ok {
				st = r.state
				delete(p.retired, e.Key)
			} else {
				var h Health
				if p.opts.Health != nil {
					h = p.opts.Health.NewHealth(e.Key)
				}
				st = &EndpointState{key: e.Key, health: h, measure: p.measure}
			}
		}
		next[e.Key] = st
		members[i] = Member{Endpoint: e, State: st}
	}
	for k, st := range p.states {
		if _, ok := next[k]; !ok && p.opts.RetainRemoved > 0 {
			p.retired[k] = retiredState{state: st, since: now}
		}
	}
	for k, r := range p.retired {
		if now.Sub(r.since) >= p.opts.RetainRemoved {
			delete(p.retired, k)
		}
	}
	p.states = next

	if p.opts.Health != nil {
		hs := make([]Health, len(members))
		for i := range members {
			hs[i] = members[i].State.health
		}
		p.opts.Health.SetMembers(hs)
	}
	p.version++
	p.view.Store(&View{
		Snapshot:  s,
		Members:   members,
		Picker:    p.builder.Build(members),
		Version:   p.version,
		UpdatedAt: now,
	})
}

// RetainedCount is the number of removed endpoints whose state is still kept; for tests and
// the admin API.
func (p *Pool) RetainedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.retired)
}
