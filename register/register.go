// Package register lets a service register itself in the registry the gateway watches (etcd,
// Consul or ZooKeeper), keep the registration alive, and remove it on exit. The gateway's
// request path never imports it; `gateway register` wraps it as a sidecar.
package register

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
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
	Meta    map[string]string // free-form metadata
}

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
	// keepalive, TTL check updates, session re-creation) until Deregister or Close; when
	// the registry loses it (restart, expiry, network cut) it is written again on its own.
	Register(ctx context.Context) error
	// Deregister removes the registration at once and stops keeping it alive.
	Deregister(ctx context.Context) error
}

// opener builds a Registrar for one registry URL scheme.
type opener func(u *url.URL, inst Instance, opts Options) (Registrar, error)

// openers is filled by each backend's file (etcd.go, consul.go, zookeeper.go) in init, so
// adding a registry touches no shared switch.
var openers = map[string]opener{}

// Open returns a registrar for a registry URL: etcd://host:port[,host:port...],
// consul://host:port or zk://host:port[,host:port...].
func Open(registry string, inst Instance, opts Options) (Registrar, error) {
	u, err := url.Parse(registry)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", registry, err)
	}
	open, ok := openers[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("registry %q: unknown scheme %q (want %s)", registry, u.Scheme, strings.Join(Schemes(), ", "))
	}
	if inst.Service == "" || inst.Address == "" {
		return nil, fmt.Errorf("instance needs a service name and an address")
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

// Schemes lists the registry URL schemes this build knows.
func Schemes() []string {
	s := make([]string, 0, len(openers))
	for k := range openers {
		s = append(s, k+"://")
	}
	sort.Strings(s)
	return s
}

// splitAddress validates an instance's host:port.
func splitAddress(addr string) (host string, port int, err error) {
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

// entryValue is the JSON an instance is registered with in key-value registries (etcd,
// ZooKeeper); the gateway reads it with upstream.ParseEntry.
type entryValue struct {
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Weight  int               `json:"weight"`
	Scheme  string            `json:"scheme,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// encodeEntry validates inst's address and scheme and returns its entryValue JSON.
func encodeEntry(inst Instance) ([]byte, error) {
	host, port, err := splitAddress(inst.Address)
	if err != nil {
		return nil, err
	}
	v := entryValue{Address: host, Port: port, Weight: inst.Weight, Meta: inst.Meta}
	switch inst.Scheme {
	case "", "http":
	case "https":
		v.Scheme = "https"
	default:
		return nil, fmt.Errorf("instance scheme %q is not http or https", inst.Scheme)
	}
	return json.Marshal(v)
}
