package conformance

import (
	"context"
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

	"go.uber.org/goleak"
)

// gatewayBin is the gateway binary TestMain builds once for every test.
var gatewayBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "switchyard-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gatewayBin = filepath.Join(dir, "switchyard")
	if err := buildGateway(gatewayBin); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: building the gateway:", err)
		return 1
	}
	code := m.Run()
	// Backends, process waiters and stderr copiers are the goroutines this package starts;
	// every one must have ended with its test.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

// buildGateway compiles ./cmd/switchyard from the module root into out. It is built without the
// race detector even when the tests run with it: TestQuadraticConnection measures the
// process's CPU time, and a race build would spend several times more on the same work.
func buildGateway(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return errors.New("not inside the switchyard module")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/switchyard")
	cmd.Dir = filepath.Dir(mod)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, output)
	}
	return nil
}

// gatewaySpec is what a test puts in its gateway's routes.yaml. The harness adds the rest:
// listeners and an embedded etcd on free loopback ports (the default etcd on 2379 would make
// parallel gateways collide), a short shutdown grace, and unless the test says otherwise
// defaults with passive health and breakers off, so that a backend misbehaving on purpose
// is never ejected and every answer the tests see comes from the protocol handling under
// test.
type gatewaySpec struct {
	server   string   // fields inside `server: {...}`, e.g. "read_timeout: 1s"
	top      string   // extra top-level lines, e.g. "admin_debug: true\n"
	defaults string   // the whole `defaults:` line; "" = passive health and breakers off
	routes   string   // the `routes:` list, one route() per entry
	admin    string   // admin address; "" = a free loopback port
	flags    []string // more gateway flags, after "-config FILE -watch=false" (a flag's last value wins)
	nohup    bool     // start it under nohup: SIGHUP is ignored until the gateway asks for it
}

// configFile is a routes.yaml written by writeConfig and the addresses it names.
type configFile struct {
	path          string
	listen, admin string // host:port
	etcd          string // the embedded etcd's client URL, where services register
}

// route renders one routes: entry sending prefix to the backends; extra holds more flow
// fields ("strip_prefix: true").
func route(prefix, extra string, backends ...*backend) string {
	urls := make([]string, len(backends))
	for i, b := range backends {
		urls[i] = strconv.Quote(b.url())
	}
	if extra != "" {
		extra = ", " + extra
	}
	return fmt.Sprintf("  - { prefix: %q, upstreams: [%s]%s }\n", prefix, strings.Join(urls, ", "), extra)
}

