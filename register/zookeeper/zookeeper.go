// Package zookeeper registers service instances in ZooKeeper, for the gateway's ZooKeeper
// discovery: an ephemeral node <root>/<service>/<id> holding a register.Entry, in a session
// of its own that the registrar keeps. Import it (blank, for register.Open's zk:// URLs, or
// to call New) only in programs that register in ZooKeeper: it links go-zookeeper.
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/register"
)

// Scheme is the registry URL scheme this package serves:
// zk://host:port[,host:port...][?sequential=true].
const Scheme = "zk"

const (
	defaultRoot  = "/services"
	dialTimeout  = time.Second
	closeTimeout = 5 * time.Second        // bound on waiting for go-zookeeper's goroutines
	retryMax     = 2 * time.Second        // cap on the re-registration backoff
	retryMin     = 100 * time.Millisecond // first re-registration retry
)

var openACL = zk.WorldACL(zk.PermAll)

func init() {
	register.AddScheme(Scheme, open)
}

// New returns a registrar for registry, a zk://host:port[,host:port...][?sequential=true]
// URL, as register.Open does once this package is linked in.
func New(registry string, inst register.Instance, opts register.Options) (register.Registrar, error) {
	return register.OpenWith(open, registry, inst, opts)
}

// registrar keeps one ephemeral node <root>/<service>/<id> alive in its own session. The
// session is the liveness signal: if the process dies, ZooKeeper removes the node once the
// session times out (Options.TTL). After a session expiry go-zookeeper opens a new session
// and the keeper creates the node again.
type registrar struct {
	servers    []string
	dir        string // <root>/<service>
	name       string // instance id; with sequential, the prefix of a sequential name
	data       []byte
	sequential bool
	timeout    time.Duration
	log        *slog.Logger

	mu     sync.Mutex // serialises Register and Deregister
	conn   *zk.Conn
	events <-chan zk.Event
	path   string // the node we created, "" before; owned by whoever runs ensure
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed bool

	netMu sync.Mutex // guards netc; separate from mu because go-zookeeper dials on its own goroutine
	netc  net.Conn   // current TCP connection, cut on close
}

