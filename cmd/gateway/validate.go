package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchyard/switchyard/config"
)

// runValidate checks a config file: exit 0 when valid, 1 with every error printed.
func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "routes.yaml", "path of the routes file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 1 && *path == "routes.yaml" {
		*path = fs.Arg(0) // `gateway validate FILE` works too
	}
	return validateFile(*path, stdout, stderr)
}

func validateFile(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes)\n", path, len(cfg.Routes))
	return 0
}

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
