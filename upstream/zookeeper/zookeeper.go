// Package zookeeper discovers a service's endpoints from ZooKeeper: every instance is a node
// <root>/<service>/<instance> (usually ephemeral, so it dies with its owner's session) whose
// data is parsed by upstream.ParseEntry. It reads children and data with watches and emits a
// full sorted snapshot whenever a watch fires and the set changed.
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/upstream"
)

// Registry is the registry label on log lines and metrics.
const Registry = "zookeeper"

// Defaults for fields a config leaves empty (the config loader fills the same ones).
const (
	DefaultServer         = config.DefaultZooKeeperServer
	DefaultRoot           = config.DefaultZooKeeperRoot
	DefaultSessionTimeout = config.DefaultZooKeeperSessionTimeout
)

const (
	dialTimeout = time.Second
	// closeTimeout bounds Close's wait for go-zookeeper's goroutines once the connection
	// is cut; they only have buffered channels left to close by then.
	closeTimeout = 5 * time.Second
)

// Options are the discoverer's collaborators; both may be nil.
type Options struct {
	Metrics *upstream.DiscoveryMetrics
	Logger  *slog.Logger // default slog.Default()
}

// Discoverer watches services under one ZooKeeper root over one shared session. It
// implements upstream.Discoverer; Close it when done.
type Discoverer struct {
	root    string
	conn    *zk.Conn
	events  <-chan zk.Event
	log     *slog.Logger
	metrics *upstream.DiscoveryMetrics

	mu     sync.Mutex
	netc   net.Conn // the current TCP connection, cut by Close
	closed bool

	closeOnce sync.Once
}

var _ upstream.Discoverer = (*Discoverer)(nil)

// New starts a session with the ZooKeeper ensemble in cfg (nil means all defaults). It does
// not wait for the servers: go-zookeeper connects in the background and Watch's first
// snapshot comes once they answer.
func New(cfg *config.ZooKeeper, opts Options) (*Discoverer, error) {
	var c config.ZooKeeper
	if cfg != nil {
		c = *cfg
	}
	if len(c.Servers) == 0 {
		c.Servers = []string{DefaultServer}
	}
	root, err := cleanRoot(c.Root)
	if err != nil {
		return nil, err
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("registry", Registry)
	d := &Discoverer{root: root, log: log, metrics: opts.Metrics}

	conn, events, err := zk.Connect(c.Servers, c.SessionTimeout,
		zk.WithLogger(zkLogger{log}),
		zk.WithDialer(d.dial),
		zk.WithEventCallback(d.onEvent),
	)
	if err != nil {
		return nil, fmt.Errorf("zookeeper %v: %w", c.Servers, err)
	}
	d.conn, d.events = conn, events
	return d, nil
}

// cleanRoot validates a root path and returns it with a leading and no trailing slash
// ("" means DefaultRoot), so "/services/" (the etcd prefix habit) works too.
func cleanRoot(root string) (string, error) {
	if root == "" {
		return DefaultRoot, nil
	}
	r := "/" + strings.Trim(root, "/")
	if r == "/" {
		return "", fmt.Errorf("zookeeper root %q: must not be /", root)
	}
	if strings.Contains(r, "//") {
		return "", fmt.Errorf("zookeeper root %q: empty path segment", root)
	}
	return r, nil
}

// dial remembers the connection so Close can cut it: go-zookeeper's handshake waits up to
// 10 x 2/3 of the session timeout on a server that accepted the TCP connection but is
// frozen, and Close must not wait that long.
func (d *Discoverer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > dialTimeout {
		timeout = dialTimeout
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	d.netc = c
	return c, nil
}

// onEvent logs session state changes; go-zookeeper calls it on its own goroutine, so it
// must not block.
func (d *Discoverer) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	switch ev.State {
	case zk.StateExpired:
		d.log.Warn("zookeeper session expired; starting a new one and re-reading every watched service")
	case zk.StateHasSession:
		d.log.Debug("zookeeper session established", "server", ev.Server)
	case zk.StateDisconnected:
		d.log.Debug("zookeeper disconnected; keeping the last snapshots", "server", ev.Server)
	}
}

// Close ends the session and waits (bounded) until go-zookeeper's goroutines are gone.
// Cancel the Watch contexts first: a Watch still running after Close keeps its last
// snapshot and only retries, with backoff, until its ctx ends.
func (d *Discoverer) Close() {
	d.closeOnce.Do(func() {
		// Close sends closeSession (so the server drops our watches at once) and waits up
		// to ~3 s for it; the connection may be dead, so cut it afterwards.
		d.conn.Close()
		d.mu.Lock()
		d.closed = true
		if d.netc != nil {
			d.netc.Close()
		}
		d.mu.Unlock()
		timer := time.NewTimer(closeTimeout)
		defer timer.Stop()
		for {
			select {
			case _, ok := <-d.events:
				if !ok {
					return // go-zookeeper closes it as its last act
				}
			case <-timer.C:
				d.log.Warn("zookeeper client did not stop in time", "timeout", closeTimeout)
				return
			}
		}
	})
}

// zkLogger routes go-zookeeper's Printf logging to slog at debug level: the library logs
// every reconnect attempt, which is noise at info, while the discoverer logs what matters
// (expiry, rejected entries, failed reads) itself.
type zkLogger struct{ l *slog.Logger }

// Printf implements zk.Logger.
func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug("go-zookeeper: " + fmt.Sprintf(format, args...))
}

// transient reports whether err is a connection-level failure that go-zookeeper recovers
// from by itself (so a retry after backoff is the whole cure).
func transient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved) ||
		errors.Is(err, zk.ErrClosing)
}

// Open is the ZooKeeper registry's upstream.Opener.
func Open(_ context.Context, dc *config.Discovery, o upstream.OpenOptions) (upstream.Discoverer, func(), error) {
	if dc == nil || dc.ZooKeeper == nil {
		return nil, func() {}, nil
	}
	d, err := New(dc.ZooKeeper, Options{Metrics: o.Metrics, Logger: o.Logger})
	if err != nil {
		return nil, func() {}, fmt.Errorf("zookeeper: %w", err)
	}
	return d, d.Close, nil
}
