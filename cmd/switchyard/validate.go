package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchyard/switchyard/config"
)

// exitInterrupted is the exit code of a command stopped by SIGINT or SIGTERM: 128+SIGINT,
// what shells report for Ctrl-C, so scripts can tell "stopped" from "invalid" (1).
const exitInterrupted = 130

// runValidate checks a config file: exit 0 when valid, 1 with the errors printed, 130 when
// interrupted.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchyard validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "routes.yaml", "path of the routes file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 1 && *path == "routes.yaml" {
		*path = fs.Arg(0) // `switchyard validate FILE` works too
	}
	return validateFile(ctx, *path, stdout, stderr)
}

// validateFile loads the file aside and waits for it or for ctx. main turns SIGINT and
// SIGTERM into ctx (so they no longer kill the process), and a read can block for good on
// a FIFO, a terminal or a hung mount: without the select, Ctrl-C would do nothing. The
// abandoned load ends with the process.
func validateFile(ctx context.Context, path string, stdout, stderr io.Writer) int {
	type loaded struct {
		cfg *config.Config
		err error
	}
	done := make(chan loaded, 1)
	go func() {
		cfg, err := config.Load(path)
		done <- loaded{cfg, err}
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintf(stderr, "%s: interrupted\n", path)
		return exitInterrupted
	case l := <-done:
		if l.err != nil {
			printConfigError(stderr, l.err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok (%d routes)\n", path, len(l.cfg.Routes))
		return 0
	}
}

// printConfigError prints one error per line. config bounds the list (at most 100 and a
// line counting the rest), so a hostile file cannot flood the terminal or a log.
func printConfigError(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err)
}
