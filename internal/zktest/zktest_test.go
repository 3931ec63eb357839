package zktest

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLifecycle checks what the other packages' tests rely on: a node written before a
// restart is there after it, on the same address, and a paused server answers nothing.
func TestLifecycle(t *testing.T) {
	s := Start(t)
	c := connect(t, s)
	if _, err := c.Create("/kept", []byte("v"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create: %v", err)
	}
	c.Close()

	pid := s.PID()
	s.Restart(t)
	if s.PID() == pid || s.PID() == 0 {
		t.Fatalf("restart kept pid %d (now %d)", pid, s.PID())
	}
	c = connect(t, s)
	b, _, err := c.Get("/kept")
	c.Close() // before the server goes away below, so its goroutines end at once
	if err != nil || string(b) != "v" {
		t.Fatalf("after restart: %q, %v", b, err)
	}

	s.Pause()
	if _, err := s.FourLetterWord("srvr"); err == nil {
		t.Fatal("paused server answered srvr")
	}
	s.Resume()
	if !s.serving() {
		t.Fatal("resumed server does not answer srvr")
	}

	s.Stop()
	if s.PID() != 0 || s.serving() {
		t.Fatal("stopped server still serving")
	}
}

// quietLogger drops go-zookeeper's log lines (reconnects after Stop are expected here).
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func connect(t *testing.T, s *Server) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{s.Addr}, 10*time.Second, zk.WithLogInfo(false),
		zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

// TestProxyCutHeal: through the proxy the server answers; cut, nothing gets through (new
// connections included); healed, it answers again.
func TestProxyCutHeal(t *testing.T) {
	s := Start(t)
	p := s.Proxy(t)
	via := &Server{Addr: p.Addr} // FourLetterWord only needs the address
	if !via.serving() {
		t.Fatal("server not reachable through the proxy")
	}
	p.Cut()
	if _, err := via.FourLetterWord("srvr"); err == nil {
		if via.serving() {
			t.Fatal("cut proxy still forwards")
		}
	}
	p.Heal()
	if !via.serving() {
		t.Fatal("healed proxy does not forward")
	}
}
