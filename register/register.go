// Package register lets a service register itself in the registry the gateway watches (etcd,
// Consul or ZooKeeper), keep the registration alive, and remove it on exit; `switchyard
// register` wraps it as a sidecar. The gateway itself uses only its wire format (Entry, which
// upstream.ParseEntry decodes), so this package must stay free of registry clients.
//
// This package holds what every registry shares and imports only the standard library. The
// registries live in their own packages, so a service links only the client of the registry
// it uses. Import the one you need for its side effect, as with database/sql drivers:
//
//	import _ "github.com/switchyard/switchyard/register/consul"
//
//	reg, err := register.Open("consul://127.0.0.1:8500", inst, opts)
//
// or call its New directly (consul.New, etcd.New, zookeeper.New).
package register

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Instance is one running copy of a service, as it announces itself.
type Instance struct {
	Service string            // service name, as routes.yaml's `service:` names it
	ID      string            // unique per instance; default Address
	Address string            // host:port the gateway should dial
	Scheme  string            // http (default) or https
	Weight  int               // relative share for the weighted policy; default 1
	Tags    []string          // Consul tags
	Meta    map[string]string // free-form metadata; MetaProtocol says which HTTP version it speaks
}

// MetaProtocol is the metadata key an instance sets to tell the gateway which protocol to
// speak to it: "h2c" (HTTP/2 over cleartext, as plain gRPC servers speak), "h2" (HTTP/2
// over TLS), "http1" or "auto". A route's own upstream_protocol, when not auto, wins.
const MetaProtocol = "protocol"

// Check is how a Consul agent checks the instance; exactly one of HTTP, TCP or TTL is used.
type Check struct {
	HTTP     string        // URL the agent GETs, e.g. http://127.0.0.1:9001/healthz
	TCP      string        // host:port the agent connects to
	TTL      time.Duration // the registrar itself passes the check every TTL/2
	Interval time.Duration // for HTTP and TCP; default 10s
	Timeout  time.Duration // for HTTP and TCP; default 2s
	// DeregisterCriticalAfter makes the agent remove an instance whose check stays critical
	// this long (Consul's DeregisterCriticalServiceAfter); default 1m.
	DeregisterCriticalAfter time.Duration
}

// Options tune a registrar; zero values mean the defaults given.
type Options struct {
	TTL    time.Duration // etcd lease TTL, ZooKeeper session timeout; default 10s
	Prefix string        // etcd key prefix (default /services/) or ZooKeeper root (default /services)
	Check  Check         // Consul only
	Logger *slog.Logger  // default slog.Default()
}

// Registrar keeps one instance registered.
type Registrar interface {
	// Register writes the registration and keeps it alive in the background (lease
	// keepalive, TTL check updates, session re-creation) until Deregister; when the registry
	// loses it (restart, expiry, network cut) it is written again on its own. If ctx ends
	// before Register is done, Register removes whatever it may already have written and
	// returns an error wrapping ctx.Err(), so a stop during registration leaves nothing
	// behind.
	Register(ctx context.Context) error
	// Deregister removes the registration at once and stops keeping it alive. It is safe to
	// call after a failed Register, and more than once.
	Deregister(ctx context.Context) error
}

// OpenFunc builds a Registrar for a registry URL of one scheme. It is called with inst and
// opts already checked and completed by OpenWith: a service and a valid host:port address, a
// scheme of "", http or https, and every default filled in.
type OpenFunc func(u *url.URL, inst Instance, opts Options) (Registrar, error)

var (
	schemesMu sync.RWMutex
	// schemes is filled by the registry packages' init (AddScheme), so the base package
	// names no registry and links none of their clients.
	schemes = map[string]OpenFunc{}
)

// AddScheme makes Open hand URLs of scheme (without "://") to open. The registry packages
// call it from init; it panics when scheme is taken or open is nil, as a mistake in how a
// program is put together is not something to handle at run time.
func AddScheme(scheme string, open OpenFunc) {
	schemesMu.Lock()
	defer schemesMu.Unlock()
	if open == nil {
		panic("register: AddScheme " + scheme + " with a nil OpenFunc")
	}
	if _, dup := schemes[scheme]; dup {
		panic("register: AddScheme called twice for scheme " + scheme)
	}
	schemes[scheme] = open
}

// Open returns a registrar for a registry URL: etcd://host:port[,host:port...],
// consul://host:port or zk://host:port[,host:port...]. The registry's package must be
// linked in (a blank import of register/etcd, register/consul or register/zookeeper).
func Open(registry string, inst Instance, opts Options) (Registrar, error) {
	u, err := url.Parse(registry)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", registry, err)
	}
	schemesMu.RLock()
	open, ok := schemes[u.Scheme]
	schemesMu.RUnlock()
	if !ok {
		known := "none linked in: import register/etcd, register/consul or register/zookeeper"
		if s := Schemes(); len(s) > 0 {
			known = strings.Join(s, ", ")
		}
		return nil, fmt.Errorf("registry %q: unknown scheme %q (want %s)", u.Redacted(), u.Scheme, known)
	}
	return openURL(u, inst, opts, open)
}

// OpenWith is Open with the registry implementation given rather than looked up by the URL's
// scheme. The registry packages' New functions use it so they share Open's checks and
// defaults without the scheme table.
func OpenWith(open OpenFunc, registry string, inst Instance, opts Options) (Registrar, error) {
	u, err := url.Parse(registry)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", registry, err)
	}
	return openURL(u, inst, opts, open)
}

// openURL checks inst, fills in the defaults OpenFunc documents, and calls open.
func openURL(u *url.URL, inst Instance, opts Options, open OpenFunc) (Registrar, error) {
	if inst.Service == "" || inst.Address == "" {
		return nil, fmt.Errorf("instance needs a service name and an address")
	}
	if _, _, err := SplitAddress(inst.Address); err != nil {
		return nil, err
	}
	switch inst.Scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("instance scheme %q is not http or https", inst.Scheme)
	}
	if inst.ID == "" {
		inst.ID = inst.Address
	}
	if inst.Weight <= 0 {
		inst.Weight = 1
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return open(u, inst, opts)
}

// Schemes lists the registry URL schemes linked into this program, as "etcd://" and so on.
func Schemes() []string {
	schemesMu.RLock()
	defer schemesMu.RUnlock()
	s := make([]string, 0, len(schemes))
	for k := range schemes {
		s = append(s, k+"://")
	}
	slices.Sort(s)
	return s
}

// SplitAddress splits and checks an instance's host:port; the port must be 1-65535.
func SplitAddress(addr string) (host string, port int, err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("instance address %q: %w", addr, err)
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("instance address %q: bad port", addr)
	}
	return host, port, nil
}
