// Command grpcbench measures unary gRPC calls per second and the proxy's CPU time per call:
// straight to a grpc-go server, through Switchyard (h2c on both sides), and through HAProxy
// (h2 on both sides) when it is installed. The backend and the load (grpc-go clients, several
// connections, many calls in flight) run in this process; each proxy is a process of its own
// whose CPU time (utime+stime from /proc/PID/stat) divided by the calls completed is its
// cost per call. Only loopback addresses are used; every process started is stopped by PID.
//
//	go build -o /tmp/switchyard ./cmd/switchyard
//	go run ./bench/grpcbench -switchyard /tmp/switchyard [-duration 5s] [-inflight 64] [-conns 4] [-size 64]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func main() {
	switchyard := flag.String("switchyard", "", "path of the switchyard binary (required)")
	duration := flag.Duration("duration", 5*time.Second, "load time per target")
	inflight := flag.Int("inflight", 64, "calls in flight at once")
	conns := flag.Int("conns", 4, "client connections (HTTP/2) the calls share")
	size := flag.Int("size", 64, "request and response payload bytes")
	profile := flag.String("cpuprofile", "", "write a CPU profile of switchyard under load to this file")
	flag.Parse()
	if *switchyard == "" {
		log.Fatal("grpcbench: -switchyard PATH is required")
	}
	if err := run(*switchyard, *duration, *inflight, *conns, *size, *profile); err != nil {
		log.Fatal("grpcbench: ", err)
	}
}

func run(switchyard string, d time.Duration, inflight, conns, size int, profile string) error {
	backend, stop, err := startBackend()
	if err != nil {
		return err
	}
	defer stop()
	dir, err := os.MkdirTemp("", "grpcbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Printf("unary calls, %d B each way, %d in flight on %d connections, %s per target\n", size, inflight, conns, d)
	fmt.Printf("%-12s %12s %16s %16s\n", "target", "calls/s", "proxy CPU/call", "bench CPU/call")
	res, err := load(backend, d, inflight, conns, size, nil)
	if err != nil {
		return err
	}
	res.print("direct")

	gw, err := startSwitchyard(switchyard, dir, backend)
	if err != nil {
		return err
	}
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- fetchProfile(gw.admin, profile, d-time.Second) }()
	} else {
		profiled <- nil
	}
	res, err = load(gw.addr, d, inflight, conns, size, gw)
	if perr := <-profiled; perr != nil && err == nil {
		err = perr
	}
	gw.stop()
	if err != nil {
		return err
	}
	res.print("switchyard")

	if path, err := exec.LookPath("haproxy"); err == nil {
		hp, err := startHAProxy(path, dir, backend)
		if err != nil {
			return err
		}
		res, err = load(hp.addr, d, inflight, conns, size, hp)
		hp.stop()
		if err != nil {
			return err
		}
		res.print("haproxy")
	}
	return nil
}

// result is one target's measurement.
type result struct {
	calls            int64
	elapsed          time.Duration
	proxyCPU, ownCPU time.Duration // proxyCPU is 0 without a proxy
}

func (r result) print(name string) {
	perCall := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f µs", float64(d.Microseconds())/float64(r.calls))
	}
	fmt.Printf("%-12s %12.0f %16s %16s\n", name, float64(r.calls)/r.elapsed.Seconds(), perCall(r.proxyCPU), perCall(r.ownCPU))
}

// load runs unary calls on addr for d and measures them. A call that fails ends the run.
func load(addr string, d time.Duration, inflight, conns, size int, proxy *process) (result, error) {
	clients := make([]testpb.TestServiceClient, conns)
	for i := range clients {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return result{}, err
		}
		defer cc.Close()
		clients[i] = testpb.NewTestServiceClient(cc)
	}
	req := &testpb.SimpleRequest{ResponseSize: int32(size), Payload: &testpb.Payload{Body: make([]byte, size)}}
	// Warm up: connections, the proxy's upstream connection, lazy state.
	for _, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.UnaryCall(ctx, req)
		cancel()
		if err != nil {
			return result{}, fmt.Errorf("warm-up call to %s: %w", addr, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var calls atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	proxyStart, ownStart := proxy.cpu(), ownCPU()
	start := time.Now()
	for i := range inflight {
		c := clients[i%conns]
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := c.UnaryCall(ctx, req)
				if err != nil {
					// The run's own deadline ends calls in flight, sometimes a moment before
					// ctx reports it; any other error ends the run.
					if c := status.Code(err); c != codes.DeadlineExceeded && c != codes.Canceled {
						once.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	r := result{calls: calls.Load(), elapsed: time.Since(start), ownCPU: ownCPU() - ownStart}
	if proxy != nil {
		r.proxyCPU = proxy.cpu() - proxyStart
	}
	return r, firstErr
}

// startBackend serves the TestService in this process on a loopback port.
func startBackend() (string, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, backend{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	return lis.Addr().String(), func() { srv.Stop(); <-done }, nil
}

// backend answers UnaryCall with a payload of the requested size.
type backend struct {
	testpb.UnimplementedTestServiceServer
}

func (backend) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: make([]byte, in.GetResponseSize())}}, nil
}

// process is a proxy under test.
type process struct {
	addr  string
	admin string // switchyard's admin listener
	cmd   *exec.Cmd
	done  chan struct{}
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu is the process's CPU time so far (0 for a nil process).
func (p *process) cpu() time.Duration {
	if p == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func start(cmd *exec.Cmd, addr string, ready func() error) (*process, error) {
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ready()
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s never became ready: %w", cmd.Path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startSwitchyard(bin, dir, backend string) (*process, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("listen: %q\nadmin: %q\nadmin_debug: true\ndiscovery: {}\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", listen, admin, "h2c://"+backend)
	path := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Second}
	p, err := start(exec.Command(bin, "-config", path, "-watch=false"), listen, func() error {
		res, err := client.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return errors.New(res.Status)
		}
		return nil
	})
	if p != nil {
		p.admin = admin
	}
	return p, err
}

// fetchProfile writes switchyard's CPU profile over d (from its admin pprof) to path.
func fetchProfile(admin, path string, d time.Duration) error {
	client := &http.Client{Timeout: d + 10*time.Second}
	res, err := client.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func startHAProxy(bin, dir, backend string) (*process, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s proto h2
  default_backend be
backend be
  server s1 %s proto h2
`, listen, backend)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return start(exec.Command(bin, "-db", "-f", path), listen, func() error {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}
