// Package consultest runs a real Consul agent (`consul agent -dev`) on free loopback ports for
// integration tests. Tests never talk to a mock: the blocking-query and index-reset behaviour
// the discoverer depends on is only trustworthy against the real thing.
//
// The binary is found through $SWITCHYARD_CONSUL_BIN, then `consul` on PATH, then the cache
// path scripts/install-consul.sh builds into. When none exists the test is skipped, or fails
// when CI=true so a CI run cannot go green by skipping everything.
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Version is the Consul release scripts/install-consul.sh builds.
const Version = "1.14.11"

const (
	readyTimeout = 30 * time.Second // generous: the test machines are shared and loaded
	stopTimeout  = 5 * time.Second  // SIGINT grace before SIGKILL
	startTries   = 3                // a port picked as free may be taken before consul binds it
)

// Agent is one running (or stopped) dev-mode Consul agent.
type Agent struct {
	// Addr is the agent's HTTP API address, 127.0.0.1:port. It stays the same across Restart.
	Addr string

	bin     string
	dir     string
	ports   ports
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returned
	logFile *os.File
}

type ports struct{ http, server, serfLAN, serfWAN int }

// Binary returns the Consul binary tests should run, or "" when there is none.
func Binary() string {
	if p := os.Getenv("SWITCHYARD_CONSUL_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "switchyard", "consul-"+Version, "consul")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return ""
}

// Start runs a dev agent on free 127.0.0.1 ports, waits until it has a leader, and stops it
// when the test ends.
func Start(t testing.TB) *Agent {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "no consul binary: run scripts/install-consul.sh and export SWITCHYARD_CONSUL_BIN=$(scripts/install-consul.sh)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	a := &Agent{bin: bin, dir: t.TempDir()}
	t.Cleanup(a.Stop)
	var err error
	for try := 0; try < startTries; try++ {
		if a.ports, err = freePorts(); err != nil {
			continue
		}
		a.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ports.http))
		if err = a.start(); err == nil {
			return a
		}
		a.Stop()
	}
	t.Fatalf("consultest: start %s: %v\n%s", bin, err, a.logTail())
	return nil
}

// Client returns an API client for the agent whose idle connections are closed when the test
// ends (goleak would otherwise see their read loops).
func (a *Agent) Client(t testing.TB) *api.Client {
	t.Helper()
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = a.Addr
	cfg.Token = ""
	cli, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("consultest: client: %v", err)
	}
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	return cli
}

// Stop stops the agent: SIGINT, then SIGKILL if it has not exited within a few seconds. It is
// safe to call more than once. A dev agent keeps no state, so Restart comes back empty with
// lower Raft indexes than before: the index-reset case of Consul's blocking queries.
func (a *Agent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-a.exited:
	case <-time.After(stopTimeout):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
	if a.logFile != nil {
		_ = a.logFile.Close()
		a.logFile = nil
	}
}

// Restart stops the agent and starts a fresh one on the same ports.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	var err error
	// The old agent's sockets are closed but a port can still be briefly unavailable.
	for try := 0; try < startTries; try++ {
		if err = a.start(); err == nil {
			return
		}
		a.Stop()
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("consultest: restart: %v\n%s", err, a.logTail())
}

// start launches the process and waits for a leader; on error the caller stops it.
func (a *Agent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	lf, err := os.OpenFile(filepath.Join(a.dir, "consul.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p := a.ports
	cmd := exec.Command(a.bin, "agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(p.http), "-dns-port", "-1", "-grpc-port", "-1",
		"-server-port", strconv.Itoa(p.server),
		"-serf-lan-port", strconv.Itoa(p.serfLAN), "-serf-wan-port", strconv.Itoa(p.serfWAN),
		// Without this 1.14 still opens gRPC-TLS on 8503, clashing between parallel agents.
		"-hcl", "ports { grpc_tls = -1 }",
		"-disable-host-node-id",
	)
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "CONSUL_HTTP_TOKEN=")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	a.cmd, a.exited, a.logFile = cmd, exited, lf
	return a.waitLeader(exited)
}

// waitLeader polls /v1/status/leader until it names a leader, the process exits, or time is up.
func (a *Agent) waitLeader(exited <-chan struct{}) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	url := "http://" + a.Addr + "/v1/status/leader"
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("consul exited before it had a leader")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			// The body is a JSON string: "" (two quotes) until a leader is elected.
			if resp.StatusCode == http.StatusOK && b.Len() > 2 {
				cancel()
				return nil
			}
		}
		cancel()
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no leader at %s after %v", a.Addr, readyTimeout)
}

// logTail returns the end of the agent's log, to explain a failed start.
func (a *Agent) logTail() string {
	b, err := os.ReadFile(filepath.Join(a.dir, "consul.log"))
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freePorts picks four loopback ports that are free now for both TCP and UDP (Serf gossips
// over both).
func freePorts() (ports, error) {
	var got []int
	var holds []interface{ Close() error }
	defer func() {
		for _, h := range holds {
			h.Close()
		}
	}()
	for len(got) < 4 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, err
		}
		holds = append(holds, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // UDP side taken: keep the TCP one held so it is not picked again
		}
		holds = append(holds, u)
		got = append(got, port)
	}
	return ports{http: got[0], server: got[1], serfLAN: got[2], serfWAN: got[3]}, nil
}
