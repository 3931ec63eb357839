package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testkit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Lifecycle for rolling updates (issue 14, item 1): on SIGTERM /readyz fails at once while
// the listener goes on serving for drain_delay, then the listener closes and requests in
// flight get shutdown_grace; a second signal ends it all at once.

// signalledGateway is a gateway run in-process as `switchyard -config F`, stopped by the
// signals the test sends it.
type signalledGateway struct {
	listen, admin string
	sigs          chan os.Signal
	logs          *testkit.SyncBuffer
	exit          chan int
}

// startSignalled runs the gateway on a config of listen and admin addresses of its own,
// `discovery: {}` unless rest has a discovery section, and rest; it waits for readiness.
// If the test did not stop it, the cleanup does, with two signals.
func startSignalled(t *testing.T, rest string) *signalledGateway {
	t.Helper()
	g := &signalledGateway{listen: freeAddr(t), admin: freeAddr(t), sigs: make(chan os.Signal, 2),
		logs: &testkit.SyncBuffer{}, exit: make(chan int, 1)}
	if !strings.Contains(rest, "discovery:") {
		rest = "discovery: {}\n" + rest
	}
	cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, cfgPath, []byte(fmt.Sprintf("listen: %q\nadmin: %q\n", g.listen, g.admin)+rest))
	go func() {
		g.exit <- runSignals(context.Background(), g.sigs, []string{"-config", cfgPath, "-log-format", "json", "-watch=false"}, io.Discard, g.logs)
	}()
	t.Cleanup(func() {
		select {
		case g.sigs <- syscall.SIGTERM:
		default:
		}
		select {
		case g.sigs <- syscall.SIGTERM:
		default:
		}
		select {
		case <-g.exit:
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s of two signals")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs)
		}
	})
	waitFor(t, "readyz", 20*time.Second, func() bool { c, _ := httpGet("http://" + g.admin + "/readyz"); return c == 200 })
	return g
}

func (g *signalledGateway) signal(t *testing.T) {
	t.Helper()
	select {
	case g.sigs <- syscall.SIGTERM:
	case <-time.After(5 * time.Second):
		t.Fatal("signal not taken")
	}
}

// waitExit waits for the exit and returns its code.
func (g *signalledGateway) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case code := <-g.exit:
		g.exit <- code // for the cleanup
		return code
	case <-time.After(within):
		t.Fatalf("no exit within %s", within)
		return -1
	}
}

// logged returns the fields of the first JSON log line whose msg is msg, or nil.
func (g *signalledGateway) logged(msg string) map[string]any {
	for _, l := range strings.Split(g.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}

// wantStopped checks the last log line: the time the stop took, and whether the drain
// completed.
func (g *signalledGateway) wantStopped(t *testing.T, drained bool) {
	t.Helper()
	if m := g.logged(logStop); m == nil || m["drained"] != drained || m["shutdown"] == nil {
		t.Errorf("final log line: %v, want the shutdown time and drained %v", m, drained)
	}
}

func (g *signalledGateway) waitLogged(t *testing.T, msg string) map[string]any {
	t.Helper()
	var m map[string]any
	waitFor(t, "log line "+msg, 10*time.Second, func() bool { m = g.logged(msg); return m != nil })
	return m
}

const (
	logNotReady  = "draining: not ready, still serving"
	logStopped   = "draining: stopped accepting, waiting for in-flight requests"
	logStop      = "stopped"
	logForced    = "stop requested again: closing every connection now"
	logIncomplet = "drain incomplete after shutdown_grace: closing the remaining connections"
)

// heldBackend answers /fast at once and holds /slow until release is closed (or the request
// ends), telling arrived when a /slow request is there; /sse streams an event every 20 ms
// and /stream a line of plain text, until the request ends.
type heldBackend struct {
	url     string
	arrived chan string
	release chan struct{}
}

func newHeldBackend(t *testing.T) *heldBackend {
	b := &heldBackend{arrived: make(chan string, 8), release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			b.arrived <- r.URL.Path
			select {
			case <-b.release:
				io.WriteString(w, "finished")
			case <-r.Context().Done():
			}
		case "/sse", "/stream":
			format := "data: %d\n\n"
			if r.URL.Path == "/sse" {
				w.Header().Set("Content-Type", "text/event-stream")
			} else {
				w.Header().Set("Content-Type", "text/plain")
				format = "line %d\n"
			}
			b.arrived <- r.URL.Path
			for i := 0; ; i++ {
				fmt.Fprintf(w, format, i)
				w.(http.Flusher).Flush()
				select {
				case <-time.After(20 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
		srv.Close()
	})
	b.url = srv.URL
	return b
}

func (b *heldBackend) waitArrived(t *testing.T, path string) {
	t.Helper()
	select {
	case p := <-b.arrived:
		if p != path {
			t.Fatalf("backend got %s, want %s", p, path)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never reached the backend", path)
	}
}

// rawConn is a client connection the test drives byte by byte.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c, bufio.NewReader(c)}
}

// get sends GET path on the connection and reads the whole response.
func (c *rawConn) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw\r\n\r\n", path); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return c.read(t)
}

func (c *rawConn) read(t *testing.T) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("reading a body: %v", err)
	}
	return res, string(b)
}

