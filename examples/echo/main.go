// Command echo is the README walk-through's backend: an HTTP service that answers with its
// own address and registers itself in the gateway's registry, deregistering on SIGTERM
// before it stops serving, so a rolling restart drops no request.
//
//	echo -listen 127.0.0.1:9001 -service users -registry etcd://127.0.0.1:2379
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/switchyard/switchyard/register"
	// echo takes any registry on its command line, so it links all three; a service that
	// uses one registry imports only that one and links no other client.
	_ "github.com/switchyard/switchyard/register/consul"
	_ "github.com/switchyard/switchyard/register/etcd"
	_ "github.com/switchyard/switchyard/register/zookeeper"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

// run parses flags, serves and registers until SIGTERM/SIGINT or ctx ends; it returns the
// exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9001", "address to serve on (port 0 picks a free one)")
	service := fs.String("service", "users", "service name to register under")
	registry := fs.String("registry", "etcd://127.0.0.1:2379", "registry URL (etcd://, consul://, zk://); empty: do not register")
	ttl := fs.Duration("ttl", 10*time.Second, "registration TTL")
	delay := fs.Duration("propagation-delay", time.Second, "keep serving this long after deregistering")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: handler(*service, addr), ReadHeaderTimeout: 10 * time.Second}

	var reg register.Registrar = noRegistry{}
	if *registry != "" {
		reg, err = register.Open(*registry, register.Instance{Service: *service, Address: addr},
			register.Options{TTL: *ttl, Logger: log})
		if err != nil {
			_ = ln.Close()
			log.Error("registry", "err", err)
			return 2
		}
	}
	log.Info("echo serving", "addr", addr, "service", *service, "registry", *registry)
	if err := register.ServeAndRegister(ctx, srv, ln, reg, register.ShutdownOptions{PropagationDelay: *delay, Logger: log}); err != nil {
		log.Error("echo", "err", err)
		return 1
	}
	return 0
}

// reply is what echo answers: enough to see which instance served a request and what the
// gateway forwarded.
type reply struct {
	Service string `json:"service"`
	Addr    string `json:"addr"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Host    string `json:"host"`
	XFF     string `json:"x_forwarded_for,omitempty"`
}

func handler(service, addr string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Addr", addr)
		_ = json.NewEncoder(w).Encode(reply{Service: service, Addr: addr, Method: r.Method,
			Path: r.URL.Path, Host: r.Host, XFF: r.Header.Get("X-Forwarded-For")})
	})
	return mux
}

// noRegistry serves without registering (-registry "").
type noRegistry struct{}

func (noRegistry) Register(context.Context) error   { return nil }
func (noRegistry) Deregister(context.Context) error { return nil }
