package breaker

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// maxConcurrentProbes bounds how many endpoints of one pool are probed at once, so a large
// pool's check round does not open hundreds of connections in the same instant.
const maxConcurrentProbes = 8

// maxDrainBytes is how much of a probe's response body is read so the connection can be
// reused; a health endpoint streaming more than this is cut off.
const maxDrainBytes = 64 << 10

// ActiveChecker probes every endpoint of one pool on an interval and marks endpoints
// unhealthy after UnhealthyThreshold failures in a row, healthy again after
// HealthyThreshold successes. Results go to each endpoint's upstream.Health (CheckResult), the
// same state passive health uses when the pool's policy comes from this package (see
// NewRoutePolicy); a wrapping policy's Health values pass them on.
// Endpoints start healthy: a gateway that starts (or reloads) must not answer 503 until a
// first round of checks has passed.
type ActiveChecker struct {
	pool               *upstream.Pool
	path               string
	interval           time.Duration
	timeout            time.Duration
	healthyThreshold   int
	unhealthyThreshold int
	expectStatus       []int
	client             *http.Client
	ownTransport       *http.Transport // closed when Run returns; nil when the caller gave a client
	probe              Probe           // the HTTP GET of path unless WithProbe replaced it
	protocol           upstream.Protocol
	log                *slog.Logger
	metrics            *Metrics
	route              string
}

// NewActiveChecker returns a checker for pool. hc is completed with config.WithDefaults; each
// probe is a GET of hc.Path through client. hc.GRPC checks need their probe plugged in with
// WithProbe (package breaker/grpcprobe: this package links no gRPC); until then every probe
// fails, saying so, rather than GETting a path the configuration never named.
// client may be nil (a private transport is used and its connections closed when Run
// returns); a given client is copied so redirects are not followed (a 3xx is itself a
// passing answer by default). log and m may be nil.
func NewActiveChecker(pool *upstream.Pool, hc *config.HealthCheck, client *http.Client, log *slog.Logger, m *Metrics) *ActiveChecker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc = config.WithDefaults(hc)
	c := &ActiveChecker{
		pool:               pool,
		path:               hc.Path,
		interval:           hc.Interval,
		timeout:            hc.Timeout,
		healthyThreshold:   hc.HealthyThreshold,
		unhealthyThreshold: hc.UnhealthyThreshold,
		expectStatus:       hc.ExpectStatus,
		log:                log.With("pool", pool.Name()),
		metrics:            m,
		route:              pool.Name(),
	}
	if c.path == "" || c.path[0] != '/' {
		c.path = "/" + c.path
	}
	if client == nil {
		c.ownTransport = &http.Transport{
			Proxy:               nil, // probes go straight to the endpoint, never via $HTTP_PROXY
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     2 * c.interval,
		}
		client = &http.Client{Transport: c.ownTransport}
	}
	cl := *client
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.client = &cl
	c.probe = ProbeFunc(c.probeHTTP)
	if hc.GRPC {
		c.probe = ProbeFunc(noGRPCProbe)
	}
	return c
}

// Run checks the pool at once and then every Interval (jittered by +-10% so the checks of
// many gateways do not arrive in step) until ctx ends. A round waits for all its probes, so
// rounds never overlap; Run returns only after every probe goroutine has finished.
func (c *ActiveChecker) Run(ctx context.Context) {
	if c.ownTransport != nil {
		defer c.ownTransport.CloseIdleConnections()
	}
	if cl, ok := c.probe.(idleCloser); ok {
		defer cl.CloseIdleConnections()
	}
	for {
		c.round(ctx)
		t := time.NewTimer(time.Duration(float64(c.interval) * (0.9 + 0.2*rand.Float64())))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (c *ActiveChecker) round(ctx context.Context) {
	v := c.pool.View()
	if v == nil {
		return
	}
	sem := make(chan struct{}, maxConcurrentProbes)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range v.Members {
		m := &v.Members[i]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c.check(ctx, m)
		})
	}
}

// check probes one member and records the result. A probe cut short because ctx ended
// (shutdown, reload) says nothing about the endpoint and is not recorded.
func (c *ActiveChecker) check(ctx context.Context, m *upstream.Member) {
	probeCtx, cancel := context.WithTimeout(ctx, c.timeout)
	passed, detail := c.probe.Check(probeCtx, m)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if !passed {
		c.metrics.checkFailed(c.route)
	}
	h := m.State.Health()
	if h == nil {
		return // no policy: NewRoutePolicy always makes one when checks are on
	}
	switch failing, changed := h.CheckResult(passed, c.healthyThreshold, c.unhealthyThreshold); {
	case changed && failing:
		c.log.Warn("endpoint failed active health checks", "endpoint", m.Key, "last", detail)
	case changed:
		c.log.Info("endpoint passed active health checks again", "endpoint", m.Key)
	}
}

// probeHTTP is the default probe: a GET of the configured path on m.
func (c *ActiveChecker) probeHTTP(ctx context.Context, m *upstream.Member) (ok bool, detail string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Scheme+"://"+m.Key+c.path, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "switchyard-health-check")
	client := c.client
	if pt, ok := client.Transport.(protocolTransport); ok {
		// The gateway's client: speak the endpoint's protocol (an h2c-only backend).
		cl := *client
		cl.Transport = pt.For(m.Resolve(c.protocol), m.Scheme)
		client = &cl
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
	_ = resp.Body.Close()
	return c.passing(resp.StatusCode), resp.Status
}

func (c *ActiveChecker) passing(status int) bool {
	if len(c.expectStatus) == 0 {
		return status >= 200 && status < 400
	}
	return slices.Contains(c.expectStatus, status)
}

// CheckResult implements upstream.Health. Only the checker writes these fields, one
// probe per endpoint at a time; a flip re-evaluates the pool's panic mode.
func (h *health) CheckResult(passed bool, healthyThreshold, unhealthyThreshold int) (failing, changed bool) {
	wasFailing := h.activeDown.Load()
	failing = wasFailing
	if passed {
		h.activeFailures.Store(0)
		if n := h.activePasses.Add(1); wasFailing && int(n) >= healthyThreshold {
			failing = false
		}
	} else {
		h.activePasses.Store(0)
		if n := h.activeFailures.Add(1); !wasFailing && int(n) >= unhealthyThreshold {
			failing = true
		}
	}
	if failing == wasFailing {
		return failing, false
	}
	h.activeDown.Store(failing)
	h.p.activeChanged()
	return failing, true
}