// closedByServer reports whether the server closed the connection (EOF or reset), waiting
// for it up to 10 s.
func (c *rawConn) closedByServer() bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// TestStopPhases follows one stop through both phases: /readyz fails with the reason at
// once while /healthz passes; for drain_delay an idle keep-alive connection and new
// connections are still served as usual; then new connections are refused, the idle one is
// closed, and a request in flight completes with Connection: close; the process exits 0
// after logging each phase.
func TestStopPhases(t *testing.T) {
	be := newHeldBackend(t)
	const delay = 2 * time.Second // time enough for the checks of the first phase, on a slow machine too
	g := startSignalled(t, fmt.Sprintf("server: { drain_delay: %s, shutdown_grace: 20s }\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", delay, be.url))

	idle := dialRaw(t, g.listen)
	if res, body := idle.get(t, "/fast"); res.StatusCode != 200 || body != "ok" {
		t.Fatalf("before the signal: %d %q", res.StatusCode, body)
	}
	inflight := dialRaw(t, g.listen)
	fmt.Fprint(inflight, "GET /slow HTTP/1.1\r\nHost: gw\r\n\r\n")
	be.waitArrived(t, "/slow")

	g.signal(t)
	signalled := time.Now()

	// Not ready at once, still alive.
	var ready string
	waitFor(t, "/readyz to fail", time.Second, func() bool {
		var code int
		code, ready = httpGet("http://" + g.admin + "/readyz")
		return code == 503
	})
	var rz map[string]string
	if err := json.Unmarshal([]byte(ready), &rz); err != nil || rz["status"] != "draining" || rz["reason"] != "shutting down: SIGTERM received" {
		t.Errorf("/readyz while draining: %s (%v), want status draining and the reason", ready, err)
	}
	if code, body := httpGet("http://" + g.admin + "/healthz"); code != 200 {
		t.Errorf("/healthz while draining: %d %s, want 200", code, body)
	}
	// Still serving, on old and new connections, each response with Connection: close so
	// the client reconnects through the load balancer after a complete response.
	if res, body := idle.get(t, "/fast"); res.StatusCode != 200 || body != "ok" || !res.Close {
		t.Errorf("idle keep-alive connection during drain_delay: %d %q close=%v, want 200 ok and Connection: close", res.StatusCode, body, res.Close)
	}
	fresh := dialRaw(t, g.listen)
	if res, body := fresh.get(t, "/fast"); res.StatusCode != 200 || body != "ok" || !res.Close {
		t.Errorf("new connection during drain_delay: %d %q close=%v, want 200 ok and Connection: close", res.StatusCode, body, res.Close)
	}
	if m := g.logged(logNotReady); m == nil || m["drain_delay"] != float64(delay) || m["reason"] != "shutting down: SIGTERM received" {
		t.Errorf("phase log %q: %v", logNotReady, m)
	}
	if g.logged(logStopped) != nil {
		t.Fatalf("the checks above took longer than drain_delay (%s since the signal): the test proved nothing (machine too slow?)", time.Since(signalled))
	}

	// Second phase: the listener is closed, idle connections too; the request in flight goes on.
	m := g.waitLogged(t, logStopped)
	if elapsed := time.Since(signalled); elapsed < delay {
		t.Errorf("listener closed %s after the signal, before drain_delay %s", elapsed, delay)
	}
	if m["shutdown_grace"] != float64(20*time.Second) || m["open_connections"] == nil || m["open_connections"].(float64) < 1 {
		t.Errorf("phase log %q: %v", logStopped, m)
	}
	waitFor(t, "new connections refused", 5*time.Second, func() bool { return refused(g.listen) })
	if !idle.closedByServer() {
		t.Error("idle keep-alive connection still open in the drain")
	}
	if !fresh.closedByServer() {
		t.Error("the connection opened during drain_delay, idle now, still open in the drain")
	}
	if code, _ := httpGet("http://" + g.admin + "/readyz"); code != 503 {
		t.Errorf("/readyz in the drain: %d", code)
	}
	if code, _ := httpGet("http://" + g.admin + "/healthz"); code != 200 {
		t.Errorf("/healthz in the drain: %d", code)
	}
	close(be.release)
	res, body := inflight.read(t)
	// res.Close: the response said Connection: close (ReadResponse takes the header out).
	if res.StatusCode != 200 || body != "finished" || !res.Close {
		t.Errorf("in-flight request: %d %q close=%v, want 200 finished with Connection: close", res.StatusCode, body, res.Close)
	}
	if !inflight.closedByServer() {
		t.Error("connection of the in-flight request open after its response")
	}
	if code := g.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	g.wantStopped(t, true)
}

