package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/upstream"
)

// runServe runs the gateway until a stop request (SIGTERM/SIGINT, see stops), then drains
// and returns 0.
func runServe(st *stops, args []string, stderr io.Writer) int {
	ctx := st.ctx
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return 0
		}
		if !errors.Is(err, errFlagParse) {
			fmt.Fprintf(stderr, "switchyard: %v (see switchyard -h)\n", err)
		}
		return 2
	}
	if f.validate {
		return validateFile(ctx, f.config, os.Stdout, stderr)
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		io.WriteString(stderr, err.Error()+"\n")
		return 2
	}
	slog.SetDefault(log)
	// SIGHUP is caught from here on: before Notify its default action ends the process, and a
	// reload asked for during startup is kept (one is buffered) and done once serving.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := loadConfig(ctx, &f, log)
	if err != nil {
		printConfigError(stderr, err)
		return 1
	}
	if err := serve(st, cfg, f, hup, log); err != nil {
		log.Error("gateway stopped", "error", err)
		return 1
	}
	return 0
}

func serve(st *stops, cfg *config.Config, f serveFlags, hup <-chan os.Signal, log *slog.Logger) error {
	ctx := st.ctx
	started := time.Now()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	regs, closeAll, err := startRegistries(ctx, cfg, upstream.NewDiscoveryMetrics(reg), log)
	if err != nil {
		return err
	}
	closeRegistries := sync.OnceFunc(closeAll)
	defer closeRegistries()

	transport, err := proxy.NewTransport(cfg.Transport)
	if err != nil {
		return err
	}
	closeRedis, err := startRedis(cfg, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	handler := proxy.New(proxy.Options{
		Transport: transport,
		Logger:    log,
		Metrics:   proxy.NewMetrics(reg),
		Pacing: &proxy.ClientPacing{
			Idle:         cfg.Server.BodyIdleTimeout,
			MinRate:      cfg.Server.MinBodyRate,
			Grace:        cfg.Server.BodyRateGrace,
			ReadTimeout:  cfg.Server.ReadTimeout,
			WriteTimeout: cfg.Server.WriteTimeout,
		},
	})
	// Watchers outlive ctx (SIGTERM) until the listener has drained, so requests still in
	// flight keep fresh pools.
	gwCtx, stopWatchers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatchers()
	gw := gateway.New(gwCtx, gateway.Options{
		Registries:   regs,
		Handler:      handler,
		HealthClient: &http.Client{Transport: transport},
		Registerer:   reg,
		Logger:       log,
	})
	if err := gw.Apply(cfg); err != nil {
		return err
	}
	gw.CountReload(true)

	// chi serves the listener with the proxy as its only handler: with no chi routes, chi
	// dispatches straight to it and adds nothing to the hot path.
	mux := chi.NewMux()
	mux.NotFound(handler.ServeHTTP)
	mux.MethodNotAllowed(handler.ServeHTTP)
	// Upgraded connections (WebSocket) are hijacked, so Shutdown does not see them, and event
	// streams never end by themselves: streams ends both in the drain. The open connections
	// count is for its log lines.
	streams := proxy.NewStreams()
	var conns atomic.Int64
	public := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
		BaseContext:       func(net.Listener) context.Context { return proxy.WithStreams(context.Background(), streams) },
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				conns.Add(1)
			case http.StateHijacked, http.StateClosed:
				conns.Add(-1)
			}
		},
	}
	// Shutdown runs this when it closes the listener: WebSockets get their Close frame and
	// event streams their end then.
	public.RegisterOnShutdown(streams.Drain)
	public.Protocols.SetHTTP1(true)
	if t := cfg.Server.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("server.tls: %w", err)
		}
		public.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		public.Protocols.SetHTTP2(true) // negotiated by ALPN
	} else {
		public.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge, for TLS terminated in front
	}
	var stopping atomic.Pointer[string] // why the gateway is stopping, once it is
	adminSrv := &http.Server{
		Handler: admin.New(admin.Options{
			Source: gw, Gatherer: reg, Logger: log,
			Exposed: cfg.AdminExpose, Debug: cfg.AdminDebug,
			Draining: func() (string, bool) {
				if r := stopping.Load(); r != nil {
					return *r, true
				}
				return "", false
			},
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	publicLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if n := cfg.Server.MaxConnections; n > 0 {
		// Past n open connections Accept waits, so further clients queue in the kernel's
		// backlog instead of each costing a goroutine and buffers (issue #11, item 15).
		publicLn = connlimit.Listen(publicLn, n)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		publicLn.Close()
		return err
	}
	errc := make(chan error, 2)
	go func() {
		if public.TLSConfig != nil {
			// ServeTLS (not a tls.Listener of ours) sets up ALPN for the enabled protocols.
			errc <- public.ServeTLS(publicLn, "", "")
			return
		}
		errc <- public.Serve(publicLn)
	}()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	log.Info("switchyard serving", "listen", publicLn.Addr().String(), "admin", adminLn.Addr().String(),
		"routes", len(cfg.Routes), "config", cfg.Path, "max_connections", cfg.Server.MaxConnections,
		"startup", time.Since(started).Round(time.Millisecond))
	if cfg.AdminExpose {
		log.Warn("admin API reachable beyond loopback (admin_expose: true) with no Host check: keep it behind a firewall", "admin", adminLn.Addr().String())
	}
	if cfg.AdminDebug {
		log.Info("pprof and expvar served under /debug/ on the admin listener (admin_debug: true)")
	}

	reloadDone := startConfigReloader(gwCtx, gw, cfg, f, hup, log)

	var serveErr error
	var cause error
	select {
	case <-ctx.Done():
		cause = context.Cause(ctx)
	case serveErr = <-errc:
		cause = fmt.Errorf("a listener failed: %w", serveErr)
	}
	stopBegan := time.Now()
	reason := "shutting down: " + stopCause(cause)
	stopping.Store(&reason)
	drained := drain(drainPlan{
		public: public, streams: streams, conns: &conns, errc: errc, now: st.now, log: log,
		delay: drainDelay(cause, cfg.Server.DrainDelay), grace: cfg.Server.ShutdownGrace, reason: reason,
	}, &serveErr)
	adminSrv.Close()
	stopWatchers()
	<-reloadDone
	gw.Wait()
	closeRegistries()
	log.Info("stopped", "shutdown", time.Since(stopBegan).Round(time.Millisecond), "drained", drained)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// stopCause words why the gateway stops, for /readyz and the log.
func stopCause(cause error) string {
	var sig signalStop
	if errors.As(cause, &sig) {
		return sig.Error()
	}
	if errors.Is(cause, context.Canceled) {
		return "stop requested"
	}
	return cause.Error()
}

// drainDelay is server.drain_delay when a signal asked for the stop: only then may a load
// balancer still be sending connections (see stops).
func drainDelay(cause error, configured time.Duration) time.Duration {
	var sig signalStop
	if errors.As(cause, &sig) {
		return configured
	}
	return 0
}

// drainPlan is what drain works with.
type drainPlan struct {
	public  *http.Server
	streams *proxy.Streams
	conns   *atomic.Int64 // open client connections, upgraded ones (tunnels) left out
	errc    <-chan error  // the listeners' Serve results
	now     <-chan struct{}
	log     *slog.Logger
	delay   time.Duration // server.drain_delay, or 0 to skip the phase
	grace   time.Duration // server.shutdown_grace
	reason  string
}

// drain stops the public listener in two phases, once /readyz already fails. For delay it
// goes on accepting and serving, so connections a load balancer sends before it notices are
// served; HTTP/1 responses carry Connection: close, so keep-alive clients reconnect (through
// the load balancer, elsewhere) after a complete response rather than race a close later. Then Shutdown closes the listener and waits up to grace for requests
// in flight: it closes idle keep-alive connections at once, ends each busy HTTP/1.1 one
// after its response (with Connection: close if its headers were not sent yet) and sends
// HTTP/2 connections GOAWAY; streams.Drain ends WebSockets with a Close frame and event
// streams after their event in progress. Whatever is left when grace ends (a long download
// or upload, an upgraded protocol other than WebSocket) is cut. A second stop request (now)
// cuts everything at once, in either phase. drain reports whether every request and tunnel
// finished; a listener's failure meanwhile is kept in serveErr.
func drain(p drainPlan, serveErr *error) bool {
	forced := false
	p.streams.CloseKeepAlives()
	if p.delay > 0 && *serveErr == nil {
		p.log.Info("draining: not ready, still serving", "drain_delay", p.delay, "reason", p.reason)
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-p.now:
			forced = true
		case *serveErr = <-p.errc:
		}
		t.Stop()
	}
	drained := false
	if !forced {
		p.log.Info("draining: stopped accepting, waiting for in-flight requests", "shutdown_grace", p.grace,
			"open_connections", p.conns.Load(), "tunnels", p.streams.Tunnels(), "reason", p.reason)
		drainStart := time.Now()
		graceCtx, cancel := context.WithTimeout(context.Background(), p.grace)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			err := p.public.Shutdown(graceCtx)
			if err == nil {
				err = p.streams.Wait(graceCtx)
			}
			done <- err
		}()
		select {
		case err := <-done:
			drained = err == nil
			if drained {
				p.log.Info("draining: every request and stream finished", "took", time.Since(drainStart).Round(time.Millisecond))
			} else {
				p.log.Warn("drain incomplete after shutdown_grace: closing the remaining connections",
					"shutdown_grace", p.grace, "open_connections", p.conns.Load(), "tunnels", p.streams.Tunnels())
			}
		case <-p.now:
			forced = true
			cancel()
			<-done
		}
	}
	if forced {
		p.log.Warn("stop requested again: closing every connection now", "open_connections", p.conns.Load(), "tunnels", p.streams.Tunnels())
	}
	if !drained {
		_ = p.public.Close()
		p.streams.Close()
		// Closed connections end their relays at once; the bound is for a relay stuck on
		// something else, which would otherwise hold the exit.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.streams.Wait(ctx); err != nil {
			p.log.Warn("upgraded connections still relaying after being closed", "tunnels", p.streams.Tunnels())
		}
	}
	return drained
}

