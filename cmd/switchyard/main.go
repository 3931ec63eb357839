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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches the subcommands; it returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "register":
			return runRegister(ctx, args[1:], stderr)
		case "validate":
			return runValidate(ctx, args[1:], stdout, stderr)
		case "version", "-version", "--version":
			printVersion(stdout)
			return 0
		case "serve":
			args = args[1:]
		}
	}
	return runServe(ctx, args, stderr)
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
}

func parseServeFlags(args []string, stderr io.Writer) (serveFlags, error) {
	var f serveFlags
	fs := flag.NewFlagSet("switchyard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "routes.yaml", "path of the routes file")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&f.validate, "validate", false, "check the config file and exit (same as `switchyard validate`)")
	fs.BoolVar(&f.watch, "watch", true, "reload the config when the file changes (SIGHUP always reloads)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: switchyard [serve] [flags]\n       switchyard validate -config FILE\n       switchyard register -registry URL -service NAME -addr HOST:PORT [flags]\n       switchyard version\n\nflags:\n")
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
