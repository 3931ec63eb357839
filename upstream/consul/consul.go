// Package consul discovers services' endpoints from Consul's health API through a bounded
// number of connections, whatever the number of watched services.
//
// Every datacenter a route reads gets one shared feed (see feed.go), started by the first
// Watch of that datacenter and stopped when the last one ends. The feed learns which services
// changed from three blocking queries, /v1/health/state/any (every check),
// /v1/catalog/services (every service name and its tags) and /v1/catalog/nodes (every
// node's address), and re-reads only those with a
// non-blocking /v1/health/service/<name> through a fixed pool of readers. Each Watch filters
// its service's shared read by its own Target (tags, passing only or warning too). So a
// datacenter costs 3 blocking connections plus Options.Readers, where one long-poll per
// service would hit Consul's default limit of 200 connections per client address at about
// 190 services.
package consul

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

const (
	// DefaultWaitTime is how long one blocking query may wait for a change, and how often a
	// feed verifies every watched service with a full sweep. Consul caps the wait at 10
	// minutes and adds up to WaitTime/16 of jitter itself.
	DefaultWaitTime = config.DefaultConsulWaitTime
	// MaxWaitTime is Consul's own upper bound on a blocking query's wait.
	MaxWaitTime = 10 * time.Minute
	// DefaultMinInterval spaces successive queries that return at once, so a service that
	// changes constantly (or an agent that answers a stale index immediately) costs at most
	// 20 requests per second instead of a busy loop.
	DefaultMinInterval = 50 * time.Millisecond
	// DefaultReaders is how many service reads one datacenter's feed runs at once.
	DefaultReaders = 4
	// MaxReaders bounds Options.Readers so that a few datacenters stay within maxConns.
	MaxReaders = 16

	registryName = "consul"

	// A blocking query normally returns by itself after WaitTime plus Consul's jitter; this
	// slack on top of that only catches a connection that died silently.
	callSlack = 15 * time.Second
	// readTimeout bounds one non-blocking service read.
	readTimeout = 10 * time.Second

	// maxConns caps the client's connections to the agent. A feed uses 3 + Readers by
	// construction (3 blocking queries, one request per reader); the cap enforces that
	// whatever happens, far below Consul's default of 200 per client address, while leaving
	// room for several datacenters (each adds its own 3 + Readers).
	maxConns = 64
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
		// ac.TLSConfig holds CONSUL_CACERT, CONSUL_CLIENT_CERT and the like (api.DefaultConfig
		// reads them): the section overrides what it sets and keeps the rest, as
		// api.NewClient would.
		overrideIfSet(&ac.TLSConfig.Address, t.ServerName)
		overrideIfSet(&ac.TLSConfig.CAFile, t.CAFile)
		overrideIfSet(&ac.TLSConfig.CertFile, t.CertFile)
		overrideIfSet(&ac.TLSConfig.KeyFile, t.KeyFile)
		ac.TLSConfig.InsecureSkipVerify = ac.TLSConfig.InsecureSkipVerify || t.InsecureSkipVerify
		if cfg.Scheme == "" {
			ac.Scheme = "https"
		}
	}
	if ac.Scheme != "http" && ac.Scheme != "https" {
		return nil, fmt.Errorf("consul: scheme %q is not http or https", ac.Scheme)
	}
	// Every connection the feeds use is kept idle between uses (the default pool of
	// GOMAXPROCS+1 would close and redial readers' connections), and none beyond the cap
	// is ever opened.
	ac.Transport.MaxConnsPerHost = maxConns
	ac.Transport.MaxIdleConns = maxConns
	ac.Transport.MaxIdleConnsPerHost = maxConns
	// Every change brings the whole checks list (about 450 KB at 1,000 services). Across a
	// network gzip shrinks it 25-fold; from the local agent, compressing and inflating it
	// only adds about 5 ms per change (BenchmarkChecksQuery: 15 ms with, 10 without).
	ac.Transport.DisableCompression = isLocalAgent(ac.Address)
	// The same client api.NewClient would build, with the checks feed's answers decoded by
	// leanChecksTransport. (For a unix:// address api.NewClient builds its own instead: the
	// feed then falls back to the client's decoding.)
	hc, err := api.NewHttpClient(ac.Transport, ac.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s: %w", ac.Address, err)
	}
	hc.Transport = leanChecksTransport{next: hc.Transport}
	ac.HttpClient = hc
	cli, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s: %w", ac.Address, err)
	}
	return cli, nil
}

// overrideIfSet sets *dst to v unless v is empty (unset in the config).
func overrideIfSet(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// isLocalAgent says whether address (host:port or unix://path) is on this machine.
func isLocalAgent(address string) bool {
	if strings.HasPrefix(address, "unix://") {
		return true
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address // no port
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// Options tune a Discoverer; zero values mean the defaults.
type Options struct {
	// WaitTime bounds one blocking query and spaces full verification sweeps; default
	// DefaultWaitTime, at most MaxWaitTime.
	WaitTime time.Duration
	// AllowStale lets any Consul server answer, not only the leader: more read capacity,
	// answers that may lag by a few milliseconds. A read older than the one delivered is
	// never delivered: the service is read again until a server has caught up.
	AllowStale bool
	// Metrics counts errors, rejected entries and emitted snapshots; nil counts nothing.
	Metrics *upstream.DiscoveryMetrics
	// Logger receives warnings about errors and malformed entries; default slog.Default().
	Logger *slog.Logger
	// MinInterval is the least time between two queries that return at once: of one
	// service's reads, and of each blocking query; default DefaultMinInterval. A burst of
	// changes inside it is delivered as one snapshot with the latest state.
	MinInterval time.Duration
	// Readers is how many service reads a datacenter's feed runs at once (each holds one
	// connection while it runs); default DefaultReaders, at most MaxReaders.
	Readers int
}

// Discoverer watches Consul services. It is safe for concurrent use; all Watches of one
// datacenter share one feed.
type Discoverer struct {
	cli  *api.Client
	opts Options

	mu    sync.Mutex
	feeds map[string]*feed // by datacenter ("" is the client's own)
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
	if opts.Readers <= 0 {
		opts.Readers = DefaultReaders
	}
	opts.Readers = min(opts.Readers, MaxReaders)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Discoverer{cli: cli, opts: opts, feeds: make(map[string]*feed)}
}

// Watch implements upstream.Discoverer: until ctx ends it delivers t.Service's instances that
// carry every one of t.Tags (case-insensitively, as Consul's tag filter), in t.Datacenter
// (empty: the client's), passing only, or also in warning state when t.IncludeWarning says so.
func (d *Discoverer) Watch(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
	t = t.Clone() // the watch outlives the caller's slices
	f := d.acquire(t.Datacenter)
	defer d.release(f)
	w := &watch{
		opts:   d.opts,
		target: t,
		log:    d.opts.Logger.With("registry", registryName, "service", t.Service),
	}
	return w.run(ctx, f, update)
}

// acquire returns the datacenter's feed, starting it for the first Watch.
func (d *Discoverer) acquire(datacenter string) *feed {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.feeds[datacenter]
	if f == nil {
		f = startFeed(d.cli, d.opts, datacenter)
		d.feeds[datacenter] = f
	}
	f.refs++
	return f
}

// release drops a Watch's hold on its feed and stops the feed after the last one, waiting
// for its goroutines so that none outlives the last Watch.
func (d *Discoverer) release(f *feed) {
	d.mu.Lock()
	f.refs--
	last := f.refs == 0
	if last {
		delete(d.feeds, f.datacenter)
	}
	d.mu.Unlock()
	if last {
		f.stop()
	}
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
