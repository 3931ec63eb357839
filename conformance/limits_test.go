package conformance

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSlowUploadSlowReader: a client that trickles its body or stops reading its response
// holds an upstream connection for as long as it likes unless the gateway paces it. With
// body_idle_timeout 2s and min_body_rate 100 B/s after a 1 s grace, both are cut within
// seconds and their upstream connections closed; a stream whose backend is quiet for
// longer than the idle timeout is not the client's fault and is not cut.
func TestSlowUploadSlowReader(t *testing.T) {
	t.Parallel()
	const big = 50 << 20
	// The /big script reports when and how its writing stopped: closed by the gateway, or
	// its own write deadline after the gateway left it blocked.
	type stopped struct {
		at  time.Time
		err error
	}
	writeFailed := make(chan stopped, 1)
	be := newBackend(t, func(x *exchange) bool {
		switch x.req.Target {
		case "/big":
			if x.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", big)) != nil {
				return false
			}
			chunk := strings.Repeat("x", 64<<10)
			for sent := 0; sent < big; sent += len(chunk) {
				if err := x.write(chunk); err != nil {
					writeFailed <- stopped{time.Now(), err}
					return false
				}
			}
			return false
		case "/stream":
			if x.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n") != nil {
				return false
			}
			for i := 1; i <= 3; i++ {
				if i > 1 && !x.sleep(3*time.Second) {
					return false
				}
				ev := fmt.Sprintf("data: %d\n\n", i)
				if x.write(fmt.Sprintf("%x\r\n%s\r\n", len(ev), ev)) != nil {
					return false
				}
			}
			return x.write("0\r\n\r\n") == nil
		}
		return x.write(response("200 OK", "ok")) == nil
	})
	uploads := newBackend(t, nil)
	gw := startGateway(t, gatewaySpec{server: "body_idle_timeout: 2s, min_body_rate: 100, body_rate_grace: 1s",
		routes: route("/", "retries: 0", be) + route("/upload", "retries: 0", uploads)})

	t.Run("slow upload", func(t *testing.T) {
		t.Parallel()
		cl := dial(t, gw.addr)
		start := time.Now()
		if err := cl.send(request("POST /upload HTTP/1.1", "Host: gw", "X-Id: slow-upload", "Content-Length: 1000")); err != nil {
			t.Fatal(err)
		}
		trickled := make(chan struct{})
		go func() {
			defer close(trickled)
			for range 40 { // 12 s at most, then the test has failed anyway
				time.Sleep(300 * time.Millisecond)
				if cl.send("x") != nil {
					return
				}
			}
		}()
		t.Cleanup(func() { cl.nc.Close(); <-trickled })
		resp, _, err := cl.read("POST", 8*time.Second)
		cut := time.Since(start)
		switch {
		case err == nil && resp.StatusCode != 408:
			t.Errorf("status %d, want 408", resp.StatusCode)
		case err != nil && os.IsTimeout(err):
			t.Errorf("no answer and no close after %v", cut)
		case cut > 5*time.Second:
			t.Errorf("client cut after %v, want within 5s", cut)
		}
		// Whether or not the request head got through, the upstream connection the gateway
		// opened for it must be closed: the uploads backend serves nothing else.
		var open, accepted int
		closed := uploads.waitFor(time.Until(start.Add(6*time.Second)), func([]received) bool {
			open, accepted = uploads.openConns()
			return open == 0
		})
		if !closed {
			t.Errorf("%d of %d upstream connections still open %v after the upload started", open, accepted, time.Since(start))
		}
	})
	t.Run("slow reader", func(t *testing.T) {
		t.Parallel()
		cl := dial(t, gw.addr)
		// A small receive buffer: the kernel must not absorb much of the 50 MB.
		cl.nc.(*net.TCPConn).SetReadBuffer(4096)
		start := time.Now()
		if err := cl.send(request("GET /big HTTP/1.1", "Host: gw")); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-writeFailed:
			switch d := s.at.Sub(start); {
			case os.IsTimeout(s.err):
				t.Errorf("upstream connection still open after %v: the backend's write blocked until its own deadline", d)
			case d > 2*time.Second+5*time.Second:
				t.Errorf("upstream connection closed after %v, want within body_idle_timeout + 5s", d)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("upstream connection still open 15s after the client stopped reading")
		}
	})
	t.Run("quiet stream", func(t *testing.T) {
		t.Parallel()
		cl := dial(t, gw.addr)
		if err := cl.send(request("GET /stream HTTP/1.1", "Host: gw")); err != nil {
			t.Fatal(err)
		}
		resp, body, err := cl.read("GET", 20*time.Second)
		if err != nil {
			t.Fatalf("stream cut: %v (got %q)", err, body)
		}
		if want := "data: 1\n\ndata: 2\n\ndata: 3\n\n"; resp.StatusCode != 200 || string(body) != want {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	})
}

