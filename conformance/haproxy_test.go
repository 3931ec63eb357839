package conformance

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// haproxy is Debian's HAProxy in mode tcp in front of gateways: it health-checks each one's
// GET /readyz on its admin port and sends new connections only to the ones answering 200, as
// a Kubernetes Service follows readiness probes. Connections already made stay where they
// are until one side closes them, and a refused connection is not retried on another
// gateway (retries 0, no redispatch): like kube-proxy, the client sees it fail.
type haproxy struct {
	addr   string // the frontend clients connect to
	stats  string // the stats page, CSV at /stats;csv
	cmd    *exec.Cmd
	log    string // its stdout and stderr: one tcplog line per connection
	exited chan struct{}
}

// lbServer is one gateway behind the load balancer.
type lbServer struct {
	name        string // the server's name in HAProxy's config and stats
	addr, admin string // its public listener and the admin listener /readyz is checked on
}

// haproxyBinary returns the haproxy to run, or "" when there is none (Debian installs it in
// /usr/sbin, which a non-root PATH may leave out).
func haproxyBinary() string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/haproxy"); err == nil && st.Mode().IsRegular() {
		return "/usr/sbin/haproxy"
	}
	return ""
}

// haproxyConfig renders the config: checks every 100 ms, out at the first failure, back in
// after two passes in a row.
func haproxyConfig(listen, stats string, servers []lbServer) string {
	var b strings.Builder
	b.WriteString(`global
    maxconn 4096
    log stdout format raw local0 info

# The stats page (not logged), then everything else in mode tcp.
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend stats
    bind ` + stats + `
    stats enable
    stats uri /stats

defaults
    mode tcp
    log global
    option tcplog
    retries 0
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 1s

frontend gateways
    bind ` + listen + `
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server inter 100ms fastinter 100ms downinter 100ms fall 1 rise 2
`)
	for _, s := range servers {
		_, port, _ := strings.Cut(s.admin, ":")
		fmt.Fprintf(&b, "    server %s %s check port %s\n", s.name, s.addr, port)
	}
	return b.String()
}

// startHAProxy runs haproxy in the foreground (-db) on free loopback ports with servers
// behind it, waits until its stats page answers and stops it (by PID) in t.Cleanup. Without
// a haproxy binary the test is skipped, or fails when CI=true.
func startHAProxy(t *testing.T, servers ...lbServer) *haproxy {
	t.Helper()
	bin := haproxyBinary()
	if bin == "" {
		msg := "no haproxy binary: run scripts/install-haproxy.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		h := &haproxy{addr: freeAddr(t), stats: freeAddr(t), log: filepath.Join(dir, "haproxy.log"),
			exited: make(chan struct{})}
		cfg := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(haproxyConfig(h.addr, h.stats, servers)), 0o600); err != nil {
			t.Fatal(err)
		}
		h.cmd = exec.Command(bin, "-db", "-f", cfg)
		startLogged(t, h.cmd, h.log)
		go func() { _ = h.cmd.Wait(); close(h.exited) }()
		t.Cleanup(h.stop)
		err := waitUntil(10*time.Second, func() error {
			select {
			case <-h.exited:
				return fmt.Errorf("haproxy exited: %v", h.cmd.ProcessState)
			default:
			}
			_, err := h.servers()
			return err
		})
		if err == nil {
			return h
		}
		h.stop()
		if attempt < 3 && strings.Contains(readLog(h.log), "cannot bind") {
			continue
		}
		t.Fatalf("haproxy did not start: %v\n%s", err, readLog(h.log))
	}
}

// stop sends SIGTERM (haproxy's hard stop) and SIGKILL if it has not exited a few seconds
// later.
func (h *haproxy) stop() {
	select {
	case <-h.exited:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(5 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
}

// serverStat is one server's line of the stats CSV.
type serverStat struct {
	status      string // UP, DOWN, "DOWN 1/2" (rising), MAINT...
	checkStatus string // last check: L7OK, L7STS (wrong status), L4CON (refused)...
	sessions    string // stot: connections sent to it so far
	connErrors  string // econ: connections to it that failed
	downs       string // chkdown: UP to DOWN transitions
}

// servers reads the stats page: the backend's servers by name.
func (h *haproxy) servers() (map[string]serverStat, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + h.stats + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("stats: %d %v", resp.StatusCode, err)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("stats CSV: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	field := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	out := map[string]serverStat{}
	for _, row := range rows[1:] {
		if field(row, "pxname") != "gateways" || field(row, "type") != "2" { // 2: a server
			continue
		}
		out[field(row, "svname")] = serverStat{status: field(row, "status"), checkStatus: field(row, "check_status"),
			sessions: field(row, "stot"), connErrors: field(row, "econ"), downs: field(row, "chkdown")}
	}
	return out, nil
}

// waitStatus waits until the named server's status is want ("UP" or "DOWN").
func (h *haproxy) waitStatus(name, want string, timeout time.Duration) error {
	return waitUntil(timeout, func() error {
		s, err := h.servers()
		if err != nil {
			return err
		}
		if s[name].status != want {
			return fmt.Errorf("haproxy has %s %+v, want %s", name, s[name], want)
		}
		return nil
	})
}

// tcplogState matches a tcplog line's termination state and its connection counters, e.g.
// " -- 3/3/2/1/0 " or " SC 5/5/4/0/0 ".
var tcplogState = regexp.MustCompile(` ([-A-Za-z]{2}) \d+/\d+/\d+/\d+/\d+ `)

// terminations counts the logged connections by server and termination state ("--" is a
// normal close; "SC" a connection the server refused, "SD" one it broke during data, "CD"
// one the client broke).
func (h *haproxy) terminations() map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(readLog(h.log), "\n") {
		m := tcplogState.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		server := "?"
		for _, f := range strings.Fields(line) {
			if s, ok := strings.CutPrefix(f, "gateways/"); ok {
				server = s
			}
		}
		out[server+" "+m[1]]++
	}
	return out
}