// TestSecondSignalStopsAtOnce: a second signal in either phase closes every connection at
// once, the request in flight included, and the process exits 0 without waiting out
// drain_delay or shutdown_grace.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name, server, phase string
	}{
		{"during drain_delay", "drain_delay: 1m, shutdown_grace: 1m", logNotReady},
		{"during the drain", "drain_delay: 0, shutdown_grace: 1m", logStopped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := newHeldBackend(t)
			g := startSignalled(t, fmt.Sprintf("server: { %s }\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", tc.server, be.url))
			inflight := dialRaw(t, g.listen)
			fmt.Fprint(inflight, "GET /slow HTTP/1.1\r\nHost: gw\r\n\r\n")
			be.waitArrived(t, "/slow")
			g.signal(t)
			g.waitLogged(t, tc.phase)
			g.signal(t)
			// The bound is far below the minute either phase would take: the stop is
			// immediate (milliseconds), the rest is slack for a loaded machine.
			if code := g.waitExit(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}
			if !inflight.closedByServer() {
				t.Error("the request in flight was not cut")
			}
			if g.logged(logForced) == nil {
				t.Errorf("no %q log line", logForced)
			}
			g.wantStopped(t, false)
		})
	}
}

// TestDrainBoundedByGrace: what has not finished when shutdown_grace ends is cut: a request
// waiting on its upstream, a streamed response of unknown length (which keeps flowing until
// then) and an opaque upgraded tunnel; the exit follows.
func TestDrainBoundedByGrace(t *testing.T) {
	be := newHeldBackend(t)
	tunnelBackend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo until the gateway closes
	}))
	defer tunnelBackend.Close()
	const grace = time.Second
	g := startSignalled(t, fmt.Sprintf(`server: { drain_delay: 0, shutdown_grace: %s }
routes:
  - { prefix: /tunnel, upstreams: [%q], upgrades: [foo] }
  - { prefix: /, upstreams: [%q] }
`, grace, tunnelBackend.URL, be.url))

	hung := dialRaw(t, g.listen)
	fmt.Fprint(hung, "GET /slow HTTP/1.1\r\nHost: gw\r\n\r\n")
	be.waitArrived(t, "/slow")
	stream := dialRaw(t, g.listen)
	fmt.Fprint(stream, "GET /stream HTTP/1.1\r\nHost: gw\r\n\r\n")
	be.waitArrived(t, "/stream")
	stream.SetDeadline(time.Now().Add(20 * time.Second))
	streamRes, err := http.ReadResponse(stream.br, nil)
	if err != nil || streamRes.StatusCode != 200 {
		t.Fatalf("stream: %v %v", streamRes, err)
	}
	// The lines' arrival times, read as they come until the stream ends.
	type streamEnd struct {
		last time.Time
		err  error
	}
	streamDone := make(chan streamEnd, 1)
	go func() {
		var last time.Time
		lines := bufio.NewReader(streamRes.Body)
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				streamDone <- streamEnd{last, err}
				return
			}
			if strings.HasPrefix(line, "line ") {
				last = time.Now()
			}
		}
	}()
	tunnel := dialRaw(t, g.listen)
	tunnel.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(tunnel, "GET /tunnel HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
	if res, err := http.ReadResponse(tunnel.br, nil); err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}

	g.signal(t)
	signalled := time.Now()
	if m := g.waitLogged(t, logStopped); m["tunnels"] != float64(1) {
		t.Errorf("phase log %q: %v, want tunnels 1", logStopped, m)
	}
	draining := time.Now()
	// The tunnel still flows in the drain.
	fmt.Fprint(tunnel, "ping")
	if b := make([]byte, 4); func() error { _, err := io.ReadFull(tunnel.br, b); return err }() != nil || string(b) != "ping" {
		t.Fatalf("opaque tunnel in the drain: %q", b)
	}

	if code := g.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if elapsed := time.Since(signalled); elapsed < grace {
		t.Errorf("exit %s after the signal, before shutdown_grace %s with requests in flight", elapsed, grace)
	}
	if !hung.closedByServer() {
		t.Error("request waiting on its upstream not cut")
	}
	end := <-streamDone
	if ne, ok := end.err.(net.Error); ok && ne.Timeout() || end.err == io.EOF {
		t.Errorf("streamed response: %v, want it cut", end.err)
	}
	if end.last.Before(draining.Add(grace / 2)) {
		t.Errorf("last line of the stream %s after the drain began, want lines until shutdown_grace (%s) ends it", end.last.Sub(draining), grace)
	}
	if !tunnel.closedByServer() {
		t.Error("opaque tunnel not cut")
	}
	if g.logged(logIncomplet) == nil {
		t.Errorf("no %q log line", logIncomplet)
	}
	g.wantStopped(t, false)
}

