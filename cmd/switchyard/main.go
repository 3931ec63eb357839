// Command switchyard is Switchyard: an HTTP reverse proxy whose upstream pools follow etcd,
// Consul or ZooKeeper. `switchyard -config routes.yaml` runs it; `switchyard validate -config F`
// checks a file; `switchyard register ...` is the registration sidecar; `switchyard version` says
// which build it is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Each stop signal is read on its own (signal.NotifyContext would swallow all but the
	// first): the first starts a graceful stop, a second one ends it at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(runSignals(context.Background(), sigs, os.Args[1:], os.Stdout, os.Stderr))
}

// run is runSignals without signals: ctx ending is the only stop request, and it skips
// server.drain_delay (see stops).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runSignals(ctx, nil, args, stdout, stderr)
}

// runSignals dispatches the subcommands, each stopped by what sigs delivers (SIGTERM,
// SIGINT) or ctx; it returns the process exit code.
func runSignals(ctx context.Context, sigs <-chan os.Signal, args []string, stdout, stderr io.Writer) int {
	st := watchStops(ctx, sigs)
	defer st.release()
	if len(args) > 0 {
		switch args[0] {
		case "register":
			return runRegister(st.ctx, args[1:], stderr)
		case "validate":
			return runValidate(st.ctx, args[1:], stdout, stderr)
		case "config":
			return runConfig(st.ctx, args[1:], stdout, stderr)
		case "version", "-version", "--version":
			printVersion(stdout)
			return 0
		case "serve":
			args = args[1:]
		}
	}
	return runServe(st, args, stderr)
}

// stops is how the process is asked to stop. ctx ends at the first request: the parent
// context ending, or the first SIGTERM or SIGINT (then context.Cause(ctx) is a signalStop).
// now closes at the next one, which turns a graceful stop into an immediate one.
//
// Only a signal gets server.drain_delay: it is the time a load balancer needs to notice that
// an orchestrator is stopping the gateway. A caller that cancels the context (a test, a
// program embedding the gateway) stops it directly, the drain of requests in flight included.
type stops struct {
	ctx     context.Context
	now     <-chan struct{}
	release func() // stops watching; ctx ends
}

// signalStop is the cause of a stop asked for by a signal.
type signalStop struct{ sig os.Signal }

func (s signalStop) Error() string {
	switch s.sig {
	case syscall.SIGTERM:
		return "SIGTERM received"
	case syscall.SIGINT:
		return "SIGINT received"
	}
	return "signal " + s.sig.String() + " received"
}

// watchStops reads sigs (nil: no signals) until release.
func watchStops(parent context.Context, sigs <-chan os.Signal) *stops {
	ctx, cancel := context.WithCancelCause(parent)
	now := make(chan struct{})
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case s := <-sigs:
				if ctx.Err() == nil {
					cancel(signalStop{s})
					continue
				}
				close(now)
				return
			case <-quit:
				return
			}
		}
	}()
	return &stops{ctx: ctx, now: now, release: func() {
		close(quit)
		<-done
		cancel(context.Canceled)
	}}
}

// flagHelp is returned when -h was asked for: usage printed, exit 0.
var flagHelp = errors.New("help requested")

// errFlagParse wraps errors the flag package has already printed with the usage.
var errFlagParse = errors.New("invalid flags")

// serveFlags are the flags of the default (serve) mode.
type serveFlags struct {
	config    string
	logFormat string
	logLevel  string
	validate  bool
	watch     bool
	etcd      etcdFlags
	src       *etcdSource // set by loadConfig when -config is etcd://
}

func parseServeFlags(args []string, stderr io.Writer) (serveFlags, error) {
	var f serveFlags
	fs := flag.NewFlagSet("switchyard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "routes.yaml", "path of the routes file, or etcd://HOST:PORT[,HOST:PORT]/KEY")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&f.validate, "validate", false, "check the config file and exit (same as `switchyard validate`)")
	fs.BoolVar(&f.watch, "watch", true, "reload the config when the file changes (SIGHUP always reloads)")
	f.etcd.register(fs)
	fs.StringVar(&f.etcd.cacheDir, "config-cache", defaultConfigCacheDir(), "directory of the last-known-good copy of an etcd:// config (\"\": none)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: switchyard [serve] [flags]\n       switchyard validate -config FILE\n       switchyard register -registry URL -service NAME -addr HOST:PORT [flags]\n       switchyard config push|get ...\n       switchyard version\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, flagHelp
		}
		return f, fmt.Errorf("%w: %w", errFlagParse, err) // the flag package printed it
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, errors.New(`-log-format: want "text" or "json"`)
}
