package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCommandLineAnswers(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		code        int
		out, errOut string // substrings of stdout and stderr
	}{
		{[]string{"version"}, 0, "switchyard ", ""},
		{[]string{"-version"}, 0, "switchyard ", ""},
		{[]string{"--version"}, 0, "switchyard ", ""},
		{[]string{"valdiate"}, 2, "", `unexpected argument "valdiate"`},
		{[]string{"-nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"-h"}, 0, "", "switchyard version"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.errOut) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d with %q and %q", code, stdout.String(), stderr.String(), tc.code, tc.out, tc.errOut)
			}
		})
	}
	version, commit = "v9.9.9", "abc123"
	defer func() { version, commit = "", "" }()
	var out bytes.Buffer
	printVersion(&out)
	if !strings.HasPrefix(out.String(), "switchyard v9.9.9 (commit abc123, built ") {
		t.Fatalf("with -ldflags values: %q", out.String())
	}
}
