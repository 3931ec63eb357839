// Package consul discovers a service's endpoints from Consul's health API with blocking
// queries: one long-poll per watched service on /v1/health/service/<name>, so a change
// reaches the gateway within milliseconds while an idle service costs about one request per
// WaitTime.
package consul

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

const (
	// DefaultWaitTime is how long one blocking query may wait for a change. Consul caps it at
	// 10 minutes and adds up to WaitTime/16 of jitter itself.
	DefaultWaitTime = config.DefaultConsulWaitTime
	// MaxWaitTime is Consul's own upper bound on a blocking query's wait.
	MaxWaitTime = 10 * time.Minute
	// DefaultMinInterval spaces successive queries that return at once, so a service that
	// changes constantly (or an agent that answers a stale index immediately) costs at most
	// 20 requests per second instead of a busy loop.
	DefaultMinInterval = 50 * time.Millisecond

	registryName = "consul"

	// A blocking query normally returns by itself after WaitTime plus Consul's jitter; this
	// slack on top of that only catches a connection that died silently.
	callSlack = 15 * time.Second

	// maxIdleConns keeps a connection per watched service in the pool: every blocking query
	// holds one, and the default pool (GOMAXPROCS+1) would close and redial most of them
	// each time several watches return together.
	maxIdleConns = 1024
)

// NewClient builds a Consul API client from the gateway's `discovery.consul` section: address,
// scheme and TLS, ACL token (the config loader defaults it from CONSUL_HTTP_TOKEN) and the
// default datacenter. A nil cfg means a local agent on 127.0.0.1:8500.
func NewClient(cfg *config.Consul) (*api.Client, error) {
	if cfg == nil {
		cfg = &config.Consul{}
	}
	ac := api.DefaultConfig()
	ac.Address = cfg.Address
	if ac.Address == "" {
		ac.Address = config.DefaultConsulAddress
	}
	if cfg.Scheme != "" {
		ac.Scheme = cfg.Scheme
	}
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	ac.Datacenter = cfg.Datacenter
	if t := cfg.TLS; t != nil {
		ac.TLSConfig = api.TLSConfig{
			Address:            t.ServerName,
			CAFile:             t.CAFile,
			CertFile:           t.CertFile,
			KeyFile:            t.KeyFile,
			InsecureSkipVerify: t.InsecureSkipVerify,
		}
		if cfg.Scheme == "" {
			ac.Scheme = "https"
		}
	}
	if ac.Scheme != "http" && ac.Scheme != "https" {
		return nil, fmt.Errorf("consul: scheme %q is not http or https", ac.Scheme)
	}
	ac.Transport.MaxIdleConns = maxIdleConns
	ac.Transport.MaxIdleConnsPerHost = maxIdleConns
	cli, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s: %w", ac.Address, err)
	}
	return cli, nil
}

// Options tune a Discoverer; zero values mean the defaults.
type Options struct {
	// WaitTime bounds one blocking query; default DefaultWaitTime, at most MaxWaitTime.
	WaitTime time.Duration
	// AllowStale lets any Consul server answer, not only the leader: more read capacity,
	// answers that may lag by a few milliseconds.
	AllowStale bool
	// Metrics counts errors, rejected entries and emitted snapshots; nil counts nothing.
	Metrics *upstream.DiscoveryMetrics
	// Logger receives warnings about errors and malformed entries; default slog.Default().
	Logger *slog.Logger
	// MinInterval is the least time between two queries of one service when the first
	// returned at once; default DefaultMinInterval. A burst of changes inside it is
	// delivered as one snapshot with the latest state.
	MinInterval time.Duration
}

// Discoverer watches Consul services. It is safe for concurrent use; every Watch runs its own
// blocking-query loop.
type Discoverer struct {
	cli  *api.Client
	opts Options
}

// New returns a discoverer reading through cli.
func New(cli *api.Client, opts Options) *Discoverer {
	if opts.WaitTime <= 0 {
		opts.WaitTime = DefaultWaitTime
	}
	opts.WaitTime = min(opts.WaitTime, MaxWaitTime)
	if opts.MinInterval <= 0 {
		opts.MinInterval = DefaultMinInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Discoverer{cli: cli, opts: opts}
}

// Watch implements upstream.Discoverer: it runs the blocking-query loop for t.Service until
// ctx ends, keeping the instances that carry every one of t.Tags, in t.Datacenter (empty: the
// client's), passing only, or also in warning state when t.IncludeWarning says so.
func (d *Discoverer) Watch(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
	t = t.Clone() // the watch outlives the caller's slices
	w := &watch{
		cli:    d.cli,
		opts:   d.opts,
		target: t,
		log:    d.opts.Logger.With("registry", registryName, "service", t.Service),
	}
	return w.run(ctx, update)
}

// Open is the Consul registry's upstream.Opener.
func Open(_ context.Context, dc *config.Discovery, o upstream.OpenOptions) (upstream.Discoverer, func(), error) {
	if dc == nil || dc.Consul == nil {
		return nil, func() {}, nil
	}
	cli, err := NewClient(dc.Consul)
	if err != nil {
		return nil, func() {}, fmt.Errorf("consul: %w", err)
	}
	return New(cli, Options{WaitTime: dc.Consul.WaitTime, AllowStale: dc.Consul.AllowStale, Metrics: o.Metrics, Logger: o.Logger}), func() {}, nil
}

// fetch runs one (blocking, when index > 0) health query. The call is bounded by ctx and by
// a deadline a little past the wait Consul honours, so a dead connection cannot hang a watch.
func (w *watch) fetch(ctx context.Context, index uint64) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.WaitTime+w.opts.WaitTime/16+callSlack)
	defer cancel()
	// Consul's ?passing filter is exactly "all checks passing"; warning instances are only
	// wanted when IncludeWarning is set, and then critical ones are dropped in endpoints.
	qo := (&api.QueryOptions{
		WaitIndex:  index,
		WaitTime:   w.opts.WaitTime,
		AllowStale: w.opts.AllowStale,
		Datacenter: w.target.Datacenter,
	}).WithContext(ctx)
	if len(w.target.Tags) > 0 {
		return w.cli.Health().ServiceMultipleTags(w.target.Service, w.target.Tags, !w.target.IncludeWarning, qo)
	}
	return w.cli.Health().Service(w.target.Service, "", !w.target.IncludeWarning, qo)
}
