// Package zktest runs a real, single-node ZooKeeper server for integration tests: Debian's
// zookeeper package (scripts/install-zookeeper.sh) started directly with java, bound to
// 127.0.0.1 on a free port, with its data in the test's temp dir.
package zktest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Jar is where Debian's zookeeper package puts the server; its manifest's Class-Path names
// the dependency jars (netty, jute, slf4j, ...) under /usr/share/java, so it is the whole
// classpath.
const Jar = "/usr/share/java/zookeeper.jar"

// MinSessionTimeout is the shortest session timeout the server grants; tests that force a
// session to expire ask for something close to it. ZooKeeper's own default (2 x tickTime =
// 4 s) would make every expiry test last several seconds.
const MinSessionTimeout = time.Second

const (
	startTimeout = 30 * time.Second // JVM start on a busy 2-core machine, under -race tests
	stopTimeout  = 10 * time.Second // SIGTERM grace before SIGKILL
	probeTimeout = 500 * time.Millisecond
)

// Server is one running ZooKeeper. Its methods are not safe for concurrent use.
type Server struct {
	// Addr is the client address, "127.0.0.1:port"; it survives Restart.
	Addr string

	dir    string
	cfg    string
	logf   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returned
	paused bool
	mu     sync.Mutex // guards cmd, exited and paused against the cleanup running Stop
}

// Start runs a ZooKeeper server for the test and stops it (by PID) at cleanup. Without java
// or the ZooKeeper jar it skips the test, or fails it when CI=true, since CI must not pass
// by skipping.
func Start(t testing.TB) *Server {
	t.Helper()
	if err := available(); err != nil {
		msg := fmt.Sprintf("zktest: %v; run scripts/install-zookeeper.sh", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:  dir,
		cfg:  filepath.Join(dir, "zoo.cfg"),
		logf: filepath.Join(dir, "zookeeper.log"),
	}
	// tickTime is the server's session-expiry granularity; 200 ms keeps short sessions
	// expiring close to their timeout.
	cfg := strings.Join([]string{
		"tickTime=200",
		"dataDir=" + filepath.Join(dir, "data"),
		"clientPort=" + strconv.Itoa(port),
		"clientPortAddress=127.0.0.1",
		"admin.enableServer=false",
		"4lw.commands.whitelist=ruok,srvr,stat,mntr",
		"minSessionTimeout=" + strconv.Itoa(int(MinSessionTimeout/time.Millisecond)),
		"maxSessionTimeout=60000",
		"",
	}, "\n")
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatalf("zktest: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.dumpLog(t)
		}
	})
	s.start(t)
	return s
}

func available() error {
	if _, err := exec.LookPath("java"); err != nil {
		return errors.New("java is not on PATH")
	}
	if _, err := os.Stat(Jar); err != nil {
		return fmt.Errorf("%s is missing", Jar)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	logFile, err := os.OpenFile(s.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	// Small heap and the C1 compiler only: a test server needs neither, and ~6 engineers
	// share 2 cores.
	cmd := exec.Command("java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-cp", Jar, "org.apache.zookeeper.server.ZooKeeperServerMain", s.cfg)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If the test binary dies (timeout panic, kill), the kernel kills the server too, so no
	// orphaned JVM keeps a port on a shared machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("zktest: start java: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		if s.serving() {
			return
		}
		select {
		case <-exited:
			s.dumpLog(t)
			t.Fatalf("zktest: server exited during start: %v", cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.dumpLog(t)
			t.Fatalf("zktest: server on %s not serving after %v", s.Addr, startTimeout)
		}
	}
}

// serving asks `srvr`, which (unlike `ruok`) only answers with the version once the server
// accepts sessions.
func (s *Server) serving() bool {
	out, err := s.FourLetterWord("srvr")
	return err == nil && strings.Contains(out, "Zookeeper version")
}

// FourLetterWord sends one of the whitelisted commands (ruok, srvr, stat, mntr) and returns
// the answer.
func (s *Server) FourLetterWord(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, probeTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}

// PID is the server process's id, 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop ends the server: SIGTERM to its PID, SIGKILL if it has not exited after a grace
// period, then waits for it. Its data dir and port are kept for Restart. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	p := s.cmd.Process
	if s.paused {
		// A stopped process keeps SIGTERM pending; let it run so it can act on it.
		_ = p.Signal(syscall.SIGCONT)
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = p.Signal(syscall.SIGKILL)
		<-s.exited
	}
	s.cmd, s.exited, s.paused = nil, nil, false
}

// Restart stops the server if it runs and starts it again on the same port with the same
// data dir, so sessions and nodes survive as they would across a real server restart.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing answers, as in
// a long GC pause or a partition. Sessions whose timeout passes meanwhile expire once it
// resumes.
func (s *Server) Pause() {
	s.signal(syscall.SIGSTOP, true)
}

// Resume undoes Pause with SIGCONT.
func (s *Server) Resume() {
	s.signal(syscall.SIGCONT, false)
}

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Signal(sig); err == nil {
		s.paused = paused
	}
}

// dumpLog shows the tail of the server's output, so a failed start or test explains itself.
func (s *Server) dumpLog(t testing.TB) {
	b, err := os.ReadFile(s.logf)
	if err != nil || len(b) == 0 {
		return
	}
	const tail = 4000
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	t.Logf("zktest: server output (tail):\n%s", b)
}
