package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/lb"
	"github.com/switchyard/switchyard/upstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recordingHealth is a pure-logic fake that records outcomes (always available).
type recordingHealth struct {
	testkit.HealthStub
	mu       sync.Mutex
	outcomes []upstream.Outcome
}

func (h *recordingHealth) Available() bool { return true }
func (h *recordingHealth) Admit() bool     { return true }
func (h *recordingHealth) Report(o upstream.Outcome) {
	h.mu.Lock()
	h.outcomes = append(h.outcomes, o)
	h.mu.Unlock()
}

func (h *recordingHealth) all() []upstream.Outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]upstream.Outcome(nil), h.outcomes...)
}

type recordingPolicy struct {
	mu sync.Mutex
	hs map[string]*recordingHealth
}

func (p *recordingPolicy) NewHealth(key string) upstream.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := &recordingHealth{HealthStub: testkit.HealthStub{EndpointKey: key}}
	p.hs[key] = h
	return h
}
func (p *recordingPolicy) SetMembers([]upstream.Health) {}

func (p *recordingPolicy) of(key string) *recordingHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hs[key]
}

// routeSpec builds a test route.
type routeSpec struct {
	prefix   string
	host     string
	strip    bool
	timeout  time.Duration
	retries  int
	retry    *config.Retry
	backends []string // host:port
	policy   *recordingPolicy
	upgrades []string // nil: config's default [websocket]
	encoded  string   // encoded_slashes; "": keep
	protocol string   // upstream_protocol; "": auto
	scheme   string   // the backends' scheme; "": http
	filters  *filter.Chain
}

func defaultRetry() *config.Retry {
	return &config.Retry{OnStatus: []int{502, 503, 504}, BudgetPercent: 20, MinRetryConcurrency: 3, MaxBodyBytes: 64 << 10}
}

func (s routeSpec) build(t testing.TB) *Route {
	t.Helper()
	b, err := lb.New(config.LBRoundRobin)
	if err != nil {
		t.Fatal(err)
	}
	var hp upstream.HealthPolicy
	if s.policy != nil {
		s.policy.hs = map[string]*recordingHealth{}
		hp = s.policy
	}
	pool := upstream.NewPool("test", b, upstream.PoolOptions{Health: hp})
	if s.backends != nil {
		eps := make([]upstream.Endpoint, len(s.backends))
		for i, k := range s.backends {
			eps[i] = upstream.Endpoint{Key: k, Scheme: s.scheme}
		}
		pool.Update(upstream.NewSnapshot(eps))
	}
	retries := s.retries
	rc := &config.Route{Prefix: s.prefix, Host: s.host, StripPrefix: s.strip}
	rc.Timeout = s.timeout
	rc.Retries = &retries
	rc.Retry = s.retry
	rc.Upgrades = s.upgrades
	if rc.Upgrades == nil {
		rc.Upgrades = []string{"websocket"}
	}
	rc.EncodedSlashes = s.encoded
	rc.UpstreamProtocol = s.protocol
	return NewRoute(rc, RouteOptions{Pool: pool, Filters: s.filters})
}

// startGateway serves routes through a Handler on a loopback server.
func startGateway(t testing.TB, trusted []netip.Prefix, routes ...*Route) (*httptest.Server, *Handler) {
	t.Helper()
	return startGatewayWith(t, Options{}, trusted, routes...)
}

// caFile, given as Options.Transport to startGatewayWith, makes its transport trust that CA
// file.
type caFile string

func (caFile) RoundTrip(*http.Request) (*http.Response, error) { return nil, http.ErrNotSupported }

// startGatewayWith is startGateway with handler options (the transport is always set here).
func startGatewayWith(t testing.TB, o Options, trusted []netip.Prefix, routes ...*Route) (*httptest.Server, *Handler) {
	t.Helper()
	tc := config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	if o.Transport != nil {
		if ca, ok := o.Transport.(caFile); ok {
			tc.TLS = &config.TLS{CAFile: string(ca)} // upstreams signed by a test CA
		}
	}
	tr, err := NewTransport(tc)
	if err != nil {
		t.Fatal(err)
	}
	o.Transport = tr
	h := New(o)
	h.SetTable(NewTable(routes, NewTrust(trusted)))
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv, h
}

func backend(t testing.TB, fn http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(fn)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// deadAddr returns a loopback address that refuses connections until the test ends: a
// socket bound to it without listening holds the port, so a parallel test's listener cannot
// be handed the same port (a closed listener's port can be, and then a "dead" endpoint
// answers), and a connection attempt to it is refused at once.
func deadAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
