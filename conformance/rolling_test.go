package conformance

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Rolling restart (issue 14, item 2): two gateways behind HAProxy, which follows their
// /readyz as a Kubernetes Service follows readiness probes, restarted one after the other
// under steady load. No request may fail, and a WebSocket and an SSE stream open across the
// restart must end cleanly and carry on through the other gateway.

const (
	rollDrainDelay = time.Second // server.drain_delay: well over HAProxy's check interval x fall (100 ms x 1)
	rollGrace      = time.Second // server.shutdown_grace, as writeConfig sets it
	// rollEndSlack is how late past drain delay + grace a stream may end on a loaded machine.
	rollEndSlack = 3 * time.Second
	streamTick   = 50 * time.Millisecond // an SSE event or WebSocket message every tick
	loadWork     = 5 * time.Millisecond  // a backend's time per load request: some are always in flight
	loadPause    = 5 * time.Millisecond  // each load client's pause between requests
)

// rollBackend is a plain net/http upstream named name ("b1" serves gateway 1 only, so what a
// client receives says which gateway carried it). /load answers its name after loadWork;
// /sse sends an event every tick and /ws a message every tick (and echoes what it receives),
// numbered from where the client says it stopped (Last-Event-ID, ?from=), so a client that
// reconnects elsewhere can check it lost nothing.
type rollBackend struct {
	name, url string
	srv       *http.Server
	done      chan struct{} // closed at shutdown: streams end
	mu        sync.Mutex
	closed    bool
	wg        sync.WaitGroup // Serve and every stream handler
}

func newRollBackend(t *testing.T, name string) *rollBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rollBackend{name: name, url: "http://" + ln.Addr().String(), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/load", b.load)
	mux.HandleFunc("/sse", b.sse)
	mux.HandleFunc("/ws", b.ws)
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); _ = b.srv.Serve(ln) }()
	t.Cleanup(b.close)
	return b
}

// enter counts a stream handler in, unless the backend is shutting down.
func (b *rollBackend) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	return true
}

func (b *rollBackend) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.done)
	_ = b.srv.Close() // hijacked WebSockets are not its: they end on done
	b.wg.Wait()
}

func (b *rollBackend) load(w http.ResponseWriter, r *http.Request) {
	select {
	case <-time.After(loadWork):
	case <-r.Context().Done():
	case <-b.done:
	}
	_, _ = io.WriteString(w, b.name)
}

func (b *rollBackend) sse(w http.ResponseWriter, r *http.Request) {
	if !b.enter() {
		return
	}
	defer b.wg.Done()
	seq := 0
	if id, err := strconv.Atoi(r.Header.Get("Last-Event-ID")); err == nil {
		seq = id + 1
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(streamTick)
	defer tick.Stop()
	for ; ; seq++ {
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		case <-b.done:
			return
		}
		fmt.Fprintf(w, "id: %d\ndata: %s %d\n\n", seq, b.name, seq)
		if rc.Flush() != nil {
			return
		}
	}
}

// wsPad makes each WebSocket message a few kilobytes, so a cut could fall inside one.
var wsPad = strings.Repeat("x", 3000)

func (b *rollBackend) ws(w http.ResponseWriter, r *http.Request) {
	if !b.enter() {
		return
	}
	defer b.wg.Done()
	seq, _ := strconv.Atoi(r.URL.Query().Get("from"))
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	in := make(chan string, 1)
	readDone := make(chan struct{})
	go func() { // the handler waits for it below
		defer close(readDone)
		for {
			_, m, err := c.ReadMessage() // answers a close frame with one
			if err != nil {
				return
			}
			select {
			case in <- string(m):
			default:
			}
		}
	}()
	defer func() { c.Close(); <-readDone }()
	tick := time.NewTicker(streamTick)
	defer tick.Stop()
	for {
		var msg string
		select {
		case <-tick.C:
			msg = fmt.Sprintf("%s %d %s", b.name, seq, wsPad)
			seq++
		case m := <-in:
			msg = "echo:" + m
		case <-readDone:
			return
		case <-b.done:
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(readTimeout))
		if c.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
			return
		}
	}
}

// streamLog is what one streaming client saw across its connections.
type streamLog struct {
	kind string
	mu   sync.Mutex
	sess []*streamSession
	next int      // the sequence number the next message must carry
	fail []string // connection attempts that failed
	odd  []string // messages out of sequence or from an unexpected backend
}