// startReloader reloads the config on a signal from hup and, with watch on, when the file
// changes from what was loaded (its SHA-256 is loaded) or when a keys or users file the
// config reads changes (files: the loaded config's AuthFiles). The returned channel closes
// when it has stopped (after ctx ends).
func startReloader(ctx context.Context, gw *gateway.Gateway, path string, loaded []byte, files []config.AuthFile, watch bool, hup <-chan os.Signal, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	changed := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	var authFiles *authFileWatches
	var authChanged <-chan struct{} // nil without watch: never ready
	if watch {
		authFiles = newAuthFileWatches(ctx, log)
		authFiles.sync(files)
		authChanged = authFiles.changed
		go func() {
			defer close(watchDone)
			err := config.WatchFile(ctx, path, loaded, 100*time.Millisecond, func() {
				select {
				case changed <- struct{}{}:
				default:
				}
			})
			if err != nil && ctx.Err() == nil {
				log.Warn("config file watch stopped; SIGHUP still reloads", "error", err)
			}
		}()
	} else {
		close(watchDone)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				<-watchDone
				authFiles.stop()
				return
			case <-hup:
				log.Info("SIGHUP: reloading config", "file", path)
			case <-changed:
				log.Info("config file changed: reloading", "file", path)
			case <-authChanged: // logged by the watch, with the file's name
			}
			// Reload logs and counts its own errors; the old config keeps serving.
			if gw.Reload(path) == nil {
				authFiles.sync(gw.Config().AuthFiles)
			}
		}
	}()
	return done
}
