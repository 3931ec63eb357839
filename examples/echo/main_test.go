package main

import (
	"context"
	"encoding/json"
	"go.uber.org/goleak"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/upstream"
)

func TestEchoRegistersServesAndLeaves(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-listen", "127.0.0.1:0", "-service", "echo",
			"-registry", "etcd://" + srv.Endpoints()[0], "-propagation-delay", "10ms"}, &strings.Builder{})
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("echo never registered")
		}
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := cli.Get(gctx, "/services/echo/", clientv3.WithPrefix())
		gcancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 1 {
			ep, err := upstream.ParseEntry(resp.Kvs[0].Value)
			if err != nil {
				t.Fatalf("registered value %s: %v", resp.Kvs[0].Value, err)
			}
			addr = ep.Key
		}
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	var r reply
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if err != nil || r.Addr != addr || r.Path != "/hello" || r.Service != "echo" {
		t.Fatalf("reply %+v (err %v), want addr %s path /hello", r, err, addr)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d", c)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("echo did not stop")
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