// streamSession is one connection of a streaming client.
type streamSession struct {
	on       string // the backend (so the gateway) that served it, from its first message
	opened   time.Time
	messages int
	lastMsg  time.Time
	echoed   bool      // WebSocket: the backend's echo of our message arrived
	ended    time.Time // zero while open, or when the test closed it
	clean    bool
	how      string // how it ended
}

func (l *streamLog) open() *streamSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &streamSession{opened: time.Now()}
	l.sess = append(l.sess, s)
	return s
}

func (l *streamLog) resumeFrom() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// message records a message "NAME SEQ ..." received on s.
func (l *streamLog) message(s *streamSession, text string) {
	f := strings.Fields(text)
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := -1
	if len(f) >= 2 {
		seq, _ = strconv.Atoi(f[1])
	}
	if seq < 0 {
		l.odd = append(l.odd, fmt.Sprintf("unexpected message %q", truncate([]byte(text))))
		return
	}
	if s.on == "" {
		s.on = f[0]
	} else if f[0] != s.on {
		l.odd = append(l.odd, fmt.Sprintf("message from %s on a connection served by %s", f[0], s.on))
	}
	if seq != l.next {
		l.odd = append(l.odd, fmt.Sprintf("got #%d from %s, want #%d", seq, f[0], l.next))
	}
	l.next = seq + 1
	s.messages++
	s.lastMsg = time.Now()
}

func (l *streamLog) echo(s *streamSession) {
	l.mu.Lock()
	s.echoed = true
	l.mu.Unlock()
}

func (l *streamLog) end(s *streamSession, clean bool, how string) {
	l.mu.Lock()
	s.ended, s.clean, s.how = time.Now(), clean, how
	l.mu.Unlock()
}

// connectFailed records a failed connection attempt, unless the test's stop caused it, and
// pauses before the next one.
func (l *streamLog) connectFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	l.fail = append(l.fail, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
	l.mu.Unlock()
	pauseCtx(ctx, 50*time.Millisecond)
}

// received counts the messages received so far, on every connection, and says whether
// the latest connection is open.
func (l *streamLog) received() (n int, open bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sess {
		n += s.messages
	}
	return n, len(l.sess) > 0 && l.sess[len(l.sess)-1].ended.IsZero()
}

// pauseCtx waits d or until ctx ends.
func pauseCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// runWebSocket keeps a WebSocket open through lb until ctx ends, reconnecting (resuming the
// sequence) whenever the far side ends it.
func runWebSocket(ctx context.Context, lb string, l *streamLog) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	for ctx.Err() == nil {
		c, _, err := d.DialContext(ctx, fmt.Sprintf("ws://%s/ws?from=%d", lb, l.resumeFrom()), nil)
		if err != nil {
			l.connectFailed(ctx, err)
			continue
		}
		s := l.open()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		err = c.WriteMessage(websocket.TextMessage, []byte("hello"))
		for err == nil {
			var m []byte
			if _, m, err = c.ReadMessage(); err == nil {
				if string(m) == "echo:hello" {
					l.echo(s)
				} else {
					l.message(s, string(m))
				}
			}
		}
		stop()
		c.Close()
		if ctx.Err() != nil {
			return // the test closed it
		}
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
			l.end(s, true, fmt.Sprintf("close frame %d %q", ce.Code, ce.Text))
		case errors.As(err, &ce):
			l.end(s, false, "connection closed without a close frame ("+ce.Text+")")
		default:
			l.end(s, false, err.Error())
		}
	}
}

// runSSE keeps an event stream open through lb until ctx ends, reconnecting with
// Last-Event-ID whenever the far side ends it.
func runSSE(ctx context.Context, lb string, l *streamLog) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+lb+"/sse", nil)
		if n := l.resumeFrom(); n > 0 {
			req.Header.Set("Last-Event-ID", strconv.Itoa(n-1))
		}
		resp, err := c.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if err != nil {
			l.connectFailed(ctx, err)
			continue
		}
		s := l.open()
		br := bufio.NewReader(resp.Body)
		var event strings.Builder // lines of the event being read
		var line string
		for {
			if line, err = br.ReadString('\n'); err != nil {
				break
			}
			if line != "\n" {
				event.WriteString(line)
				continue
			}
			data := event.String() // unexpected unless it has a data line
			for _, f := range strings.Split(data, "\n") {
				if d, ok := strings.CutPrefix(f, "data: "); ok {
					data = d
				}
			}
			l.message(s, data)
			event.Reset()
		}
		resp.Body.Close()
		if ctx.Err() != nil {
			return
		}
		pending := event.String() + line
		switch {
		case errors.Is(err, io.EOF) && pending == "":
			l.end(s, true, "end of stream at an event boundary")
		case errors.Is(err, io.EOF):
			l.end(s, false, fmt.Sprintf("end of stream inside an event (%q left)", pending))
		case errors.Is(err, io.ErrUnexpectedEOF):
			l.end(s, false, fmt.Sprintf("connection closed before the end of the chunked body (%q of an event left)", pending))
		default:
			l.end(s, false, fmt.Sprintf("%v (%q of an event left)", err, pending))
		}
	}
}

