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

// runServe runs the gateway until ctx ends (SIGTERM/SIGINT), then drains and returns 0.
func runServe(ctx context.Context, args []string, stderr io.Writer) int {
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
	cfg, err := config.Load(f.config)
	if err != nil {
		printConfigError(stderr, err)
		return 1
	}
	if err := serve(ctx, cfg, f, hup, log); err != nil {
		log.Error("gateway stopped", "error", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg *config.Config, f serveFlags, hup <-chan os.Signal, log *slog.Logger) error {
	started := time.Now()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	regs, closeRegistries, err := startRegistries(ctx, cfg, upstream.NewDiscoveryMetrics(reg), log)
	if err != nil {
		return err
	}
	defer closeRegistries()

	transport, err := proxy.NewTransport(cfg.Transport)
	if err != nil {
		return err
	}
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
	public := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
	}
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
	adminSrv := &http.Server{
		Handler: admin.New(admin.Options{
			Source: gw, Gatherer: reg, Logger: log,
			Exposed: cfg.AdminExpose, Debug: cfg.AdminDebug,
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

	reloadDone := startReloader(gwCtx, gw, cfg.Path, cfg.Digest, f.watch, hup, log)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("shutting down: draining in-flight requests", "grace", cfg.Server.ShutdownGrace)
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
	defer cancel()
	if err := public.Shutdown(drainCtx); err != nil {
		log.Warn("drain incomplete; closing remaining connections", "error", err)
		public.Close()
	}
	adminSrv.Close()
	stopWatchers()
	<-reloadDone
	gw.Wait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	log.Info("stopped")
	return nil
}

// startReloader reloads the config on a signal from hup and, with watch on, when the file
// changes from what was loaded (its SHA-256 is loaded). The returned channel closes when it
// has stopped (after ctx ends).
func startReloader(ctx context.Context, gw *gateway.Gateway, path string, loaded []byte, watch bool, hup <-chan os.Signal, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	changed := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	if watch {
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
				return
			case <-hup:
				log.Info("SIGHUP: reloading config", "file", path)
			case <-changed:
				log.Info("config file changed: reloading", "file", path)
			}
			_ = gw.Reload(path) // logs and counts its own errors; the old config keeps serving
		}
	}()
	return done
}