// TestLimits: the listener's limits hold. An oversized head is refused with 431 by
// default; with max_connections 2 a third connection waits until one of the first two
// closes, and is then served.
func TestLimits(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	t.Run("default max_header_bytes", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, gatewaySpec{routes: route("/", "", be)})
		// Only the status matters: Go's server answers 431 with a body delimited by the
		// close and, the head's rest being unread, ends with a reset rather than EOF.
		resp, _, err := dial(t, gw.addr).roundTrip(request("GET / HTTP/1.1", "Host: gw", "X-Big: "+strings.Repeat("a", 100<<10)))
		if resp == nil {
			t.Fatalf("100 KiB header: no answer: %v", err)
		}
		if resp.StatusCode != 431 {
			t.Errorf("100 KiB header: status %d, want 431", resp.StatusCode)
		}
	})
	t.Run("max_connections", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, gatewaySpec{server: "max_connections: 2", routes: route("/", "", be)})
		var idle []*client
		for range 2 {
			c := dial(t, gw.addr)
			if resp, body := c.mustRoundTrip(t, request("GET / HTTP/1.1", "Host: gw")); resp.StatusCode != 200 {
				t.Fatalf("keep-alive connection: %d %q", resp.StatusCode, body)
			}
			idle = append(idle, c)
		}
		third := dial(t, gw.addr)
		if err := third.send(request("GET / HTTP/1.1", "Host: gw")); err != nil {
			t.Fatal(err)
		}
		if err := third.silentFor(time.Second); err != nil {
			t.Fatalf("third connection while two are open: %v, want no answer yet", err)
		}
		idle[0].nc.Close()
		resp, body, err := third.read("GET", 5*time.Second)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("third connection after one closed: %v %v %q, want 200", resp, err, body)
		}
	})
}

// TestConfigBombs: loading a config is bounded in size, time and output, whatever the
// file: an endless file is refused by size, and a small file whose aliases and merge keys
// expand a millionfold is refused quickly with a bounded error list.
func TestConfigBombs(t *testing.T) {
	t.Parallel()
	t.Run("endless file", func(t *testing.T) {
		t.Parallel()
		r := runGateway(t, 10*time.Second, "validate", "-config", "/dev/zero")
		checkRefused(t, r)
		if !regexp.MustCompile(`(?i)size|large|big|long|exceed|limit|bytes|[KM]i?B`).MatchString(r.out) {
			t.Errorf("no size error in %q", truncate([]byte(r.out)))
		}
	})
	t.Run("alias bomb", func(t *testing.T) {
		t.Parallel()
		// Six levels, each merging the one before ten times: 10^5 copies of {x: 1} under
		// routes, every copy an error if expanded.
		yaml := "routes:\n  - &l0 {x: 1}\n"
		for i := 1; i <= 5; i++ {
			yaml += fmt.Sprintf("  - &l%d {<<: [%s]}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
		}
		path := filepath.Join(t.TempDir(), "bomb.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runGateway(t, 10*time.Second, "validate", "-config", path)
		checkRefused(t, r)
		if n := strings.Count(r.out, "\n"); n > 110 {
			t.Errorf("%d lines of output, want at most ~110; first: %q", n, truncate([]byte(r.out)))
		}
	})
}

// checkRefused asserts that a validate run ended by itself within a few seconds with a
// non-zero exit, as a config error and not a crash.
func checkRefused(t *testing.T, r runResult) {
	t.Helper()
	switch {
	case r.timedOut:
		t.Errorf("still running after %v (killed); output %q", r.elapsed, truncate([]byte(r.out)))
	case r.code == 0:
		t.Errorf("exit 0, want non-zero; output %q", truncate([]byte(r.out)))
	case strings.Contains(r.out, "fatal error:") || strings.Contains(r.out, "goroutine "):
		t.Errorf("crashed (exit %d): %q", r.code, truncate([]byte(r.out)))
	case r.elapsed > 5*time.Second:
		t.Errorf("took %v, want a few seconds at most", r.elapsed)
	}
}
