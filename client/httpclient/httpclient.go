// Package httpclient lets a Go service call other services by name, http://users/path,
// with client-side balancing: an http.RoundTripper that finds each service's instances
// through the gateway's discoverers, picks one with its lb policies from an upstream.Pool,
// and sets failing instances aside with its passive health (breaker: outlier detection, and
// a refused connection set aside at once, unless passive health is disabled). It is the
// gateway's machinery without the listener.
//
//	rt, err := httpclient.New(etcd.New(cli, etcd.Options{}), httpclient.Options{Policy: config.LBLeastTime})
//	defer rt.Close()
//	client := &http.Client{Transport: rt, Timeout: 5 * time.Second}
//	resp, err := client.Get("http://users/v1/users/42")
//
// Like grpcresolver it links no registry client: the caller hands it the discoverer.
package httpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/breaker"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
)

// Defaults for fields Options leaves zero.
const (
	DefaultResolveTimeout = 10 * time.Second
	DefaultMaxServices    = 1024
	// maxAttempts bounds the endpoints one request tries when connections are refused.
	maxAttempts = 3
)

// Options tune a Transport; zero values mean the defaults.
type Options struct {
	// Policy is the lb policy by its routes.yaml name (config.LBRoundRobin, LBWeighted,
	// LBLeastConn, LBRandom, LBLeastTime); default round_robin.
	Policy string
	// PassiveHealth sets failing instances aside, as a route's passive_health block does;
	// nil means its defaults (5 consecutive 5xx or failures eject for 30 s times the times
	// ejected, at most 300 s). While it is enabled, a refused connection also sets an
	// instance aside at once (1 s, doubling to 30 s while refusals go on); with Enabled
	// false nothing is set aside, and a refused connection is only retried elsewhere.
	PassiveHealth *config.PassiveHealth
	// Targets refines what is watched for a host (Consul tags, datacenter); by default a
	// host is the service of that name, lower-cased. Keys are hosts as they appear in
	// request URLs, compared without regard to case.
	Targets map[string]upstream.Target
	// Base sends the requests once an instance is chosen; default a clone of
	// http.DefaultTransport, closed by Close. When Base is an *http.Transport, requests to
	// https instances go through a clone of it per service whose TLS ServerName is the
	// service name (unless Base's TLSClientConfig sets one), so an instance's certificate is
	// verified against the name the caller used, as for the gateway's routes, not against
	// the IP address the registry gives. Any other RoundTripper gets the request with the
	// instance's address in the URL and must set the TLS server name itself.
	Base http.RoundTripper
	// ResolveTimeout bounds how long the first request to a service waits for the
	// registry's first answer (less if the request's context ends first); default
	// DefaultResolveTimeout.
	ResolveTimeout time.Duration
	// MaxServices bounds how many services one Transport watches, so request URLs built
	// from outside input cannot make it watch without end; default DefaultMaxServices.
	MaxServices int
	// Logger receives ejections and registry warnings; default slog.Default().
	Logger *slog.Logger
}

// Transport is an http.RoundTripper for URLs whose host is a service name. It watches a
// service from the first request to it until Close.
type Transport struct {
	discoverer upstream.Discoverer
	builder    upstream.PickerBuilder
	opts       Options
	ownBase    *http.Transport // the default Base, closed by Close

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	services map[string]*service
	closed   bool
}

// service is one watched service: its pool, whether the registry has answered, and what
// sends its requests to https instances.
type service struct {
	pool     *upstream.Pool
	ready    chan struct{}   // closed at the first snapshot
	tlsBase  *http.Transport // Base's clone verifying the service name; nil: Base is no *http.Transport
	sendTLS  http.RoundTripper
	sendHTTP http.RoundTripper
}

// ErrClosed is returned by RoundTrip after Close.
var ErrClosed = errors.New("httpclient: transport closed")

