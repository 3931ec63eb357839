// Package etcdtest starts real, in-process etcd servers (go.etcd.io/etcd/server/v3/embed) on
// free 127.0.0.1 ports for tests: one member, or a small cluster whose members can be stopped
// and restarted to test outages and leader loss. Everything is torn down via t.Cleanup.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// readyTimeout bounds how long a member may take to serve; a fast single member is ready in
// well under a second, a cluster member waits for a quorum.
const readyTimeout = 20 * time.Second

// Server is one embedded etcd member. Its ports and data directory stay the same across
// Stop and Restart, so clients pointed at it reconnect once it is back.
//
// Clients reach the member through a Proxy: Stop cuts every client connection first, as a
// crash would, which also spares etcd's graceful shutdown its 5 s wait for open watches.
type Server struct {
	name       string
	dir        string
	clientURL  url.URL // the proxy, advertised to clients
	innerURL   url.URL // where etcd itself listens
	peerURL    url.URL
	proxy      *Proxy
	cluster    string // initial-cluster string shared by every member
	clusterNew bool   // first start of the member creates the cluster

	mu   sync.Mutex
	etcd *embed.Etcd // nil while stopped
}

// ClientURL is the member's client URL, e.g. "http://127.0.0.1:41234".
func (s *Server) ClientURL() string { return s.clientURL.String() }

// Endpoints returns the member's client address as host:port, the form clientv3 and
// config.Etcd take.
func (s *Server) Endpoints() []string { return []string{s.clientURL.Host} }

// Name is the member's name (m0, m1, ...).
func (s *Server) Name() string { return s.name }

// Client returns a clientv3 client connected to this member, closed when t ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, s.Endpoints())
}

// Etcd returns the running embed.Etcd, or nil while the member is stopped.
func (s *Server) Etcd() *embed.Etcd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd
}

// Stop closes the member; it can be brought back with Restart. Stopping a stopped member
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	e := s.etcd
	s.etcd = nil
	s.mu.Unlock()
	if e != nil {
		s.proxy.Cut()
		e.Close()
	}
}

// Restart starts a stopped member again on the same ports and data directory and waits until
// it serves. It fails t if the member is still running or does not come up.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	running := s.etcd != nil
	s.mu.Unlock()
	if running {
		t.Fatalf("etcdtest: Restart of running member %s", s.name)
	}
	if err := s.start(false); err != nil {
		t.Fatalf("etcdtest: restart %s: %v", s.name, err)
	}
	if err := s.waitReady(); err != nil {
		t.Fatalf("etcdtest: restart %s: %v", s.name, err)
	}
	s.proxy.Restore()
}

// IsLeader reports whether the member runs and is the raft leader.
func (s *Server) IsLeader() bool {
	e := s.Etcd()
	return e != nil && e.Server.Leader() == e.Server.MemberID()
}

// Start runs a single-member etcd on free loopback ports with a t.TempDir() data directory
// and waits until it serves. It is stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartCluster(t, 1).Member(0)
}

// Cluster is a set of embedded etcd members forming one cluster.
type Cluster struct {
	members []*Server
}

// StartCluster runs an n-member cluster on free loopback ports and waits until every member
// serves. It is stopped when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: cluster of %d members", n)
	}
	ports := FreePorts(t, 3*n)
	c := &Cluster{members: make([]*Server, n)}
	var initial []string
	for i := range n {
		s := &Server{
			name:       fmt.Sprintf("m%d", i),
			dir:        t.TempDir(),
			innerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[3*i])},
			peerURL:    url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[3*i+1])},
			clusterNew: true,
		}
		s.proxy = newProxy(t, fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]), s.innerURL.Host)
		s.clientURL = url.URL{Scheme: "http", Host: s.proxy.Addr()}
		c.members[i] = s
		initial = append(initial, s.name+"="+s.peerURL.String())
	}
	t.Cleanup(c.Stop)
	for _, s := range c.members {
		s.cluster = strings.Join(initial, ",")
		// Members of a multi-member cluster block in StartEtcd until their peers are
		// reachable only for ReadyNotify, not for StartEtcd itself, so start all, then wait.
		if err := s.start(true); err != nil {
			t.Fatalf("etcdtest: start %s: %v", s.name, err)
		}
	}
	for _, s := range c.members {
		if err := s.waitReady(); err != nil {
			t.Fatalf("etcdtest: %s: %v", s.name, err)
		}
		s.proxy.Restore()
	}
	return c
}

// Member returns member i.
func (c *Cluster) Member(i int) *Server { return c.members[i] }

// Members returns every member.
func (c *Cluster) Members() []*Server { return c.members }

// Endpoints returns every member's client address (host:port).
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, s := range c.members {
		eps = append(eps, s.Endpoints()...)
	}
	return eps
}

// Client returns a client connected to every member, closed when t ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, c.Endpoints())
}

// Leader waits up to 10 s until a running member is the raft leader and returns its index.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range c.members {
			if s.IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("etcdtest: no leader within 10s")
	return -1
}

// Stop closes every member at once. (Stopping them one by one leaves etcd's peer stream
// goroutines behind; stopping them together costs the leader's 5 s wait for a leadership
// transfer that cannot happen.)
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, s := range c.members {
		wg.Go(s.Stop)
	}
	wg.Wait()
}

func (s *Server) start(first bool) error {
	cfg := embed.NewConfig()
	cfg.Name = s.name
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.innerURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = s.cluster
	cfg.InitialClusterToken = "etcdtest"
	cfg.ClusterState = embed.ClusterStateFlagExisting
	if first && s.clusterNew {
		cfg.ClusterState = embed.ClusterStateFlagNew
	}
	// Fast elections: the default 100 ms / 1 s makes a start and a leader loss take seconds.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ListenMetricsUrls = nil
	// Data safety is moot in a temp dir; skipping fsync keeps tests quick on shared disks.
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietLogger())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.etcd = e
	s.mu.Unlock()
	return nil
}

func (s *Server) waitReady() error {
	e := s.Etcd()
	if e == nil {
		return fmt.Errorf("not running")
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("failed while starting: %w", err)
	case <-time.After(readyTimeout):
		return fmt.Errorf("not ready within %s", readyTimeout)
	}
}

// quietLogger drops etcd's logs: even at error level, Close writes harmless "server closed"
// lines that would bury a failing test's own output.
func quietLogger() *zap.Logger { return zap.NewNop() }

func newClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		// A test must notice a dead member quickly, not after the default 20+ s.
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// FreePorts returns n distinct free loopback ports, found by listening and closing; the small
// window before the caller binds them is acceptable in tests.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		var lc net.ListenConfig
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		cancel()
		if err != nil {
			t.Fatalf("etcdtest: free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
