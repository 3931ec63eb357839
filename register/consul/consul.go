// Package consul registers service instances with a local Consul agent, for the gateway's
// Consul discovery: an agent service registration with a health check, kept there across
// agent restarts. Import it (blank, for register.Open's consul:// URLs, or to call New) only
// in programs that register in Consul: it links Consul's API client.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/register"
)

// Scheme is the registry URL scheme this package serves: consul://host:port, the agent's
// HTTP API.
const Scheme = "consul"

const (
	defaultCheckInterval = 10 * time.Second
	defaultCheckTimeout  = 2 * time.Second
	defaultDeregister    = time.Minute
	callTimeout          = 5 * time.Second // bound on every agent call
	minKeepInterval      = 100 * time.Millisecond
	defaultKeepInterval  = 5 * time.Second
)

func init() {
	register.AddScheme(Scheme, open)
}

// New returns a registrar for registry, a consul://host:port URL naming the local agent, as
// register.Open does once this package is linked in.
func New(registry string, inst register.Instance, opts register.Options) (register.Registrar, error) {
	return register.OpenWith(open, registry, inst, opts)
}

// registrar registers one instance with a local Consul agent and keeps it there.
// Agent registrations live in the agent's memory, so the keeper goroutine re-registers when an
// agent restart made it forget the service; for a TTL check it also passes the check.
type registrar struct {
	cli      *api.Client
	reg      *api.AgentServiceRegistration
	checkID  string
	ttl      time.Duration // > 0 for a TTL check
	interval time.Duration // how often the keeper runs
	log      *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// open is the register.OpenFunc for consul://host:port. The ACL token comes from
// CONSUL_HTTP_TOKEN (the Consul client's own environment handling, which also honours
// CONSUL_HTTP_SSL and friends).
func open(u *url.URL, inst register.Instance, opts register.Options) (register.Registrar, error) {
	if u.Scheme != Scheme {
		return nil, fmt.Errorf("registry %q: not a consul:// URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("registry %q: consul:// needs host:port", u.Redacted())
	}
	host, port, err := register.SplitAddress(inst.Address)
	if err != nil {
		return nil, err
	}

	cfg := api.DefaultConfig()
	cfg.Address = u.Host
	cli, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", u.Redacted(), err)
	}

	meta := maps.Clone(inst.Meta)
	if inst.Scheme != "" {
		if meta == nil {
			meta = map[string]string{}
		}
		// The gateway's Consul discoverer reads the upstream scheme from this meta key.
		meta["scheme"] = inst.Scheme
	}
	check, ttl := agentCheck(opts.Check, inst.Address)
	reg := &api.AgentServiceRegistration{
		ID:      inst.ID,
		Name:    inst.Service,
		Address: host,
		Port:    port,
		Tags:    append([]string(nil), inst.Tags...),
		Meta:    meta,
		// Warning 1: an instance whose check warns still gets a small share when a route
		// sets passing_only: false.
		Weights: &api.AgentWeights{Passing: inst.Weight, Warning: 1},
		Check:   check,
	}
	// With a single Check in a registration, Consul names it service:<id>.
	r := &registrar{
		cli:     cli,
		reg:     reg,
		checkID: "service:" + inst.ID,
		ttl:     ttl,
		log:     opts.Logger.With("registry", "consul", "service", inst.Service, "id", inst.ID),
	}
	// The keeper notices a forgotten registration within opts.TTL/2 (default 5 s), and a
	// TTL check is passed every TTL/2 so one late update never lets it expire.
	r.interval = opts.TTL / 2
	if ttl > 0 {
		r.interval = min(r.interval, ttl/2)
	}
	if r.interval <= 0 {
		r.interval = defaultKeepInterval
	}
	r.interval = max(r.interval, minKeepInterval)
	return r, nil
}

// agentCheck turns Options.Check into an agent check: HTTP, else TCP, else TTL, else a TCP
// check on the instance's own address so a dead process leaves the pool without the sidecar.
func agentCheck(c register.Check, addr string) (*api.AgentServiceCheck, time.Duration) {
	deregister := c.DeregisterCriticalAfter
	if deregister <= 0 {
		deregister = defaultDeregister
	}
	interval, timeout := c.Interval, c.Timeout
	if interval <= 0 {
		interval = defaultCheckInterval
	}
	if timeout <= 0 {
		timeout = defaultCheckTimeout
	}
	ac := &api.AgentServiceCheck{DeregisterCriticalServiceAfter: deregister.String()}
	switch {
	case c.HTTP != "":
		ac.HTTP, ac.Interval, ac.Timeout = c.HTTP, interval.String(), timeout.String()
	case c.TCP != "":
		ac.TCP, ac.Interval, ac.Timeout = c.TCP, interval.String(), timeout.String()
	case c.TTL > 0:
		// Passing from the start: the registrar's first update follows at once anyway,
		// and a fresh instance should not wait a round trip to take traffic.
		ac.TTL, ac.Status = c.TTL.String(), api.HealthPassing
		return ac, c.TTL
	default:
		ac.TCP, ac.Interval, ac.Timeout = addr, interval.String(), timeout.String()
	}
	return ac, 0
}

// Register writes the registration and starts the keeper. Calling it again re-registers
// without starting a second keeper.
//
// An HTTP request cannot be taken back once sent: the agent may still apply a registration
// whose answer nobody waits for any more, even after a deregistration sent later on another
// connection. So ctx does not cut the write short: it runs to its answer (within
// callTimeout), and if ctx ended meanwhile a first Register removes the registration again
// and returns ctx's error.
func (r *registrar) Register(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("consul: register %s: %w", r.reg.ID, err) // nothing sent yet
	}
	r.mu.Lock()
	kept := r.cancel != nil
	r.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	err := r.register(wctx)
	cancel()
	if ctx.Err() != nil && !kept {
		if derr := r.remove(context.WithoutCancel(ctx)); derr != nil {
			r.log.Warn("stopped during registration and could not remove it", "err", derr)
		}
		return fmt.Errorf("consul: register %s: %w", r.reg.ID, ctx.Err())
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel == nil {
		kctx, cancel := context.WithCancel(context.Background())
		r.cancel, r.done = cancel, make(chan struct{})
		go r.keep(kctx, r.done)
	}
	return nil
}

// Deregister stops the keeper first (so it cannot re-register behind our back), then removes
// the service from the agent.
func (r *registrar) Deregister(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done // at most one tick, bounded by callTimeout
	}
	if err := r.remove(ctx); err != nil {
		return err
	}
	r.log.Info("deregistered from consul")
	return nil
}

