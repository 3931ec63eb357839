package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/switchyard/switchyard/config"
)

// Embedded-server defaults.
const (
	DefaultClientURL = config.DefaultEmbeddedClientURL
	DefaultPeerURL   = config.DefaultEmbeddedPeerURL
	// embeddedReadyTimeout bounds the wait for the server to serve; a healthy single member
	// is ready in well under a second, so a longer wait means something is wrong (a port in
	// use by another etcd, a data dir of another cluster).
	embeddedReadyTimeout = 30 * time.Second
)

// Embedded is an etcd server running inside the gateway process, used when no registry is
// configured: services register into it exactly as into a standalone etcd.
type Embedded struct {
	etcd      *embed.Etcd
	logLevel  zap.AtomicLevel
	clientURL url.URL
	dataDir   string
	startup   time.Duration
	// endStreams ends the context of every gRPC stream the server runs (see endOnClose).
	endStreams context.CancelFunc
}

// StartEmbedded starts a single-member etcd server with data under cfg.DataDir (created 0700;
// "" means <user state dir>/switchyard/etcd) serving cfg.ClientURL, and waits until it serves
// or ctx ends. The caller must Close it.
func StartEmbedded(ctx context.Context, cfg *config.Embedded, log *slog.Logger) (*Embedded, error) {
	begin := time.Now()
	if cfg == nil {
		cfg = &config.Embedded{}
	}
	if log == nil {
		log = slog.Default()
	}
	curl, err := parseURL(cfg.ClientURL, DefaultClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client_url: %w", err)
	}
	purl, err := parseURL(cfg.PeerURL, DefaultPeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd peer_url: %w", err)
	}
	dir := cfg.DataDir
	if dir == "" {
		dir = config.DefaultDataDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data dir: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; registrations are no one else's.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data dir: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = "switchyard"
	ec.Dir = dir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = ec.Name + "=" + purl.String()
	ec.InitialClusterToken = "switchyard-embedded"
	// A lone member has no peer to miss heartbeats from, so short ticks cost nothing and
	// make the first election (and so start-up) take tens of milliseconds, not a second.
	ec.TickMs = 10
	ec.ElectionMs = 100
	// Registrations churn only on deploys; hourly compaction keeps the database small
	// without ever compacting a revision a watcher could still need soon.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "1h"
	zl, level := warnLogger()
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)
	streams, endStreams := context.WithCancel(context.Background())
	ec.GRPCAdditionalServerOptions = []grpc.ServerOption{grpc.ChainStreamInterceptor(endOnClose(streams))}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		endStreams()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	timer := time.NewTimer(embeddedReadyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		endStreams()
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-timer.C:
		endStreams()
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready within %s", embeddedReadyTimeout)
	case <-ctx.Done():
		endStreams()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", ctx.Err())
	}
	em := &Embedded{etcd: e, logLevel: level, clientURL: *curl, dataDir: dir, startup: time.Since(begin), endStreams: endStreams}
	log.Info("embedded etcd serving",
		"client_url", curl.String(), "data_dir", dir, "startup", em.startup.Round(time.Millisecond),
		"register_with", fmt.Sprintf(`L=$(etcdctl --endpoints=%[1]s lease grant 10 | cut -d' ' -f2) && `+
			`etcdctl --endpoints=%[1]s put --lease=$L %[2]susers/127.0.0.1:9001 '{"address":"127.0.0.1","port":9001}' && `+
			`etcdctl --endpoints=%[1]s lease keep-alive $L`, curl.Host, DefaultPrefix),
		"or", "switchyard register -registry etcd://"+curl.Host+" -service users -addr 127.0.0.1:9001")
	return em, nil
}

// ClientURL is the URL clients reach the server at.
func (e *Embedded) ClientURL() string { return e.clientURL.String() }

// Endpoints returns the client address as host:port, ready for config.Etcd.Endpoints.
func (e *Embedded) Endpoints() []string { return []string{e.clientURL.Host} }

// DataDir is where the server keeps its data.
func (e *Embedded) DataDir() string { return e.dataDir }

// StartupTime is how long StartEmbedded took until the server served.
func (e *Embedded) StartupTime() time.Duration { return e.startup }

// Err reports a fatal server error after start-up (a listener that failed, say).
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the server; clients see it as an etcd outage. etcd reports its own listeners
// closing as errors ("setting up serving ... failed"); on a deliberate stop those lines
// would only alarm, so its log is silenced first.
//
// The streams clients hold open are ended first. etcd's Close stops its gRPC server
// gracefully, waiting for running RPCs, and a registered service's lease keep-alive or a
// watch never ends by itself: with any service registered, Close waited out etcd's request
// timeout (5 s and two election timeouts) before cutting them, and the gateway's exit with it.
// Nothing is lost by not waiting: a keep-alive or watch has no result to deliver, and the
// clients retry (against the next gateway) as they would after any outage.
func (e *Embedded) Close() {
	e.logLevel.SetLevel(zapcore.FatalLevel)
	e.endStreams()
	e.etcd.Close()
}

// endOnClose is a stream interceptor that ends a stream's context when closing ends, as a
// client cancelling it would: etcd's watch and lease keep-alive handlers then return. A
// stream that starts after that (a client reconnecting before the listener closes) ends at
// once.
func endOnClose(closing context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		defer context.AfterFunc(closing, cancel)()
		return handler(srv, endableStream{ss, ctx})
	}
}

// endableStream is a server stream with a context of endOnClose's.
type endableStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s endableStream) Context() context.Context { return s.ctx }

func parseURL(s, def string) (*url.URL, error) {
	if s == "" {
		s = def
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%q: want http://host:port", s)
	}
	return u, nil
}

// warnLogger passes etcd's own warnings and errors to stderr and drops its chatty info
// lines; the returned level lets Close silence it.
func warnLogger() (*zap.Logger, zap.AtomicLevel) {
	level := zap.NewAtomicLevelAt(zapcore.WarnLevel)
	zc := zap.NewProductionConfig()
	zc.Level = level
	zc.Sampling = nil
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	lg, err := zc.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return dropCore{c} }))
	if err != nil {
		return zap.NewNop(), level
	}
	return lg, level
}

// irrelevantWarnings are etcd start-up warnings that do not apply to a single loopback
// member without auth, printed on every start.
var irrelevantWarnings = map[string]bool{
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true,
}

// dropCore drops irrelevantWarnings.
type dropCore struct{ zapcore.Core }

func (d dropCore) With(f []zapcore.Field) zapcore.Core { return dropCore{d.Core.With(f)} }

func (d dropCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if irrelevantWarnings[e.Message] {
		return ce
	}
	return d.Core.Check(e, ce)
}
