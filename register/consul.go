package register

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
)

const (
	consulDefaultInterval     = 10 * time.Second
	consulDefaultTimeout      = 2 * time.Second
	consulDefaultDeregister   = time.Minute
	consulCallTimeout         = 5 * time.Second // bound on every agent call the keeper makes
	consulMinKeepInterval     = 100 * time.Millisecond
	consulDefaultKeepInterval = 5 * time.Second
)

func init() {
	openers["consul"] = openConsul
}

// consulRegistrar registers one instance with a local Consul agent and keeps it there.
// Agent registrations live in the agent's memory, so the keeper goroutine re-registers when an
// agent restart made it forget the service; for a TTL check it also passes the check.
type consulRegistrar struct {
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

// openConsul handles consul://host:port. The ACL token comes from CONSUL_HTTP_TOKEN (the
// Consul client's own environment handling, which also honours CONSUL_HTTP_SSL and friends).
func openConsul(u *url.URL, inst Instance, opts Options) (Registrar, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("registry %q: consul:// needs host:port", u.Redacted())
	}
	host, port, err := splitAddress(inst.Address)
	if err != nil {
		return nil, err
	}
	if inst.Scheme != "" && inst.Scheme != "http" && inst.Scheme != "https" {
		return nil, fmt.Errorf("instance scheme %q is not http or https", inst.Scheme)
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
	check, ttl := consulCheck(opts.Check, inst.Address)
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
	r := &consulRegistrar{
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
		r.interval = consulDefaultKeepInterval
	}
	r.interval = max(r.interval, consulMinKeepInterval)
	return r, nil
}

// consulCheck turns Options.Check into an agent check: HTTP, else TCP, else TTL, else a TCP
// check on the instance's own address so a dead process leaves the pool without the sidecar.
func consulCheck(c Check, addr string) (*api.AgentServiceCheck, time.Duration) {
	deregister := c.DeregisterCriticalAfter
	if deregister <= 0 {
		deregister = consulDefaultDeregister
	}
	interval, timeout := c.Interval, c.Timeout
	if interval <= 0 {
		interval = consulDefaultInterval
	}
	if timeout <= 0 {
		timeout = consulDefaultTimeout
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
func (r *consulRegistrar) Register(ctx context.Context) error {
	if err := r.register(ctx); err != nil {
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
func (r *consulRegistrar) Deregister(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	err := r.cli.Agent().ServiceDeregisterOpts(r.reg.ID, (&api.QueryOptions{}).WithContext(ctx))
	// Already gone (an agent restart, or the critical-check reaper) is what we wanted.
	if se := (api.StatusError{}); err != nil && !(errors.As(err, &se) && se.Code == http.StatusNotFound) {
		return fmt.Errorf("consul: deregister %s: %w", r.reg.ID, err)
	}
	r.log.Info("deregistered from consul")
	return nil
}

func (r *consulRegistrar) register(ctx context.Context) error {
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

func (r *consulRegistrar) passTTL(ctx context.Context) error {
	err := r.cli.Agent().UpdateTTLOpts(r.checkID, "", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: pass TTL check %s: %w", r.checkID, err)
	}
	return nil
}

// keep runs until ctx ends: each tick it passes the TTL check (if any) and makes sure the
// agent still knows the service, registering it again after an agent restart.
func (r *consulRegistrar) keep(ctx context.Context, done chan<- struct{}) {
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
		err := r.tick(ctx)
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

func (r *consulRegistrar) tick(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
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
