package grpcresolver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/switchyard/switchyard/upstream"
)

// goleak proves Close (of resolvers, through their ClientConn) stops every goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait for a state to be reached; it only detects a hang.
const waitLimit = 20 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeRegistry is a Discoverer whose snapshot the test sets; every Watch delivers the
// current one at once and each later change.
type fakeRegistry struct {
	mu      sync.Mutex
	snap    upstream.Snapshot
	set     bool
	changed chan struct{}

	watches atomic.Int32 // Watch calls started
	live    atomic.Int32 // Watch calls running
}

func newFakeRegistry() *fakeRegistry { return &fakeRegistry{changed: make(chan struct{})} }

// Set publishes a snapshot of keys (weight 1).
func (f *fakeRegistry) Set(keys ...string) {
	eps := make([]upstream.Endpoint, len(keys))
	for i, k := range keys {
		eps[i] = upstream.Endpoint{Key: k}
	}
	f.SetSnapshot(upstream.NewSnapshot(eps))
}

// SetSnapshot publishes s.
func (f *fakeRegistry) SetSnapshot(s upstream.Snapshot) {
	f.mu.Lock()
	f.snap, f.set = s, true
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Watch implements upstream.Discoverer.
func (f *fakeRegistry) Watch(ctx context.Context, _ upstream.Target, update func(upstream.Snapshot)) error {
	f.watches.Add(1)
	f.live.Add(1)
	defer f.live.Add(-1)
	for {
		f.mu.Lock()
		s, set, changed := f.snap, f.set, f.changed
		f.mu.Unlock()
		if set {
			update(s)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// recordingConn is a resolver.ClientConn that records what the resolver tells it.
type recordingConn struct {
	mu      sync.Mutex
	states  []resolver.State
	errs    []error
	changed chan struct{} // closed and replaced on every call
}

func newRecordingConn() *recordingConn { return &recordingConn{changed: make(chan struct{})} }

func (c *recordingConn) UpdateState(s resolver.State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, s)
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

func (c *recordingConn) ReportError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *recordingConn) NewAddress([]resolver.Address) {}

func (c *recordingConn) ParseServiceConfig(string) *serviceconfig.ParseResult { return nil }

// waitFor waits until cond holds over the recorded states and errors.
func (c *recordingConn) waitFor(t *testing.T, what string, cond func(states []resolver.State, errs []error) bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.states, c.errs)
		changed := c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// lastState returns the latest state recorded; the test must have waited for one.
func (c *recordingConn) lastState() resolver.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.states[len(c.states)-1]
}

// counts returns how many states and errors were recorded.
func (c *recordingConn) counts() (states, errs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states), len(c.errs)
}

// addrs lists a state's addresses.
func addrs(s resolver.State) []string {
	out := make([]string, len(s.Addresses))
	for i, a := range s.Addresses {
		out[i] = a.Addr
	}
	return out
}

// backend is one real gRPC server (the standard health service) on a loopback port.
type backend struct {
	addr   string
	server *grpc.Server
	health *health.Server
}

// startBackend serves on a free 127.0.0.1 port until Stop or the end of the test.
func startBackend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), server: grpc.NewServer(), health: health.NewServer()}
	healthpb.RegisterHealthServer(b.server, b.health)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.server.Serve(ln)
	}()
	t.Cleanup(func() {
		b.server.Stop()
		<-done
	})
	return b
}

// port is the backend's port as a number.
func (b *backend) port(t *testing.T) int {
	_, p, err := net.SplitHostPort(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dial opens a ClientConn to target through b with the balancer named, closed at cleanup.
func dial(t *testing.T, target string, b *Builder, balancerName string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(b),
	}
	if balancerName != "" {
		opts = append(opts, grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"`+balancerName+`":{}}]}`))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// call makes one health check and returns the address of the server that answered.
func call(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	var p peer.Peer
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	if err != nil {
		return "", err
	}
	return p.Addr.String(), nil
}

// waitServedBy calls in rounds of 4 calls per address until one round is answered by every
// address in want and by no other (failed calls are skipped), and fails the test if no
// round is within waitLimit. Answers from elsewhere in earlier rounds are not errors: the
// resolver may not have sent the latest set yet.
func waitServedBy(t *testing.T, conn *grpc.ClientConn, want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		seen := map[string]int{}
		for range 4 * len(want) {
			a, err := call(context.Background(), conn)
			if err != nil {
				continue
			}
			seen[a]++
		}
		ok := len(seen) == len(want)
		for _, w := range want {
			ok = ok && seen[w] > 0
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("calls never reached exactly %v", want)
}

// caller is a stream of calls on conn from one goroutine, counting outcomes by server.
type caller struct {
	conn     *grpc.ClientConn
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	ok       map[string]int
	failed   int
	lastErr  error
}

// startCaller calls without pause until stopCalls.
func startCaller(conn *grpc.ClientConn) *caller {
	c := &caller{conn: conn, stop: make(chan struct{}), done: make(chan struct{}), ok: map[string]int{}}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			a, err := call(context.Background(), c.conn)
			c.mu.Lock()
			if err != nil {
				c.failed++
				c.lastErr = err
			} else {
				c.ok[a]++
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// snapshot returns the counts so far.
func (c *caller) snapshot() (ok map[string]int, total, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok = make(map[string]int, len(c.ok))
	for k, v := range c.ok {
		ok[k] = v
		total += v
	}
	return ok, total + c.failed, c.failed
}

// stopCalls ends the stream (once) and returns its counts.
func (c *caller) stopCalls() (ok map[string]int, total, failed int) {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
	return c.snapshot()
}

// waitCalls waits until the stream has reached n more successful calls to addr.
func (c *caller) waitCalls(t *testing.T, addr string, n int) {
	t.Helper()
	c.mu.Lock()
	target := c.ok[addr] + n
	c.mu.Unlock()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := c.ok[addr]
		c.mu.Unlock()
		if got >= target {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("calls to %s did not reach %d", addr, target)
}

// waitQuiet waits until addr has had no call for quiet: the drain delay an instance that
// deregistered waits before it stops, so the clients have dropped it.
func (c *caller) waitQuiet(t *testing.T, addr string, quiet time.Duration) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	c.mu.Lock()
	last := c.ok[addr]
	c.mu.Unlock()
	since := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		c.mu.Lock()
		n := c.ok[addr]
		c.mu.Unlock()
		if n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
	t.Fatalf("calls to %s never stopped", addr)
}

// count is how many calls addr has answered so far.
func (c *caller) count(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok[addr]
}

// waitSucceeded waits until the stream has made n more successful calls, to any instance.
func (c *caller) waitSucceeded(t *testing.T, n int) {
	t.Helper()
	ok, _, _ := c.snapshot()
	target := sum(ok) + n
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		ok, _, _ := c.snapshot()
		if sum(ok) >= target {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the calls did not reach %d successes", target)
}
