package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/etcdtest"
)

// syncBuffer is stderr shared by runRegister's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunRegisterUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing service", []string{"-addr", "127.0.0.1:1"}, 2, "-service and -addr are required"},
		{"bad meta", []string{"-service", "s", "-addr", "127.0.0.1:1", "-meta", "novalue"}, 2, "want key=value"},
		{"unknown scheme", []string{"-registry", "gopher://x", "-service", "s", "-addr", "127.0.0.1:1"}, 2, "unknown scheme"},
		{"stray argument", []string{"-service", "s", "-addr", "127.0.0.1:1", "extra"}, 2, "unexpected argument"},
		{"help", []string{"-h"}, 0, "-propagation-delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr syncBuffer
			if code := runRegister(context.Background(), tt.args, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestRunRegisterEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runRegister(ctx, []string{"-registry", "etcd://" + srv.Endpoints()[0], "-service", "users",
			"-addr", "127.0.0.1:9001", "-id", "u1", "-weight", "2", "-meta", "zone=a", "-meta", "v=2",
			"-ttl", "5s", "-propagation-delay", "10ms"}, &stderr)
	}()
	const key = "/services/users/u1"
	get := func() string {
		gctx, gcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer gcancel()
		resp, err := cli.Get(gctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("key %s never written; stderr:\n%s", key, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := `{"address":"127.0.0.1","port":9001,"weight":2,"meta":{"v":"2","zone":"a"}}`
	if got := get(); got != want {
		t.Fatalf("value %s, want %s", got, want)
	}
	cancel() // what SIGTERM does through main's signal context
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("runRegister did not return after cancel")
	}
	if v := get(); v != "" {
		t.Fatalf("key still there after exit: %s", v)
	}
}
