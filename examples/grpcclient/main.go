// Command grpcclient shows both halves of client-side discovery with etcd: it starts gRPC
// server instances (the standard health service) on loopback, registers each in etcd with
// register/etcd, then calls the service through grpc.NewClient("etcd:///NAME") with the
// grpcresolver builder and round robin, printing which instance answered each call. On
// exit the instances deregister before they stop.
//
//	go run ./cmd/switchyard &    # the gateway's embedded etcd on 127.0.0.1:2379
//	go run ./examples/grpcclient -etcd 127.0.0.1:2379 -instances 3 -calls 6
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/switchyard/switchyard/client/grpcresolver"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/register"
	registeretcd "github.com/switchyard/switchyard/register/etcd"
	"github.com/switchyard/switchyard/upstream/etcd"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run parses flags, serves, registers, calls, and cleans up; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("grpcclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("etcd", "127.0.0.1:2379", "etcd client address, host:port")
	service := fs.String("service", "greeter", "service name to register and call")
	instances := fs.Int("instances", 2, "gRPC server instances to start (1-16)")
	calls := fs.Int("calls", 4, "calls to make through the resolver (1-1000)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *instances < 1 || *instances > 16 || *calls < 1 || *calls > 1000 {
		fmt.Fprintln(stderr, "grpcclient: -instances must be 1-16 and -calls 1-1000")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := callThroughResolver(ctx, *endpoint, *service, *instances, *calls, stdout, log); err != nil {
		fmt.Fprintln(stderr, "grpcclient:", err)
		return 1
	}
	return 0
}

func callThroughResolver(ctx context.Context, endpoint, service string, instances, calls int, stdout io.Writer, log *slog.Logger) error {
	// The service side: serve, then register (register/etcd keeps a lease alive).
	for range instances {
		stop, err := serveAndRegister(ctx, endpoint, service, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	// The client side: the gateway's etcd discoverer behind a gRPC resolver.
	cli, err := etcd.NewClient(&config.Etcd{Endpoints: []string{endpoint}})
	if err != nil {
		return err
	}
	defer cli.Close()
	builder := grpcresolver.New(config.RegistryEtcd, etcd.New(cli, etcd.Options{Logger: log}), grpcresolver.Options{Logger: log})
	conn, err := grpc.NewClient("etcd:///"+service,
		grpc.WithResolvers(builder),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return err
	}
	defer conn.Close()

	health := healthpb.NewHealthClient(conn)
	for i := range calls {
		var p peer.Peer
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		// WaitForReady: the first call waits for the resolver's first answer and a
		// connection instead of failing while the channel is still connecting.
		resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			return fmt.Errorf("call %d: %w", i+1, err)
		}
		fmt.Fprintf(stdout, "call %d: %s answered %s\n", i+1, p.Addr, resp.GetStatus())
	}
	return nil
}

// serveAndRegister starts one gRPC instance on a free loopback port and registers it; stop
// deregisters it, then stops it gracefully.
func serveAndRegister(ctx context.Context, endpoint, service string, log *slog.Logger) (stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	stopServer := func() {
		srv.GracefulStop()
		<-done
	}
	reg, err := registeretcd.New("etcd://"+endpoint,
		register.Instance{Service: service, Address: ln.Addr().String()},
		register.Options{TTL: 10 * time.Second, Logger: log})
	if err != nil {
		stopServer()
		return nil, err
	}
	regCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := reg.Register(regCtx); err != nil {
		stopServer()
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := reg.Deregister(ctx); err != nil {
			log.Warn("deregister", "err", err)
		}
		stopServer()
	}, nil
}