// loadSample is one request of the load.
type loadSample struct {
	start   time.Time
	took    time.Duration
	err     string // "" when it succeeded
	retried bool   // the client resent it on a new connection by itself (the first one died)
}

// rollLoad is steady GET load on the load balancer: keep-alive clients (each on its own
// connection, reused) or clients opening a new connection per request.
type rollLoad struct {
	name    string
	sent    atomic.Int64
	wg      sync.WaitGroup
	samples [][]loadSample // one slice per client; read after wg.Wait
}

func startRollLoad(ctx context.Context, name, url string, keepAlive bool, clients int) *rollLoad {
	r := &rollLoad{name: name, samples: make([][]loadSample, clients)}
	for i := range clients {
		r.wg.Go(func() {
			tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: readTimeout}
			for ctx.Err() == nil {
				s := loadOnce(ctx, c, url)
				if ctx.Err() != nil {
					return // cut short by the test's stop
				}
				r.samples[i] = append(r.samples[i], s)
				r.sent.Add(1)
				pauseCtx(ctx, loadPause)
			}
		})
	}
	return r
}

func loadOnce(ctx context.Context, c *http.Client, url string) loadSample {
	var conns atomic.Int32
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	s := loadSample{start: time.Now()}
	resp, err := c.Do(req)
	if err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case rerr != nil:
			err = fmt.Errorf("body: %w", rerr)
		case resp.StatusCode/100 != 2:
			err = fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	s.took = time.Since(s.start)
	s.retried = conns.Load() > 1
	if err != nil {
		s.err = err.Error()
	}
	return s
}

// loadFigures summarises the requests started in [from, to].
type loadFigures struct {
	sent, failed, retried int
	p99, max              time.Duration
	failures              map[string]int // error texts (first 10 kinds) and counts
}

func (r *rollLoad) figures(from, to time.Time) loadFigures {
	f := loadFigures{failures: map[string]int{}}
	var took []time.Duration
	for _, client := range r.samples {
		for _, s := range client {
			if s.start.Before(from) || s.start.After(to) {
				continue
			}
			f.sent++
			took = append(took, s.took)
			if s.retried {
				f.retried++
			}
			if s.err != "" {
				f.failed++
				if _, seen := f.failures[s.err]; seen || len(f.failures) < 10 {
					f.failures[s.err]++
				}
			}
		}
	}
	if len(took) > 0 {
		slices.Sort(took)
		f.p99 = took[(len(took)*99+99)/100-1]
		f.max = took[len(took)-1]
	}
	return f
}

// terminate sends SIGTERM and waits up to timeout for the process to exit (then kills it);
// it returns how long that took and an error unless it exited 0 in time.
func (g *gateway) terminate(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-g.exited:
	case <-time.After(timeout):
		_ = g.cmd.Process.Kill()
		<-g.exited
		return time.Since(start), fmt.Errorf("still running %v after SIGTERM: killed", timeout)
	}
	took := time.Since(start)
	if code := g.cmd.ProcessState.ExitCode(); code != 0 {
		return took, fmt.Errorf("exit code %d after SIGTERM", code)
	}
	return took, nil
}

// relaunch starts the gateway again with the same arguments, so on the same config file
// and the same listen, admin and etcd ports (the old process must have exited), logging to
// a new file; it waits until /readyz answers 200 and stops the process in t.Cleanup.
func (g *gateway) relaunch(t *testing.T, n int) *gateway {
	t.Helper()
	ng := &gateway{addr: g.addr, admin: g.admin, etcd: g.etcd, log: fmt.Sprintf("%s.%d", g.log, n),
		exited: make(chan struct{})}
	ng.cmd = exec.Command(g.cmd.Path, g.cmd.Args[1:]...)
	startLogged(t, ng.cmd, ng.log)
	go func() { _ = ng.cmd.Wait(); close(ng.exited) }()
	t.Cleanup(func() {
		ng.stop()
		if t.Failed() {
			t.Logf("restarted gateway %s output (etcd lines left out):\n%s", ng.addr, ng.tail(40))
		}
	})
	if err := ng.waitReady(20 * time.Second); err != nil {
		t.Fatalf("restarted gateway %s never became ready: %v\n%s", ng.addr, err, ng.tail(40))
	}
	return ng
}