// TestWebSocketClosedCleanlyOnStop: a WebSocket open at the stop gets a Close frame (1001)
// when the listener closes; once the client and the upstream have exchanged their Close
// frames the tunnel ends, and the drain completes without waiting for shutdown_grace.
func TestWebSocketClosedCleanlyOnStop(t *testing.T) {
	upstreamGotClose := make(chan []byte, 1)
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.WriteString("\x81\x05hello") // a text frame
		brw.Flush()
		// The client's Close frame (masked): 2 header bytes, 4 of mask, 2 of status.
		b := make([]byte, 8)
		if _, err := io.ReadFull(brw, b); err != nil {
			return
		}
		upstreamGotClose <- b
		c.Write([]byte{0x88, 0x02, 0x03, 0xe9}) // the upstream's answer
	}))
	defer ws.Close()
	g := startSignalled(t, fmt.Sprintf("server: { drain_delay: 0, shutdown_grace: 1m }\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", ws.URL))
	c := dialRaw(t, g.listen)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(c, "GET /chat HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if res, err := http.ReadResponse(c.br, nil); err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	hello := make([]byte, 7)
	if _, err := io.ReadFull(c.br, hello); err != nil || string(hello[2:]) != "hello" {
		t.Fatalf("first frame: %q %v", hello, err)
	}

	g.signal(t)
	signalled := time.Now()
	head := make([]byte, 4)
	if _, err := io.ReadFull(c.br, head); err != nil || head[0] != 0x88 || head[2] != 0x03 || head[3] != 0xe9 {
		t.Fatalf("client got % x (%v), want a Close frame with status 1001", head, err)
	}
	if _, err := c.br.Discard(int(head[1]) - 2); err != nil { // the reason
		t.Fatal(err)
	}
	reply := []byte{0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe9 ^ 2}
	c.Write(reply)
	select {
	case b := <-upstreamGotClose:
		if !bytes.Equal(b, reply) {
			t.Errorf("upstream got % x, want the client's Close frame % x", b, reply)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's Close frame did not reach the upstream")
	}
	if !c.closedByServer() {
		t.Error("tunnel still open after the closing handshake")
	}
	if code := g.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	g.wantStopped(t, true)
	if elapsed := time.Since(signalled); elapsed > 30*time.Second {
		t.Errorf("stop took %s: the tunnel held the drain toward shutdown_grace", elapsed)
	}
}

// TestEventStreamEndsOnStop: an SSE stream open at the stop ends, as a complete response,
// after its event in progress when the listener closes (EventSource clients reconnect with
// Last-Event-ID, through the load balancer to another instance), so the drain completes
// without waiting for shutdown_grace.
func TestEventStreamEndsOnStop(t *testing.T) {
	be := newHeldBackend(t)
	g := startSignalled(t, fmt.Sprintf("server: { drain_delay: 0, shutdown_grace: 1m }\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", be.url))
	c := http.Client{Timeout: 20 * time.Second}
	res, err := c.Get("http://" + g.listen + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	be.waitArrived(t, "/sse")
	events := bufio.NewReader(res.Body)
	if line, err := events.ReadString('\n'); err != nil || line != "data: 0\n" {
		t.Fatalf("first event: %q %v", line, err)
	}

	g.signal(t)
	signalled := time.Now()
	rest, err := io.ReadAll(events)
	if err != nil {
		t.Fatalf("the event stream did not end cleanly: %v (after %q)", err, rest)
	}
	if whole := "data: 0\n" + string(rest); !strings.HasSuffix(whole, "\n\n") {
		t.Errorf("the event stream ended inside an event: %q", whole)
	}
	if code := g.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	g.wantStopped(t, true)
	if elapsed := time.Since(signalled); elapsed > 30*time.Second {
		t.Errorf("stop took %s: the event stream held the drain toward shutdown_grace", elapsed)
	}
}

// TestH2CDrainSendsGoAway: an HTTP/2 connection (h2c with prior knowledge) gets GOAWAY when
// the listener closes, and its stream in flight still completes.
func TestH2CDrainSendsGoAway(t *testing.T) {
	be := newHeldBackend(t)
	g := startSignalled(t, fmt.Sprintf("server: { drain_delay: 0, shutdown_grace: 20s }\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", be.url))
	c := dialRaw(t, g.listen)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c.br)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "gw"}, {":path", "/slow"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	be.waitArrived(t, "/slow")

	g.signal(t)
	var goAway *http2.GoAwayFrame
	var status string
	var body []byte
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status = f.Value
		}
	})
	for done := false; !done; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (GOAWAY %v, status %q, body %q)", err, goAway, status, body)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			goAway = f
			close(be.release) // the response comes after the GOAWAY
		case *http2.HeadersFrame:
			dec.Write(f.HeaderBlockFragment())
			done = f.StreamEnded()
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			done = f.StreamEnded()
		}
	}
	if goAway == nil || goAway.ErrCode != http2.ErrCodeNo || goAway.LastStreamID != 1 {
		t.Errorf("GOAWAY %v, want NO_ERROR with last stream 1 before the response", goAway)
	}
	if status != "200" || string(body) != "finished" {
		t.Errorf("stream in flight: %s %q, want 200 finished", status, body)
	}
	if code := g.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	g.wantStopped(t, true)
}

