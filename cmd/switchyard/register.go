package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/switchyard/switchyard/register"
	// The sidecar speaks to every registry; each blank import adds its URL scheme to
	// register.Open.
	_ "github.com/switchyard/switchyard/register/consul"
	_ "github.com/switchyard/switchyard/register/etcd"
	_ "github.com/switchyard/switchyard/register/zookeeper"
)

// metaFlag collects repeated -meta k=v flags.
type metaFlag map[string]string

func (m metaFlag) String() string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	m[k] = v
	return nil
}

// runRegister is `switchyard register`: a sidecar that keeps one instance registered until ctx
// ends (SIGTERM/SIGINT in main), then deregisters, waits for the removal to propagate, and
// exits 0, also when the stop comes while it is still registering. Exit 2 is a usage error,
// 1 a registration failure.
func runRegister(ctx context.Context, args []string, stderr io.Writer) int {
	var (
		inst      register.Instance
		opts      register.Options
		reg       string
		tags      string
		propagate time.Duration
		meta      = metaFlag{}
	)
	fs := flag.NewFlagSet("switchyard register", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&reg, "registry", "etcd://127.0.0.1:2379", "registry URL: "+strings.Join(register.Schemes(), "host:port, ")+"host:port")
	fs.StringVar(&inst.Service, "service", "", "service name, as routes.yaml's service: names it (required)")
	fs.StringVar(&inst.Address, "addr", "", "host:port the gateway should dial (required)")
	fs.StringVar(&inst.ID, "id", "", "instance id, unique within the service (default: -addr)")
	fs.StringVar(&inst.Scheme, "scheme", "http", "scheme the gateway uses: http or https")
	fs.IntVar(&inst.Weight, "weight", 1, "relative share under the weighted policy")
	fs.Var(meta, "meta", "metadata key=value (repeatable)")
	fs.StringVar(&tags, "tags", "", "comma-separated tags (Consul)")
	fs.DurationVar(&opts.TTL, "ttl", 10*time.Second, "etcd lease TTL / ZooKeeper session timeout: how long a dead instance lingers")
	fs.StringVar(&opts.Prefix, "prefix", "", "etcd key prefix (default /services/) or ZooKeeper root (default /services)")
	fs.StringVar(&opts.Check.HTTP, "check-http", "", "Consul: URL the agent checks, e.g. http://127.0.0.1:9001/healthz")
	fs.StringVar(&opts.Check.TCP, "check-tcp", "", "Consul: host:port the agent connects to")
	fs.DurationVar(&opts.Check.TTL, "check-ttl", 0, "Consul: TTL check the sidecar passes every TTL/2")
	fs.DurationVar(&opts.Check.DeregisterCriticalAfter, "deregister-after", 0, "Consul: remove the instance after its check is critical this long (default 1m)")
	fs.DurationVar(&propagate, "propagation-delay", time.Second, "wait after deregistering before exiting, so gateways stop routing first")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchyard register: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if inst.Service == "" || inst.Address == "" {
		fmt.Fprintln(stderr, "switchyard register: -service and -addr are required")
		fs.Usage()
		return 2
	}
	if len(meta) > 0 {
		inst.Meta = meta
	}
	for t := range strings.SplitSeq(tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			inst.Tags = append(inst.Tags, t)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("service", inst.Service, "addr", inst.Address)
	opts.Logger = log

	r, err := register.Open(reg, inst, opts)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard register: %v\n", err)
		return 2
	}
	if err := r.Register(ctx); err != nil {
		if ctx.Err() == nil {
			log.Error("register failed", "registry", reg, "err", err)
			deregister(ctx, r, log)
			return 1
		}
		// SIGTERM while the registration was on its way is a stop, not a failure. Register
		// has removed what it may have written; Deregister below makes sure.
		log.Info("stopped during registration", "registry", reg, "err", err)
	} else {
		log.Info("registered; keeping the registration alive until SIGTERM or SIGINT", "registry", reg)
		<-ctx.Done()
	}
	deregister(ctx, r, log)
	if propagate > 0 {
		time.Sleep(propagate)
	}
	return 0
}

// deregisterTimeout bounds the sidecar's deregistration; past it the registry drops the
// entry when its TTL runs out.
const deregisterTimeout = 10 * time.Second

// deregister removes r's registration, best effort. ctx has usually ended (that is why we
// are here), so the call gets its own bounded context that keeps only ctx's values.
func deregister(ctx context.Context, r register.Registrar, log *slog.Logger) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
	defer cancel()
	if err := r.Deregister(dctx); err != nil {
		log.Warn("deregister failed; the registry drops the entry when its TTL runs out", "err", err)
		return
	}
	log.Info("deregistered")
}
