package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time by the image and release builds:
//
//	go build -ldflags "-X main.version=v0.2.0 -X main.commit=$(git rev-parse HEAD) -X main.date=..."
//
// A plain `go build` leaves them empty and versionInfo falls back to what the Go toolchain
// recorded (the module version, and the VCS revision and time when built in a checkout).
var version, commit, date string

// buildInfo describes this binary.
type buildInfo struct {
	Version, Commit, Date, Go string
}

// versionInfo is the binary's version, commit and build date: the -ldflags values when set,
// else the toolchain's build info, else "unknown".
func versionInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			}
		}
	}
	for _, f := range []*string{&b.Version, &b.Commit, &b.Date} {
		if *f == "" {
			*f = "unknown"
		}
	}
	return b
}

// printVersion writes `switchyard VERSION (commit C, built D, GO)`.
func printVersion(w io.Writer) {
	b := versionInfo()
	fmt.Fprintf(w, "switchyard %s (commit %s, built %s, %s)\n", b.Version, b.Commit, b.Date, b.Go)
}