// TestStopWithRegisteredServices: the embedded etcd's clients hold streams open (a lease
// keep-alive, a watch), as every registered service does; the stop does not wait on them.
// It used to take etcd's request timeout, 5.2 s.
func TestStopWithRegisteredServices(t *testing.T) {
	client, peer := freeAddr(t), freeAddr(t)
	g := startSignalled(t, fmt.Sprintf(`discovery:
  embedded: { client_url: "http://%s", peer_url: "http://%s", data_dir: %q }
server: { drain_delay: 0 }
routes:
  - { prefix: /, service: users }
`, client, peer, filepath.Join(t.TempDir(), "etcd")))
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/services/users/127.0.0.1:9", "127.0.0.1:9", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAlive(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	watch := cli.Watch(clientv3.WithRequireLeader(ctx), "/services/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if r := <-watch; !r.Created {
		t.Fatalf("watch: %v", r.Err())
	}
	waitFor(t, "the registration to be routed", 10*time.Second, func() bool {
		code, _ := httpGet("http://" + g.listen + "/")
		return code == 502 // the endpoint is in the pool; nothing listens there
	})

	g.signal(t)
	start := time.Now()
	if code := g.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("stop took %s with a service registered, want well under etcd's 5 s request timeout", took)
	}
	cancel() // the client's streams; cli.Close ends the rest
}
