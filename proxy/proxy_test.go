package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/h1"
	"github.com/switchyard/switchyard/upstream"
	"golang.org/x/net/http2"
)

// echoHeaders answers with the request's path and headers as JSON.
func echoHeaders(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "secret")
		w.Header().Set("X-Backend", name)
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "host": r.Host, "header": r.Header})
	}
}

type echoed struct {
	Path   string      `json:"path"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, echoed) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e echoed
	body, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(body, &e)
	return res, e
}

func TestForwardedHeadersAndHopByHop(t *testing.T) {
	be := backend(t, echoHeaders("a"))
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		wantXFF string
	}{
		{"untrusted peer: XFF replaced", nil, "127.0.0.1"},
		{"trusted peer: XFF appended", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9, 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw, _ := startGateway(t, tc.trusted, routeSpec{prefix: "/", backends: []string{be}}.build(t))
			res, e := get(t, gw.URL+"/x?q=1", map[string]string{
				"Connection":      "X-Client-Hop",
				"X-Client-Hop":    "1",
				"Keep-Alive":      "timeout=5",
				"X-Forwarded-For": "203.0.113.9",
				"X-Request-Id":    "req-123",
			})
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			if e.Path != "/x?q=1" {
				t.Errorf("path %q", e.Path)
			}
			for _, k := range []string{"X-Client-Hop", "Keep-Alive"} {
				if v := e.Header.Get(k); v != "" {
					t.Errorf("hop-by-hop %s forwarded: %q", k, v)
				}
			}
			if got := e.Header.Get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.wantXFF)
			}
			if got := e.Header.Get("X-Forwarded-Proto"); got != "http" {
				t.Errorf("X-Forwarded-Proto = %q", got)
			}
			if got, want := e.Header.Get("X-Forwarded-Host"), strings.TrimPrefix(gw.URL, "http://"); got != want {
				t.Errorf("X-Forwarded-Host = %q, want %q", got, want)
			}
			if e.Host != strings.TrimPrefix(gw.URL, "http://") {
				t.Errorf("Host = %q: the client's Host must reach the upstream", e.Host)
			}
			if e.Header.Get("X-Request-Id") != "req-123" || res.Header.Get("X-Request-Id") != "req-123" {
				t.Errorf("X-Request-Id not passed through: upstream %q, client %q", e.Header.Get("X-Request-Id"), res.Header.Get("X-Request-Id"))
			}
			if res.Header.Get("X-Resp-Hop") != "" {
				t.Error("response hop-by-hop header X-Resp-Hop reached the client")
			}
			if res.Header.Get("X-Backend") != "a" {
				t.Error("end-to-end response header lost")
			}
		})
	}
}

func TestRequestIDGenerated(t *testing.T) {
	be := backend(t, echoHeaders("a"))
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	res, e := get(t, gw.URL+"/", map[string]string{"X-Request-Id": "bad id with spaces"})
	id := res.Header.Get("X-Request-Id")
	if len(id) != 32 || id != e.Header.Get("X-Request-Id") {
		t.Fatalf("generated id %q, upstream saw %q", id, e.Header.Get("X-Request-Id"))
	}
}

func TestRoutingStripPrefixAndTraversal(t *testing.T) {
	pub := backend(t, echoHeaders("public"))
	adm := backend(t, echoHeaders("admin"))
	api := backend(t, echoHeaders("api"))
	gw, _ := startGateway(t, nil,
		routeSpec{prefix: "/public", backends: []string{pub}}.build(t),
		routeSpec{prefix: "/admin", backends: []string{adm}}.build(t),
		routeSpec{prefix: "/api/users", strip: true, backends: []string{api}}.build(t),
	)
	cases := []struct {
		raw, backend, path string
	}{
		{"/public/a", "public", "/public/a"},
		{"/public/../admin/x", "admin", "/admin/x"},
		{"/public/%2e%2e/admin/x", "admin", "/admin/x"},
		{"/public/%2E%2E/admin", "admin", "/admin"},
		{"//public//a", "public", "/public/a"},
		{"/api/users/7?x=1", "api", "/7?x=1"},
		{"/api/users", "api", "/"},
		{"/api/users2", "", ""}, // no route: segment-aware
	}
	for _, c := range cases {
		t.Run(c.raw, func(t *testing.T) {
			status, hdr, body := rawGet(t, gw.Listener.Addr().String(), c.raw)
			if c.backend == "" {
				if status != 404 || !strings.Contains(body, `"error":"no route"`) {
					t.Fatalf("got %d %q, want 404 JSON", status, body)
				}
				return
			}
			var e echoed
			_ = json.Unmarshal([]byte(body), &e)
			if status != 200 || hdr.Get("X-Backend") != c.backend || e.Path != c.path {
				t.Fatalf("got %d from %q path %q, want %s path %q", status, hdr.Get("X-Backend"), e.Path, c.backend, c.path)
			}
		})
	}
}

// rawGet sends a request line exactly as given (no client-side cleaning).
func rawGet(t *testing.T, addr, target string) (int, http.Header, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n", target)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func TestErrorMapping(t *testing.T) {
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	policy := &recordingPolicy{}
	empty := routeSpec{prefix: "/empty"}.build(t)
	empty.Pool.Update(upstream.NewSnapshot(nil))
	gw, _ := startGateway(t, nil,
		routeSpec{prefix: "/dead", backends: []string{deadAddr(t)}, policy: policy}.build(t),
		routeSpec{prefix: "/slow", backends: []string{slow}, timeout: 100 * time.Millisecond}.build(t),
		empty,
		routeSpec{prefix: "/nosnapshot"}.build(t),
	)
	for _, c := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/dead", 502, "upstream unreachable"},
		{"/slow", 504, "upstream timeout"},
		{"/empty", 503, "no healthy upstream"},
		{"/nosnapshot", 503, "no healthy upstream"},
		{"/none", 404, "no route"},
	} {
		res, err := http.Get(gw.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || res.Header.Get("Content-Type") != "application/json" ||
			!strings.Contains(string(body), `"error":"`+c.msg+`"`) {
			t.Errorf("%s: got %d %s %q, want %d %q", c.path, res.StatusCode, res.Header.Get("Content-Type"), body, c.status, c.msg)
		}
	}
	var kinds []upstream.ErrorKind
	for _, h := range policy.hs {
		for _, o := range h.all() {
			kinds = append(kinds, o.Err)
		}
	}
	if len(kinds) != 1 || kinds[0] != upstream.ErrConnect {
		t.Fatalf("dead endpoint outcomes %v, want one connect error", kinds)
	}
}

func TestClientCancelIsNotCountedAgainstUpstream(t *testing.T) {
	started := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	policy := &recordingPolicy{}
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}, policy: policy}.build(t))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.URL+"/", nil)
	go func() { <-started; cancel() }()
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	h := policy.of(be)
	deadline := time.Now().Add(2 * time.Second)
	for len(h.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if o := h.all(); len(o) != 1 || o[0].Err != upstream.ErrCanceled {
		t.Fatalf("outcomes %+v, want one ErrCanceled", o)
	}
}

func TestRetries(t *testing.T) {
	var okHits atomic.Int64
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) {
		okHits.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok:%s", b)
	})
	unavailable := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
	})
	// resets reads the request, then drops the connection without an answer.
	resets := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	})
	dead := deadAddr(t)
	gw, _ := startGateway(t, nil,
		routeSpec{prefix: "/dead", backends: []string{dead, ok}, retries: 1, retry: defaultRetry()}.build(t),
		routeSpec{prefix: "/503", backends: []string{unavailable, ok}, retries: 1, retry: defaultRetry()}.build(t),
		routeSpec{prefix: "/reset", backends: []string{resets, ok}, retries: 1, retry: defaultRetry()}.build(t),
		routeSpec{prefix: "/noretry", backends: []string{resets, ok}, retries: 0, retry: defaultRetry()}.build(t),
		routeSpec{prefix: "/deadnoretry", backends: []string{dead, ok}, retries: 0, retry: defaultRetry()}.build(t),
	)
	do := func(method, path, body string, hdr ...string) int {
		req, _ := http.NewRequest(method, gw.URL+path, strings.NewReader(body))
		if len(hdr) == 2 {
			req.Header.Set(hdr[0], hdr[1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 && string(b) != "ok:"+body {
			t.Fatalf("%s %s: body %q, want %q (replayed body must be intact)", method, path, b, "ok:"+body)
		}
		return res.StatusCode
	}
	count := func(method, path, body string, n int, hdr ...string) (fails int) {
		for i := 0; i < n; i++ {
			if do(method, path, body, hdr...) != 200 {
				fails++
			}
		}
		return fails
	}
	if f := count("GET", "/dead", "", 10); f != 0 {
		t.Errorf("GET with a dead endpoint: %d of 10 failed, want 0 (retried on the other)", f)
	}
	if f := count("PUT", "/dead", "payload", 10); f != 0 {
		t.Errorf("PUT with body: %d of 10 failed, want 0", f)
	}
	if f := count("GET", "/503", "", 10); f != 0 {
		t.Errorf("GET with a 503 endpoint: %d of 10 failed, want 0", f)
	}
	if f := count("GET", "/reset", "", 10); f != 0 {
		t.Errorf("GET with a resetting endpoint: %d of 10 failed, want 0", f)
	}
	// A POST that reached an upstream is never retried: round robin sends every other one
	// to the resetting endpoint.
	if f := count("POST", "/reset", "x", 10); f != 5 {
		t.Errorf("POST: %d of 10 failed, want 5 (never retried)", f)
	}
	if f := count("POST", "/reset", "x", 10, "Idempotency-Key", "k1"); f != 0 {
		t.Errorf("POST with Idempotency-Key: %d of 10 failed, want 0", f)
	}
	if f := count("GET", "/noretry", "", 10); f != 5 {
		t.Errorf("retries 0: %d of 10 failed, want 5", f)
	}
	// A refused dial sent nothing: retried on another endpoint for every method, and
	// whatever the route's retry count (issue #12).
	if f := count("POST", "/dead", "x", 10); f != 0 {
		t.Errorf("POST with a dead endpoint: %d of 10 failed, want 0", f)
	}
	if f := count("GET", "/deadnoretry", "", 10); f != 0 {
		t.Errorf("retries 0 with a dead endpoint: %d of 10 failed, want 0", f)
	}
}

func TestRetryBudget(t *testing.T) {
	b := retryBudget{percent: 20, min: 3}
	for i := 0; i < 3; i++ {
		if !b.acquire() {
			t.Fatalf("retry %d denied below the minimum", i)
		}
	}
	if b.acquire() {
		t.Fatal("4th concurrent retry allowed with 0 active requests")
	}
	b.active.Store(100) // 20 % of 100 = 20
	n := 3
	for b.acquire() {
		n++
	}
	if n != 20 {
		t.Fatalf("budget allowed %d concurrent retries at 100 active, want 20", n)
	}
	b.releaseRetry()
	if !b.acquire() {
		t.Fatal("released slot not reusable")
	}
}

func TestStreamingFlushes(t *testing.T) {
	release := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	res, err := http.Get(gw.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event %q %v: must arrive before the stream ends", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Fatalf("rest %q", rest)
	}
}

func TestTrailers(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		fmt.Fprint(w, "body")
		w.Header().Set("X-Checksum", "abc")
	})
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	res, err := http.Get(gw.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	if got := res.Trailer.Get("X-Checksum"); got != "abc" {
		t.Fatalf("trailer X-Checksum = %q, want abc", got)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo
	})
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	c, err := net.DialTimeout("tcp", gw.Listener.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	for _, msg := range []string{"ping", "pong!"} {
		fmt.Fprint(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: got %q %v", msg, buf, err)
		}
	}
}

func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	// What h1 returns when a request's context ends while it waits under max_conns_per_host.
	waitEnded := func(ctxErr error) error {
		return fmt.Errorf("h1: waiting for a free connection to 10.0.0.1:80: %w", ctxErr)
	}
	cases := []struct {
		name       string
		err        error
		gone, tout bool
		want       upstream.ErrorKind
	}{
		{"dial", dial, false, false, upstream.ErrConnect},
		{"client gone wins", dial, true, false, upstream.ErrCanceled},
		{"route timeout", context.Canceled, false, true, upstream.ErrTimeout},
		{"reset", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), false, false, upstream.ErrReset},
		{"client body broke", &h1.RequestBodyError{Err: io.ErrUnexpectedEOF}, false, false, upstream.ErrCanceled},
		{"garbage", errors.New("malformed HTTP response"), false, false, upstream.ErrProtocol},
		{"route timeout while waiting for a connection", waitEnded(context.Canceled), false, true, upstream.ErrTimeout},
		{"client left while waiting for a connection", waitEnded(context.Canceled), true, false, upstream.ErrCanceled},
		{"caller's deadline while waiting for a connection", waitEnded(context.DeadlineExceeded), false, false, upstream.ErrTimeout},
		{"canceled while waiting for a connection", waitEnded(context.Canceled), false, false, upstream.ErrCanceled},
		{"HTTP/2 stream reset", http2.StreamError{StreamID: 1, Code: http2.ErrCodeInternal}, false, false, upstream.ErrReset},
		{"HTTP/2 stream refused", fmt.Errorf("x: %w", http2.StreamError{StreamID: 3, Code: http2.ErrCodeRefusedStream}), false, false, upstream.ErrReset},
		{"HTTP/2 response header timeout", errors.Join(errResponseHeaderTimeout, context.Canceled), false, false, upstream.ErrTimeout},
	}
	for _, c := range cases {
		if got := classify(c.err, c.gone, c.tout); got != c.want {
			t.Errorf("%s: classify = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestEarlyHintsRelayed(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	var hints []string
	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
			return nil
		},
	}))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload; as=style" {
		t.Fatalf("1xx seen by client: %q", hints)
	}
	if string(body) != "final" || res.Header.Get("Link") != "" || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("final response: %q Link=%q X-Request-Id=%q", body, res.Header.Get("Link"), res.Header.Get("X-Request-Id"))
	}
}

// TestAllRefusingIsBounded: when every endpoint refuses, a request dials each at most once
// and at most upstream.MaxExcluded of them, then answers 502 at once (issue #12: refused
// dials are retried for free, so the bound must come from somewhere else).
func TestAllRefusingIsBounded(t *testing.T) {
	dead := make([]string, 12)
	for i := range dead {
		dead[i] = deadAddr(t)
	}
	pol := &recordingPolicy{}
	rt := routeSpec{prefix: "/", backends: dead, retries: 1, retry: defaultRetry(), policy: pol}.build(t)
	gw, _ := startGateway(t, nil, rt)
	start := time.Now()
	res, err := http.Get(gw.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", res.StatusCode)
	}
	dials := 0
	for _, k := range dead {
		if h := pol.of(k); h != nil {
			n := len(h.all())
			if n > 1 {
				t.Errorf("%s dialled %d times in one request", k, n)
			}
			dials += n
		}
	}
	if dials == 0 || dials > upstream.MaxExcluded {
		t.Errorf("%d dials for one request, want 1..%d", dials, upstream.MaxExcluded)
	}
	t.Logf("%d refused dials, 502 after %v", dials, time.Since(start))
}

// TestResetMidBodyRetried: an upstream that breaks in the middle of a small body is retried
// on another endpoint (the body is held until complete, so the client saw nothing yet);
// a large body is relayed as it comes and cannot be retried once started.
func TestResetMidBodyRetried(t *testing.T) {
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "whole body") })
	halfBody := backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nwhole")
		brw.Flush()
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{halfBody, ok}, retries: 1, retry: defaultRetry()}.build(t))
	for i := range 10 {
		res, err := http.Get(gw.URL + "/x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || string(b) != "whole body" {
			t.Fatalf("request %d: %d %q %v", i, res.StatusCode, b, err)
		}
	}
}

// TestHeadNotHeld: a HEAD response announces a length but has no body; it must be relayed
// from the first endpoint, not read as a broken body and retried elsewhere.
func TestHeadNotHeld(t *testing.T) {
	var hits atomic.Int32
	be := func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Length", "10")
	}
	pol := &recordingPolicy{}
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{backend(t, be), backend(t, be)},
		retries: 1, retry: defaultRetry(), policy: pol}.build(t))
	req, _ := http.NewRequest(http.MethodHead, gw.URL+"/x", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || hits.Load() != 1 {
		t.Errorf("HEAD: status %d after %d upstream requests, want 200 after 1", res.StatusCode, hits.Load())
	}
}

// TestStatusRetryNeedsWholeBody: a body too large to keep for a replay is never resent
// (empty) after a retried status; the status is relayed instead.
func TestStatusRetryNeedsWholeBody(t *testing.T) {
	var got atomic.Int64
	unavailable := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
	})
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
	})
	retry := defaultRetry()
	retry.MaxBodyBytes = 16
	gw, _ := startGateway(t, nil, routeSpec{prefix: "/", backends: []string{unavailable, ok}, retries: 1, retry: retry}.build(t))
	for range 2 { // round robin: one of the two starts at the 503 endpoint
		req, _ := http.NewRequest(http.MethodPut, gw.URL+"/x", io.MultiReader(strings.NewReader(strings.Repeat("x", 100))))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == 200 && got.Load() != 100 {
			t.Fatalf("upstream got %d of 100 body bytes with a 200", got.Load())
		}
	}
}