// TestRollingRestart restarts two gateways behind HAProxy one after the other (SIGTERM,
// wait for the exit, start again on the same ports, wait until HAProxy has it back) under
// steady load from keep-alive clients and from clients opening a connection per request:
// no request may fail. A WebSocket and an SSE stream open through HAProxy across the
// restarts must end cleanly (a close frame; the end of the stream at an event boundary)
// within drain delay + grace of the SIGTERM, and carry on through the other gateway with
// nothing lost. Not parallel: it measures latency, and its load would slow other tests.
func TestRollingRestart(t *testing.T) {
	if haproxyBinary() == "" {
		startHAProxy(t) // skips, or fails in CI
	}
	bes := []*rollBackend{newRollBackend(t, "b1"), newRollBackend(t, "b2")}
	gws := make([]*gateway, len(bes))
	servers := make([]lbServer, len(bes))
	for i, b := range bes {
		gws[i] = startGateway(t, gatewaySpec{server: fmt.Sprintf("drain_delay: %v", rollDrainDelay),
			routes: fmt.Sprintf("  - { prefix: /, upstreams: [%q] }\n", b.url)})
		servers[i] = lbServer{name: fmt.Sprintf("gw%d", i+1), addr: gws[i].addr, admin: gws[i].admin}
	}
	lb := startHAProxy(t, servers...)
	for _, s := range servers {
		if err := lb.waitStatus(s.name, "UP", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var clients sync.WaitGroup
	ws, sse := &streamLog{kind: "WebSocket"}, &streamLog{kind: "SSE"}
	clients.Go(func() { runWebSocket(ctx, lb.addr, ws) })
	clients.Go(func() { runSSE(ctx, lb.addr, sse) })
	url := "http://" + lb.addr + "/load"
	loads := []*rollLoad{startRollLoad(ctx, "keep-alive", url, true, 4),
		startRollLoad(ctx, "new connection", url, false, 3)}
	t.Cleanup(func() { // before the backends, gateways and haproxy stop
		cancel()
		clients.Wait()
		for _, l := range loads {
			l.wg.Wait()
		}
	})
	streams := []*streamLog{ws, sse}
	// flowing is a condition: from now on, each load has sent minRequests more requests and
	// each stream has received 3 more messages and is open.
	flowing := func(minRequests int64) func() error {
		sent, got := make([]int64, len(loads)), make([]int, len(streams))
		for i, l := range loads {
			sent[i] = l.sent.Load()
		}
		for i, l := range streams {
			got[i], _ = l.received()
		}
		return func() error {
			for i, l := range loads {
				if n := l.sent.Load() - sent[i]; n < minRequests {
					return fmt.Errorf("%s load: %d requests so far", l.name, n)
				}
			}
			for i, l := range streams {
				if n, open := l.received(); n-got[i] < 3 || !open {
					return fmt.Errorf("%s: %d messages so far, open %v", l.kind, n-got[i], open)
				}
			}
			return nil
		}
	}
	if err := waitUntil(15*time.Second, flowing(20)); err != nil {
		t.Fatalf("before the restart: %v", err)
	}

	begin := time.Now()
	sigterm := make(map[string]time.Time) // backend name -> SIGTERM to its gateway
	for i, g := range gws {
		name := servers[i].name
		sigterm[bes[i].name] = time.Now()
		// HAProxy takes it out when /readyz fails, at the latest when the process is gone.
		down := make(chan error, 1)
		var downAt time.Time // written before the send on down
		go func() {
			err := lb.waitStatus(name, "DOWN", rollDrainDelay+rollGrace+15*time.Second)
			downAt = time.Now()
			down <- err
		}()
		exit, err := g.terminate(rollDrainDelay + rollGrace + 10*time.Second)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := <-down; err != nil {
			t.Errorf("%s never went DOWN in haproxy: %v", name, err)
		}
		gws[i] = g.relaunch(t, 2)
		if err := lb.waitStatus(name, "UP", 15*time.Second); err != nil {
			t.Fatalf("%s restarted but not back in haproxy: %v", name, err)
		}
		since := func(at time.Time) time.Duration { return at.Sub(sigterm[bes[i].name]).Round(time.Millisecond) }
		t.Logf("%s after SIGTERM: DOWN in haproxy %v, exited %v, back UP %v", name,
			since(downAt), exit.Round(time.Millisecond), since(time.Now()))
	}
	end := time.Now()
	if err := waitUntil(15*time.Second, flowing(20)); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	cancel()
	clients.Wait()
	for _, l := range loads {
		l.wg.Wait()
	}

	var report []string
	for _, l := range loads {
		before, during, all := l.figures(time.Time{}, begin), l.figures(begin, end), l.figures(time.Time{}, time.Now())
		report = append(report, fmt.Sprintf("%s: %d sent, %d failed, p99 %v (max %v) during the restart (p99 %v before it); %d sent, %d failed, %d resent by the client on a new connection over the whole run",
			l.name, during.sent, during.failed, during.p99.Round(100*time.Microsecond), during.max.Round(time.Millisecond),
			before.p99.Round(100*time.Microsecond), all.sent, all.failed, all.retried))
		if all.failed != 0 {
			t.Errorf("%s load: %d of %d requests failed: %v", l.name, all.failed, all.sent, all.failures)
		}
		if during.sent < 50 {
			t.Errorf("%s load: only %d requests during the restart, too few to tell anything", l.name, during.sent)
		}
	}
	for _, l := range streams {
		report = append(report, l.kind+": "+l.check(t, sigterm))
	}
	t.Logf("rolling restart of 2 gateways behind haproxy (drain_delay %v, shutdown_grace %v):\n  %s\n  haproxy servers %v, connections by end state %v",
		rollDrainDelay, rollGrace, strings.Join(report, "\n  "), haproxyCounts(lb), lb.terminations())
}

// haproxyCounts is each server's sessions, connection errors and DOWN transitions.
func haproxyCounts(lb *haproxy) map[string]string {
	s, err := lb.servers()
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	out := map[string]string{}
	for name, st := range s {
		out[name] = fmt.Sprintf("%s sessions, %s connection errors, %s downs", st.sessions, st.connErrors, st.downs)
	}
	return out
}

// check asserts what a streaming client must have seen across the restarts: every end
// clean, after the SIGTERM to the gateway carrying it and within drain delay + grace (+
// slack), each followed by a connection through the other gateway that resumes the
// sequence, no failed connection attempt. It returns a summary for the report.
func (l *streamLog) check(t *testing.T, sigterm map[string]time.Time) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var story []string
	ends := 0
	for i, s := range l.sess {
		on := cmp.Or(s.on, "? (no message came)")
		step := fmt.Sprintf("via %s (%d messages)", on, s.messages)
		if s.ended.IsZero() {
			story = append(story, step+", open at the end")
			continue
		}
		ends++
		term, restarted := sigterm[s.on]
		after := s.ended.Sub(term)
		step += fmt.Sprintf(", ended %v after the SIGTERM: %s", after.Round(time.Millisecond), s.how)
		story = append(story, step)
		switch {
		case !s.clean:
			t.Errorf("%s via %s: not a clean end: %s", l.kind, on, s.how)
		case !restarted || after < 0:
			t.Errorf("%s via %s ended with no restart of its gateway going on: %s", l.kind, on, s.how)
		case after > rollDrainDelay+rollGrace+rollEndSlack:
			t.Errorf("%s via %s ended %v after the SIGTERM, past drain delay + grace", l.kind, on, after)
		}
		if i+1 < len(l.sess) && s.on != "" && l.sess[i+1].on == s.on {
			t.Errorf("%s: reconnected through the gateway that ended it (%s) rather than the other one", l.kind, on)
		}
	}
	if ends == 0 {
		t.Errorf("%s: never ended, though both gateways restarted", l.kind)
	}
	if l.kind == "WebSocket" && len(l.sess) > 0 && !l.sess[len(l.sess)-1].echoed {
		t.Errorf("%s: no echo of the client's message on the last connection", l.kind)
	}
	if len(l.fail) > 0 {
		t.Errorf("%s: %d connection attempts failed: %q", l.kind, len(l.fail), l.fail)
	}
	if len(l.odd) > 0 {
		t.Errorf("%s: %d messages out of sequence: %q", l.kind, len(l.odd), l.odd)
	}
	return strings.Join(story, "; then ")
}
