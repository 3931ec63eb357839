package main

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCallsReachEveryInstance runs the example against an embedded etcd: every call
// succeeds, and round robin through the resolver reaches each registered instance (200
// calls, so the connections the balancer opens in parallel are all up long before the end).
func TestCallsReachEveryInstance(t *testing.T) {
	srv := etcdtest.Start(t)
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"-etcd", srv.Endpoints()[0], "-instances", "3", "-calls", "200"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 200 {
		t.Fatalf("%d lines of output, want 200:\n%s", len(lines), stdout.String())
	}
	answered := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 5 || f[4] != "SERVING" {
			t.Fatalf("line %q", l)
		}
		answered[f[2]] = true
	}
	if len(answered) != 3 {
		t.Fatalf("calls reached %d instances, want 3:\n%s", len(answered), stdout.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-instances", "0"}, {"-calls", "5000"}, {"-nope"}} {
		if code := run(context.Background(), args, &strings.Builder{}, &strings.Builder{}); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