// remove deregisters the service from the agent; already gone (an agent restart, or the
// critical-check reaper) is what we wanted.
func (r *registrar) remove(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := r.cli.Agent().ServiceDeregisterOpts(r.reg.ID, (&api.QueryOptions{}).WithContext(ctx))
	if se := (api.StatusError{}); err != nil && !(errors.As(err, &se) && se.Code == http.StatusNotFound) {
		return fmt.Errorf("consul: deregister %s: %w", r.reg.ID, err)
	}
	return nil
}

// register writes the registration and, for a TTL check, passes it at once.
func (r *registrar) register(ctx context.Context) error {
	err := r.cli.Agent().ServiceRegisterOpts(r.reg, api.ServiceRegisterOpts{}.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: register %s: %w", r.reg.ID, err)
	}
	if r.ttl > 0 {
		if err := r.passTTL(ctx); err != nil {
			return err
		}
	}
	r.log.Info("registered with consul", "address", r.reg.Address, "port", r.reg.Port)
	return nil
}

// passTTL marks the TTL check passing.
func (r *registrar) passTTL(ctx context.Context) error {
	err := r.cli.Agent().UpdateTTLOpts(r.checkID, "", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: pass TTL check %s: %w", r.checkID, err)
	}
	return nil
}

// keep runs until ctx ends: each tick it passes the TTL check (if any) and makes sure the
// agent still knows the service, registering it again after an agent restart.
func (r *registrar) keep(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Like Register's write, a tick is not cut short when the keeper stops: Deregister
		// waits for it, so a re-registration in flight cannot land after the removal.
		err := r.tick(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing:
			r.log.Warn("consul registration keeper failing; will retry", "error", err, "every", r.interval)
		case err != nil:
			r.log.Debug("consul registration keeper still failing", "error", err)
		case failing:
			r.log.Info("consul registration keeper recovered")
		}
		failing = err != nil
	}
}

// tick makes one round of the keeper's checks, within callTimeout.
func (r *registrar) tick(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, _, err := r.cli.Agent().Service(r.reg.ID, (&api.QueryOptions{}).WithContext(ctx))
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		r.log.Warn("consul agent forgot the service (restart?); registering again")
		return r.register(ctx)
	}
	if err != nil {
		return fmt.Errorf("consul: read service %s: %w", r.reg.ID, err)
	}
	if r.ttl > 0 {
		return r.passTTL(ctx)
	}
	return nil
}
