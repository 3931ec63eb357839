package conformance

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// injected is the unsolicited response the mix-up backend writes on an idle connection.
const injected = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"

// mixUpBackend echoes each request's X-Id as its body. After a request marked X-Inject it
// writes a second, unsolicited response if the connection then stays idle for 50 ms. Only
// an idle connection gets one: bytes that arrive after the gateway sent the next request
// are indistinguishable from that request's answer, for any client, whereas bytes waiting
// on an idle connection are what a pool must notice before reusing it. HEAD is answered
// with Content-Length: 5 and the five body bytes written 30 ms later, as a broken server
// would.
func mixUpBackend(x *exchange) bool {
	if x.req.Method == "HEAD" {
		if x.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") != nil || !x.sleep(30*time.Millisecond) {
			return false
		}
		return x.write("hello") == nil
	}
	id := x.req.Header.Get("X-Id")
	if x.write(response("200 OK", id)) != nil {
		return false
	}
	if x.req.Header.Get("X-Inject") != "" {
		x.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := x.br.Peek(1)
		x.conn.SetReadDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return x.write(injected) == nil
		}
	}
	return true
}

// TestPoolMixUp: a response must never reach a client other than the one whose request
// it answers. Unsolicited bytes from a backend (an extra response, a late HEAD body) must
// not be read as the answer to a later request on a pooled connection.
func TestPoolMixUp(t *testing.T) {
	t.Parallel()
	be := newBackend(t, mixUpBackend)
	gw := startGateway(t, gatewaySpec{routes: route("/", "retries: 0", be)})

	t.Run("sequential", func(t *testing.T) {
		// A pause after each marked request leaves the injected bytes waiting on the idle
		// upstream connection before the next request needs one.
		checkMixUp(t, gw.addr, 1, 40, func(i int) time.Duration { return 100 * time.Millisecond })
	})
	t.Run("concurrent", func(t *testing.T) {
		// Varied pauses leave some pooled connections idle long enough to be injected into
		// while other clients keep the pool busy.
		checkMixUp(t, gw.addr, 8, 20, func(i int) time.Duration { return time.Duration(i%5) * 20 * time.Millisecond })
	})
	t.Run("late HEAD body", func(t *testing.T) {
		c := dial(t, gw.addr)
		resp, body := c.mustRoundTrip(t, request("HEAD / HTTP/1.1", "Host: gw"))
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
		}
		// As in "sequential": the late body must be waiting on the idle upstream connection
		// when the next request needs one. Bytes arriving after a request was written are
		// indistinguishable from its answer for any HTTP/1.1 client (http.Transport too).
		time.Sleep(100 * time.Millisecond)
		for i := range 30 {
			id := fmt.Sprintf("after-head-%d", i)
			resp, body := c.mustRoundTrip(t, request("GET / HTTP/1.1", "Host: gw", "X-Id: "+id))
			if resp.StatusCode != 200 || string(body) != id {
				t.Fatalf("request %d after the HEAD: %d %q, want 200 %q", i, resp.StatusCode, body, id)
			}
		}
	})
}

// checkMixUp runs clients x perClient requests, each client on its own keep-alive
// connection (a new one after a close), every fourth request marked X-Inject and followed
// by pause(i). Each answer must be 200 with the request's own X-Id, or a clean 5xx that
// carries nobody's body.
func checkMixUp(t *testing.T, addr string, clients, perClient int, pause func(i int) time.Duration) {
	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	for n := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *client
			defer func() {
				if c != nil {
					c.nc.Close()
				}
			}()
			for i := range perClient {
				if c == nil {
					var err error
					if c, err = dialClient(addr); err != nil {
						errs <- err
						return
					}
				}
				id := fmt.Sprintf("client-%d-req-%d", n, i)
				fields := []string{"Host: gw", "X-Id: " + id}
				inject := i%4 == 0
				if inject {
					fields = append(fields, "X-Inject: 1")
				}
				resp, body, err := c.roundTrip(request("GET /echo HTTP/1.1", fields...))
				switch {
				case err != nil:
					errs <- fmt.Errorf("%s: %v", id, err)
				case resp.StatusCode == 200 && string(body) == id:
				case resp.StatusCode >= 500 && resp.StatusCode <= 599 &&
					!strings.Contains(string(body), "INJECTED") && !strings.Contains(string(body), "client-"):
				default:
					errs <- fmt.Errorf("%s: got %d %q", id, resp.StatusCode, body)
				}
				if err != nil || resp.Close {
					c.nc.Close()
					c = nil
				}
				if inject {
					time.Sleep(pause(i))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStatusOutOfRange: a status line outside 100-599 is a broken upstream: the client
// gets 502 and the gateway keeps serving.
func TestStatusOutOfRange(t *testing.T) {
	t.Parallel()
	be := newBackend(t, func(x *exchange) bool {
		status, ok := strings.CutPrefix(x.req.Target, "/status/")
		if !ok {
			return x.write(response("200 OK", "fine")) == nil
		}
		return x.write("HTTP/1.1 "+status+" X\r\nContent-Length: 0\r\n\r\n") == nil
	})
	gw := startGateway(t, gatewaySpec{routes: route("/", "retries: 0", be)})
	for _, status := range []string{"600", "999", "000", "099"} {
		t.Run(status, func(t *testing.T) {
			resp, _, err := get(gw.addr, "gw", "/status/"+status)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 502 {
				t.Errorf("upstream status %s: client got %d, want 502", status, resp.StatusCode)
			}
			resp, body, err := get(gw.addr, "gw", "/next")
			if err != nil || resp.StatusCode != 200 || string(body) != "fine" {
				t.Errorf("next request after status %s: %v %v %q, want 200 fine", status, resp, err, body)
			}
		})
	}
}