// New returns a Transport that discovers services through d. It fails on an unknown policy.
func New(d upstream.Discoverer, opts Options) (*Transport, error) {
	builder, err := lb.New(opts.Policy)
	if err != nil {
		return nil, fmt.Errorf("httpclient: %w", err)
	}
	if opts.PassiveHealth == nil {
		opts.PassiveHealth = &config.PassiveHealth{}
	}
	if opts.ResolveTimeout <= 0 {
		opts.ResolveTimeout = DefaultResolveTimeout
	}
	if opts.MaxServices <= 0 {
		opts.MaxServices = DefaultMaxServices
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	targets := make(map[string]upstream.Target, len(opts.Targets))
	for host, target := range opts.Targets {
		targets[strings.ToLower(host)] = target.Clone() // the caller may go on using its map and slices
	}
	opts.Targets = targets
	t := &Transport{discoverer: d, builder: builder, opts: opts, services: make(map[string]*service)}
	if opts.Base == nil {
		t.ownBase = http.DefaultTransport.(*http.Transport).Clone()
		t.opts.Base = t.ownBase
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Close stops every watch and waits for it, and closes the idle connections of the default
// Base and of the per-service TLS clones. Requests still running finish on the instances
// they picked.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	services := make([]*service, 0, len(t.services))
	for _, svc := range t.services {
		services = append(services, svc)
	}
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	if t.ownBase != nil {
		t.ownBase.CloseIdleConnections()
	}
	for _, svc := range services {
		if svc.tlsBase != nil {
			svc.tlsBase.CloseIdleConnections()
		}
	}
}

// Pool returns the pool of the service named host once it is watched, else nil: its
// current instances and their state, for diagnostics.
func (t *Transport) Pool(host string) *upstream.Pool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.services[host]; s != nil {
		return s.pool
	}
	return nil
}

// RoundTrip implements http.RoundTripper: it picks an instance of the service named by the
// URL's host and sends the request there, with the service name as Host. A refused
// connection is retried on another instance (nothing was sent) when the body can be sent
// again; any other failure is returned as it is, for the caller's own retry policy.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(r)
	if err != nil && r.Body != nil {
		_ = r.Body.Close() // the RoundTripper contract: the body is closed, even on errors
	}
	return resp, err
}

func (t *Transport) roundTrip(r *http.Request) (*http.Response, error) {
	if r.URL == nil || r.URL.Host == "" {
		return nil, errors.New("httpclient: request URL has no host (want http://SERVICE/...)")
	}
	// A colon with no port after it ("users:") is refused too: it would watch a service
	// named "users:".
	if strings.Contains(r.URL.Host, ":") {
		return nil, fmt.Errorf("httpclient: %q: a service URL takes no port (the registry gives each instance's)", r.URL.Host)
	}
	if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
		return nil, fmt.Errorf("httpclient: scheme %q: want http://SERVICE/... (each instance's registration says whether it serves https)", r.URL.Scheme)
	}
	// Host names are case-insensitive: http://Users/ and http://users/ are one service,
	// watched under the lower-case name.
	host := strings.ToLower(r.URL.Host)
	svc, err := t.service(r.Context(), host)
	if err != nil {
		return nil, err
	}
	var (
		ex      upstream.Excluded
		refused error // the last refused connection, reported if no instance is left to try
	)
	for attempt := 1; ; attempt++ {
		m, err := svc.pool.Pick(r, ex)
		if err != nil {
			if refused != nil {
				return nil, refused
			}
			return nil, fmt.Errorf("httpclient: %s: %w", host, err)
		}
		// A shallow copy with its own URL, as Request.WithContext makes: the header is
		// shared, read-only here, and not worth a deep copy per request.
		out := new(http.Request)
		*out = *r
		u := *r.URL
		u.Scheme, u.Host = m.Scheme, m.Key
		out.URL = &u
		if out.Host == "" {
			out.Host = host
		}
		if attempt > 1 && r.Body != nil && r.Body != http.NoBody {
			if out.Body, err = r.GetBody(); err != nil {
				m.State.Done(upstream.Outcome{Err: upstream.ErrCanceled})
				return nil, fmt.Errorf("httpclient: %s: body for a retry: %w", host, err)
			}
		}
		start := time.Now()
		send := svc.sendHTTP
		if m.Scheme == "https" {
			send = svc.sendTLS
		}
		resp, err := send.RoundTrip(out)
		latency := time.Since(start)
		if err == nil {
			resp.Body = &doneBody{ReadCloser: resp.Body, ctx: r.Context(), state: m.State, outcome: upstream.Outcome{Status: resp.StatusCode, Latency: latency}}
			return resp, nil
		}
		kind := classify(r.Context(), err)
		m.State.Done(upstream.Outcome{Err: kind, Latency: latency})
		err = fmt.Errorf("httpclient: %s: %s: %w", host, m.Key, err)
		replayable := r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
		if kind != upstream.ErrConnect || !replayable || attempt == maxAttempts {
			return nil, err
		}
		refused = err
		ex.Add(m.State)
	}
}