// writeConfig writes spec as a routes.yaml in a new temp dir.
func writeConfig(t testing.TB, spec gatewaySpec) configFile {
	dir := t.TempDir()
	f := configFile{path: filepath.Join(dir, "routes.yaml"), listen: freeAddr(t), admin: spec.admin,
		etcd: "http://" + freeAddr(t)}
	if f.admin == "" {
		f.admin = freeAddr(t)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nadmin: %q\n", f.listen, f.admin)
	fmt.Fprintf(&b, "discovery: { embedded: { client_url: %q, peer_url: %q, data_dir: %q } }\n",
		f.etcd, "http://"+freeAddr(t), filepath.Join(dir, "etcd"))
	server := "shutdown_grace: 1s"
	if !strings.Contains(spec.server, "drain_delay") {
		// The harness stops gateways with SIGTERM and kills them after 5 s: with the 5 s
		// default drain_delay every stop would end in a kill.
		server += ", drain_delay: 0s"
	}
	if spec.server != "" {
		server += ", " + spec.server
	}
	fmt.Fprintf(&b, "server: { %s }\n", server)
	if spec.defaults == "" {
		spec.defaults = "defaults: { passive_health: { enabled: false }, breaker: { enabled: false } }\n"
	}
	b.WriteString(spec.defaults)
	b.WriteString(spec.top)
	b.WriteString("routes:\n" + spec.routes)
	if err := os.WriteFile(f.path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// freeAddr returns a loopback address with a port nobody listened on a moment ago.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// gateway is one running gateway process.
type gateway struct {
	addr, admin string // public and admin listeners
	etcd        string // the embedded etcd's client URL
	cmd         *exec.Cmd
	log         string        // file holding the process's stderr and stdout
	exited      chan struct{} // closed when the process has been reaped
}

// startGateway starts the gateway on spec, waits until /readyz answers 200 and stops the
// process in t.Cleanup, logging its output if the test failed. A port taken between
// freeAddr and the gateway's bind is retried with fresh ports.
func startGateway(t testing.TB, spec gatewaySpec) *gateway {
	t.Helper()
	for attempt := 1; ; attempt++ {
		f := writeConfig(t, spec)
		g := &gateway{addr: f.listen, admin: f.admin, etcd: f.etcd, log: f.path + ".log", exited: make(chan struct{})}
		args := append([]string{gatewayBin, "-config", f.path, "-watch=false"}, spec.flags...)
		if spec.nohup {
			args = append([]string{"nohup"}, args...)
		}
		g.cmd = exec.Command(args[0], args[1:]...)
		startLogged(t, g.cmd, g.log)
		go func() { _ = g.cmd.Wait(); close(g.exited) }()
		t.Cleanup(func() {
			g.stop()
			if t.Failed() {
				t.Logf("gateway %s output (etcd lines left out):\n%s", g.addr, g.tail(40))
			}
		})
		err := g.waitReady(20 * time.Second)
		if err == nil {
			return g
		}
		if attempt < 3 && strings.Contains(readLog(g.log), "address already in use") {
			continue
		}
		t.Fatalf("gateway never became ready: %v\n%s", err, g.tail(40))
	}
}

// waitReady polls the admin /readyz until it answers 200.
func (g *gateway) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-g.exited:
			return fmt.Errorf("exited: %v", g.cmd.ProcessState)
		default:
		}
		resp, _, err := get(g.admin, g.admin, "/readyz")
		if err == nil && resp.StatusCode == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/readyz after %v: %v %v", timeout, resp, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends SIGTERM and, if the process has not exited a few seconds later, SIGKILL.
func (g *gateway) stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// running reports whether the process is still alive.
func (g *gateway) running() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// tail returns the last n lines of the gateway's own output, without the embedded etcd's
// JSON log lines.
func (g *gateway) tail(n int) string {
	var keep []string
	for _, l := range strings.Split(readLog(g.log), "\n") {
		if l != "" && !strings.HasPrefix(l, `{"level"`) {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// cpuTime is the CPU time (user + system, all threads) the process has used so far, from
// /proc/PID/stat.
func (g *gateway) cpuTime(t testing.TB) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", g.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces; fields after it
	// start with field 3, so utime (14) and stime (15) are at indexes 11 and 12.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parsing /proc stat %q: %v %v", s, err1, err2)
	}
	return time.Duration(utime+stime) * time.Second / time.Duration(clockTicks())
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times (100 nearly always).
var clockTicks = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && perr == nil && n > 0 {
		return n
	}
	return 100
})

// runResult is how a gateway command that is expected to exit by itself ended.
type runResult struct {
	code     int           // exit code; -1 if killed
	out      string        // stdout and stderr, interleaved
	elapsed  time.Duration // until exit (or until killed)
	timedOut bool          // still running after the timeout, then killed
}

// runGateway runs the gateway binary with args and waits up to timeout for it to exit,
// killing it after that. Its address space is capped at 2 GiB so a file that makes it grow
// without bound fails the test instead of the machine.
func runGateway(t testing.TB, timeout time.Duration, args ...string) runResult {
	t.Helper()
	log := filepath.Join(t.TempDir(), "gateway.log")
	cmd := exec.Command("sh", append([]string{"-c", `ulimit -v 2097152 && exec "$0" "$@"`, gatewayBin}, args...)...)
	start := time.Now()
	startLogged(t, cmd, log)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var r runResult
	select {
	case <-done:
	case <-time.After(timeout):
		r.timedOut = true
		_ = cmd.Process.Kill()
		<-done
	}
	r.elapsed = time.Since(start)
	r.code = cmd.ProcessState.ExitCode()
	r.out = readLog(log)
	return r
}

// startLogged starts cmd with its stdout and stderr going to a new file at path. The
// process writes to the file itself, so no goroutine of ours copies its output.
func startLogged(t testing.TB, cmd *exec.Cmd, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// readLog returns what a process wrote to its log file so far.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return string(b)
}
