package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/configsource/etcdsource"
)

// configCmdTimeout bounds each etcd call of `switchyard config push|get`.
const configCmdTimeout = 10 * time.Second

// runConfig is `switchyard config push|get`: the routes document kept in one etcd key.
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprint(stderr, "usage: switchyard config push -to etcd://HOST:PORT/KEY (-expect-revision N | -force) [-etcd-ca F ...] FILE\n"+
			"       switchyard config get -from etcd://HOST:PORT/KEY [-etcd-ca F ...] > FILE\n"+
			"credentials: SWITCHYARD_ETCD_USERNAME, SWITCHYARD_ETCD_PASSWORD\n")
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "push":
		return runConfigPush(ctx, args[1:], stdout, stderr)
	case "get":
		return runConfigGet(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage()
		return 0
	}
	fmt.Fprintf(stderr, "switchyard config: unknown command %q\n", args[0])
	usage()
	return 2
}

// parseInterspersed parses fs's flags before and after positional arguments, so
// `push FILE -to URL` works as well as `push -to URL FILE`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseConfigCmd parses a `config push|get` command line: fs's flags plus the etcd TLS
// flags, the etcd URL in *target and nargs positional arguments. On failure src is nil and
// code the exit code (0 for -h).
func parseConfigCmd(fs *flag.FlagSet, args []string, target *string, nargs int, stderr io.Writer) (src *etcdSource, pos []string, code int) {
	var ef etcdFlags
	ef.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, 0
		}
		return nil, nil, 2
	}
	if *target == "" || len(pos) != nargs {
		fmt.Fprintf(stderr, "%s: want an etcd:// URL and %d argument(s) (see switchyard config -h)\n", fs.Name(), nargs)
		return nil, nil, 2
	}
	src, err = parseEtcdSource(*target, ef)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return nil, nil, 2
	}
	return src, pos, 0
}

func runConfigPush(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchyard config push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "etcd://HOST:PORT[,HOST:PORT]/KEY to write")
	expect := fs.Int64("expect-revision", -1, "write only if the key's mod revision is still N, the revision `config get` printed for the document you edited (0: the key must not exist yet)")
	force := fs.Bool("force", false, "write over whatever the key holds now (compare-and-swap only against the revision read just before writing)")
	src, pos, code := parseConfigCmd(fs, args, to, 1, stderr)
	if src == nil {
		return code
	}
	if (*expect < 0) == !*force {
		// Without the revision the edit started from, a compare against a fresh read only
		// guards the milliseconds before the write: another operator's push in between the
		// get and this push would be overwritten silently.
		fmt.Fprintln(stderr, "switchyard config push: give -expect-revision N (the revision `switchyard config get` printed for the document you edited; 0 for a new key), or -force to overwrite whatever is there")
		return 2
	}
	file := pos[0]
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard config push: %v\n", err)
		return 1
	}
	// The same strict validation every replica applies, before anything is written.
	if _, err := config.Parse(file, data); err != nil {
		printConfigError(stderr, err)
		fmt.Fprintf(stderr, "switchyard config push: %s is invalid: nothing written\n", file)
		return 1
	}
	cli, err := src.client()
	if err != nil {
		fmt.Fprintf(stderr, "switchyard config push: %v\n", err)
		return 1
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, configCmdTimeout)
	defer cancel()
	expectRev := *expect
	if expectRev < 0 {
		_, rev, err := etcdsource.Get(cctx, cli, src.key)
		switch {
		case errors.Is(err, etcdsource.ErrNotFound):
			expectRev = 0
		case err != nil:
			fmt.Fprintf(stderr, "switchyard config push: reading %s: %v\n", src.key, err)
			return 1
		default:
			expectRev = rev
		}
	}
	rev, err := etcdsource.Put(cctx, cli, src.key, data, expectRev)
	if err != nil {
		if errors.Is(err, etcdsource.ErrConflict) {
			fmt.Fprintf(stderr, "switchyard config push: %s: expected mod revision %d: %v; `switchyard config get` it, merge, push again\n", src.key, expectRev, err)
		} else {
			fmt.Fprintf(stderr, "switchyard config push: writing %s: %v\n", src.key, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "revision %d\n", rev)
	return 0
}

func runConfigGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchyard config get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "etcd://HOST:PORT[,HOST:PORT]/KEY to read")
	src, _, code := parseConfigCmd(fs, args, from, 0, stderr)
	if src == nil {
		return code
	}
	cli, err := src.client()
	if err != nil {
		fmt.Fprintf(stderr, "switchyard config get: %v\n", err)
		return 1
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, configCmdTimeout)
	defer cancel()
	doc, rev, err := etcdsource.Get(cctx, cli, src.key)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard config get: %s: %v\n", src.key, err)
		return 1
	}
	if _, err := stdout.Write(doc); err != nil {
		fmt.Fprintf(stderr, "switchyard config get: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "revision %d\n", rev)
	return 0
}