// open is the register.OpenFunc for zk://host:port[,host:port...][?sequential=true].
func open(u *url.URL, inst register.Instance, opts register.Options) (register.Registrar, error) {
	if u.Scheme != Scheme {
		return nil, fmt.Errorf("registry %q: not a zk:// URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("registry %q: zk:// needs host:port", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("registry %q: zk:// takes no path; the root comes from the prefix option", u.Redacted())
	}
	sequential := false
	for k, v := range u.Query() {
		switch k {
		case "sequential":
			b, err := strconv.ParseBool(v[len(v)-1])
			if err != nil {
				return nil, fmt.Errorf("registry %q: sequential=%q is not a boolean", u.Redacted(), v[len(v)-1])
			}
			sequential = b
		default:
			return nil, fmt.Errorf("registry %q: unknown option %q (want sequential)", u.Redacted(), k)
		}
	}
	if inst.ID == "" || strings.Contains(inst.ID, "/") || inst.ID == "." || inst.ID == ".." {
		return nil, fmt.Errorf("instance id %q is not a valid ZooKeeper node name", inst.ID)
	}
	if strings.Contains(inst.Service, "/") {
		return nil, fmt.Errorf("service %q must not contain /", inst.Service)
	}
	data, err := register.EncodeEntry(inst)
	if err != nil {
		return nil, err
	}
	root := defaultRoot
	if opts.Prefix != "" {
		// "/services/" (the etcd habit) means the same root.
		root = "/" + strings.Trim(opts.Prefix, "/")
		if root == "/" || strings.Contains(root, "//") {
			return nil, fmt.Errorf("zookeeper root %q is not a usable path", opts.Prefix)
		}
	}
	r := &registrar{
		servers:    strings.Split(u.Host, ","),
		dir:        root + "/" + inst.Service,
		name:       inst.ID,
		data:       data,
		sequential: sequential,
		timeout:    opts.TTL,
	}
	r.log = opts.Logger.With("registry", "zookeeper", "node", r.dir+"/"+r.name)
	return r, nil
}

// Register opens a session, creates the node (and its persistent parents), then keeps it
// in the background. It fails if the first creation fails; ctx bounds it.
func (r *registrar) Register(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("zookeeper registrar: Register after Deregister")
	}
	if r.conn != nil {
		return nil // already registered and kept
	}
	if err := ctx.Err(); err != nil {
		// Told to stop before we began: not even a session to open and close again.
		return fmt.Errorf("zookeeper register %s: %w", r.dir+"/"+r.name, err)
	}
	kick := make(chan struct{}, 1)
	conn, events, err := zk.Connect(r.servers, r.timeout,
		zk.WithLogger(slogAdapter{r.log}),
		zk.WithDialer(r.dial),
		zk.WithEventCallback(func(ev zk.Event) {
			// A new or resumed session: make sure the node is there (it is gone after an
			// expiry). Never block go-zookeeper's loop; one pending kick is enough.
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("zookeeper %v: %w", r.servers, err)
	}
	r.conn, r.events = conn, events
	// zk calls take no context: closing the connection is what makes a pending call
	// return when ctx ends. Close ends the session, and ZooKeeper applies a session's
	// requests in order, so a node whose create was already sent is deleted with it: a stop
	// during registration leaves nothing behind.
	stopAbort := context.AfterFunc(ctx, conn.Close)
	watch, _, err := r.ensure()
	if !stopAbort() {
		err = ctx.Err() // the abort closed the connection: that is the real cause
	}
	if err != nil {
		r.closeConn()
		r.conn, r.events, r.path = nil, nil, ""
		return fmt.Errorf("zookeeper register %s: %w", r.dir+"/"+r.name, err)
	}
	r.kick, r.stop, r.done = kick, make(chan struct{}), make(chan struct{})
	go r.keep(watch)
	r.log.Info("registered", "path", r.path, "session", fmt.Sprintf("%x", conn.SessionID()))
	return nil
}

// ensure makes sure our node exists in the current session and returns a watch on it, so
// the keeper also learns of a node deleted by someone else; created says it had to write it.
func (r *registrar) ensure() (watch <-chan zk.Event, created bool, err error) {
	for {
		if r.path != "" {
			ok, stat, ch, err := r.conn.ExistsW(r.path)
			if err != nil {
				return nil, created, err
			}
			if ok && stat.EphemeralOwner == r.conn.SessionID() {
				return ch, created, nil
			}
			if created {
				// Written but gone again at once: report it rather than spin.
				return nil, created, fmt.Errorf("node %s vanished right after creation", r.path)
			}
		}
		if err := r.mkdirs(); err != nil {
			return nil, created, err
		}
		p, err := r.create()
		if err != nil {
			return nil, created, err
		}
		r.path, created = p, true
	}
}

// mkdirs creates the persistent parents of the node.
func (r *registrar) mkdirs() error {
	p := ""
	for _, part := range strings.Split(strings.Trim(r.dir, "/"), "/") {
		p += "/" + part
		if _, err := r.conn.Create(p, nil, 0, openACL); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// create writes the ephemeral node and returns its path.
func (r *registrar) create() (string, error) {
	if r.sequential {
		// The protected form finds its own node again if the connection drops between the
		// create and its answer, so a retry never leaves a duplicate in our session.
		return r.conn.CreateProtectedEphemeralSequential(r.dir+"/"+r.name+"-", r.data, openACL)
	}
	p := r.dir + "/" + r.name
	for {
		_, err := r.conn.Create(p, r.data, zk.FlagEphemeral, openACL)
		if !errors.Is(err, zk.ErrNodeExists) {
			return p, err
		}
		// Usually our own previous process, whose session has not timed out yet: the new
		// process is the live one, so take the name over instead of failing for TTL.
		_, stat, err := r.conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return "", err
		}
		if stat.EphemeralOwner == r.conn.SessionID() {
			return p, nil // ours: the create succeeded but its answer was lost
		}
		r.log.Warn("taking over a node held by another session", "owner", fmt.Sprintf("%x", stat.EphemeralOwner))
		if err := r.conn.Delete(p, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return "", err
		}
	}
}

// keep re-creates the node whenever a session is (re)established or the node is deleted,
// retrying with jittered backoff while ZooKeeper refuses.
func (r *registrar) keep(watch <-chan zk.Event) {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		case <-watch:
		}
		for failures := 0; ; failures++ {
			w, created, err := r.ensure()
			if err == nil {
				if created {
					r.log.Info("re-registered", "path", r.path, "session", fmt.Sprintf("%x", r.conn.SessionID()))
				}
				watch = w
				break
			}
			d := min(retryMin<<min(failures, 8), retryMax)
			r.log.Warn("zookeeper registration lost; retrying", "err", err, "retry_in", d)
			t := time.NewTimer(d/2 + rand.N(d/2))
			select {
			case <-r.stop:
				t.Stop()
				return
			case <-r.kick:
				t.Stop() // a new session: try at once
			case <-t.C:
			}
		}
	}
}

// Deregister stops the keeper, deletes the node at once and closes the session. If
// ZooKeeper cannot be reached the node still disappears when the session times out.
func (r *registrar) Deregister(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.conn == nil {
		return nil
	}
	defer r.closeConn()
	stopAbort := context.AfterFunc(ctx, r.conn.Close)
	defer stopAbort()
	close(r.stop)
	<-r.done
	if r.path == "" {
		return nil
	}
	if err := r.conn.Delete(r.path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zookeeper delete %s (closing the session removes it too): %w", r.path, err)
	}
	r.log.Info("deregistered", "path", r.path)
	return nil
}

// dial remembers the TCP connection so closeConn can cut it: go-zookeeper's handshake can
// wait ~7 x the session timeout on a frozen server.
func (r *registrar) dial(network, addr string, _ time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, dialTimeout)
	if err != nil {
		return nil, err
	}
	r.netMu.Lock()
	r.netc = c
	r.netMu.Unlock()
	return c, nil
}

// closeConn closes the session and waits (bounded) for go-zookeeper's goroutines to end.
func (r *registrar) closeConn() {
	r.conn.Close()
	r.netMu.Lock()
	if r.netc != nil {
		r.netc.Close()
	}
	r.netMu.Unlock()
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	for {
		select {
		case _, ok := <-r.events:
			if !ok {
				return // closed by go-zookeeper as its last act
			}
		case <-t.C:
			r.log.Warn("zookeeper client did not stop in time", "timeout", closeTimeout)
			return
		}
	}
}

// slogAdapter routes go-zookeeper's Printf logging (every reconnect attempt) to slog at debug.
type slogAdapter struct{ l *slog.Logger }

// Printf implements zk.Logger.
func (z slogAdapter) Printf(format string, args ...any) {
	z.l.Debug("go-zookeeper: " + fmt.Sprintf(format, args...))
}