// service returns the watched service named host, starting its watch on first use and
// waiting for the registry's first answer.
func (t *Transport) service(ctx context.Context, host string) (*service, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	svc := t.services[host]
	if svc == nil {
		if len(t.services) >= t.opts.MaxServices {
			t.mu.Unlock()
			return nil, fmt.Errorf("httpclient: %s: already watching %d services (Options.MaxServices)", host, len(t.services))
		}
		svc = t.watch(host)
		t.services[host] = svc
	}
	t.mu.Unlock()

	select {
	case <-svc.ready:
		return svc, nil // the usual case, without a timer
	default:
	}
	timer := time.NewTimer(t.opts.ResolveTimeout)
	defer timer.Stop()
	select {
	case <-svc.ready:
		return svc, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("httpclient: %s: waiting for the registry: %w", host, ctx.Err())
	case <-timer.C:
		return nil, fmt.Errorf("httpclient: %s: the registry did not answer within %v", host, t.opts.ResolveTimeout)
	case <-t.ctx.Done():
		return nil, ErrClosed
	}
}

// watch starts following host's service; the caller holds t.mu.
func (t *Transport) watch(host string) *service {
	target, ok := t.opts.Targets[host]
	if !ok {
		target = upstream.Target{Service: host}
	}
	health := breaker.NewPolicy(host, t.opts.PassiveHealth, nil, nil, t.opts.Logger)
	svc := &service{
		pool:     upstream.NewPool(host, t.builder, upstream.PoolOptions{Health: health}),
		ready:    make(chan struct{}),
		sendHTTP: t.opts.Base,
		sendTLS:  t.opts.Base,
	}
	if base, ok := t.opts.Base.(*http.Transport); ok {
		// The URL carries the instance's address, so without a ServerName Go would verify
		// the certificate against that IP (and send it as SNI).
		svc.tlsBase = base.Clone()
		if svc.tlsBase.TLSClientConfig == nil {
			svc.tlsBase.TLSClientConfig = &tls.Config{}
		}
		if svc.tlsBase.TLSClientConfig.ServerName == "" {
			svc.tlsBase.TLSClientConfig.ServerName = host
		}
		svc.sendTLS = svc.tlsBase
	}
	var once sync.Once
	t.wg.Go(func() {
		_ = t.discoverer.Watch(t.ctx, target, func(s upstream.Snapshot) {
			svc.pool.Update(s)
			once.Do(func() { close(svc.ready) })
		})
	})
	return svc
}

// classify names how a request failed, as the gateway's proxy does for the health layer. The
// caller's deadline passing before the response headers (http.Client.Timeout included) is
// the instance's timeout, as the route timeout is in the gateway: otherwise a hung instance
// would never be ejected. A caller that cancels is never held against the instance.
func classify(ctx context.Context, err error) upstream.ErrorKind {
	var opErr *net.OpError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return upstream.ErrTimeout
	case ctx.Err() != nil:
		return upstream.ErrCanceled
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return upstream.ErrConnect
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return upstream.ErrTimeout
	}
	return upstream.ErrReset
}

// doneBody ends the request's count on its instance when the body is closed or read to
// the end, so least_conn and least_time see requests whose bodies are still streaming.
type doneBody struct {
	io.ReadCloser
	ctx     context.Context // the request's: a caller that gave up mid-body never counts against the instance
	state   *upstream.EndpointState
	outcome upstream.Outcome
	once    sync.Once
}

func (b *doneBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.outcome.Err = upstream.ErrReset // broken mid-body
		if b.ctx.Err() != nil {
			b.outcome.Err = upstream.ErrCanceled
		}
	}
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.done()
	return err
}

func (b *doneBody) done() { b.once.Do(func() { b.state.Done(b.outcome) }) }
