// Package redistest runs a real redis-server (Debian's, scripts/install-redis.sh) on a free
// loopback port for tests: no persistence, stopped by PID when the test ends. When the binary
// is missing the test is skipped, or fails when CI=true so CI cannot go green by skipping.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second // SIGTERM grace before SIGKILL
	startTries   = 3               // a port picked as free may be taken before redis binds it
)

// Server is one redis-server process (running or stopped).
type Server struct {
	// Addr is 127.0.0.1:port; it stays the same across Restart.
	Addr string

	bin    string
	port   int
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    bytes.Buffer
}

// Binary returns the redis-server to run ($SWITCHYARD_REDIS_BIN, PATH, /usr/bin), or "".
func Binary() string {
	if p := os.Getenv("SWITCHYARD_REDIS_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/bin/redis-server"); err == nil && st.Mode()&0o111 != 0 {
		return "/usr/bin/redis-server"
	}
	return ""
}

// Start runs a fresh redis-server on a free 127.0.0.1 port, waits until it answers PING and
// stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "no redis-server: run scripts/install-redis.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &Server{bin: bin}
	t.Cleanup(s.Stop)
	var err error
	for range startTries {
		if s.port, err = freePort(); err != nil {
			continue
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if err = s.start(); err == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("redistest: start %s: %v\n%s", bin, err, s.output())
	return nil
}

func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *Server) start() error {
	s.mu.Lock()
	s.out.Reset()
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = &lockedWriter{s}, &lockedWriter{s}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(p)
}

// Stop stops the server by its PID: SIGTERM, then SIGKILL after a grace. Safe to call twice.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

// Pause freezes the server (SIGSTOP): connections are still accepted by the kernel but never
// answered, as with a hung Redis or a blackholed network. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused server acts on SIGTERM only once continued
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts a fresh (empty) server on the same port after Stop or Kill.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	for range startTries * 10 { // the old socket can be briefly unavailable
		if err = s.start(); err == nil {
			return
		}
		s.Stop()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redistest: restart on %s: %v\n%s", s.Addr, err, s.output())
}

// Client returns a client of the server closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
