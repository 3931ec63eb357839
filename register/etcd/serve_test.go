package etcd

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/register"
)

// TestServeAndRegisterOrder checks the graceful exit: the key goes first, the server keeps
// answering during the propagation delay, and an in-flight request is drained.
func TestServeAndRegisterOrder(t *testing.T) {
	etcdNoLeaks(t)
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	release := make(chan struct{})
	var slowDone atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		<-release
		slowDone.Store(true)
		io.WriteString(w, "slow")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	reg, err := New("etcd://"+srv.Endpoints()[0], register.Instance{Service: "echo", Address: addr}, register.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- register.ServeAndRegister(ctx, hs, ln, reg, register.ShutdownOptions{PropagationDelay: 500 * time.Millisecond, Logger: quiet})
	}()
	key := "/services/echo/" + addr
	eventually(t, "registration", func() bool { _, _, ok := getKey(t, cli, key); return ok })

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	slow := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	time.Sleep(50 * time.Millisecond) // let /slow reach its handler

	cancel()
	eventually(t, "deregistration", func() bool { _, _, ok := getKey(t, cli, key); return !ok })
	// Deregistered, still serving: a gateway that has not seen the removal yet loses nothing.
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("request during the propagation delay: %v", err)
	}
	resp.Body.Close()
	close(release)
	if err := <-slow; err != nil || !slowDone.Load() {
		t.Fatalf("in-flight request not drained: err %v done %v", err, slowDone.Load())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeAndRegister: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ServeAndRegister did not return")
	}
}
