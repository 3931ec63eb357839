package conformance

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// h2cClient is a real HTTP/2 client speaking h2c with prior knowledge (no TLS, no Upgrade),
// counting the TCP connections it dials.
func h2cClient(t *testing.T) (*http.Client, *atomic.Int32) {
	var dials atomic.Int32
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: readTimeout}, &dials
}

// fetch sends GET url with the given Host and returns the response with its whole body.
func fetch(c *http.Client, url, host string) (*http.Response, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// TestH2CPublicListener: without TLS the public listener speaks HTTP/2 with prior knowledge
// (h2c) beside HTTP/1.1 on the same port. A request over h2c reaches the HTTP/1.1 upstream
// with its path, Host and the gateway's X-Forwarded-* fields; a body larger than the initial
// flow-control window arrives intact; several streams run at once on one connection; an
// unknown route gets the gateway's own 404. (TLS with ALPN h2 is cmd/switchyard's
// TestTLSListenerServesHTTP2.)
func TestH2CPublicListener(t *testing.T) {
	t.Parallel()
	// 200 KiB: more than HTTP/2's initial 64 KiB window and many 16 KiB frames.
	big := strings.Repeat("0123456789abcdef", 200*1024/16)
	be := newBackend(t, reply(response("200 OK", big, "Content-Type: text/plain")))
	const streams = 8
	// Each request is held until all of them have reached the backend: they can only all
	// be answered if the client had them in flight at once.
	multi := newBackend(t, func(x *exchange) bool {
		together := x.b.waitFor(readTimeout, func(r []received) bool { return len(r) >= streams })
		return x.write(response("200 OK", fmt.Sprintf("%s together=%v", x.req.Target, together))) == nil
	})
	gw := startGateway(t, gatewaySpec{routes: route("/h2", "", be) + route("/multi", "", multi)})
	client, dials := h2cClient(t)

	t.Run("proxied", func(t *testing.T) {
		resp, body, err := fetch(client, "http://"+gw.addr+"/h2/echo?q=1", "h2c.example")
		if err != nil {
			t.Fatalf("h2c request: %v", err)
		}
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("got %s %d, want HTTP/2.0 200", resp.Proto, resp.StatusCode)
		}
		if body != big {
			t.Errorf("body: %d bytes, want the backend's %d intact", len(body), len(big))
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id in the response")
		}
		reqs := be.received()
		if len(reqs) != 1 {
			t.Fatalf("backend got %d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.Proto != "HTTP/1.1" || r.Method != "GET" || r.Target != "/h2/echo?q=1" || r.Host != "h2c.example" {
			t.Errorf("backend got %s %s %s Host %q, want GET /h2/echo?q=1 HTTP/1.1 Host h2c.example",
				r.Method, r.Target, r.Proto, r.Host)
		}
		want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1",
			"X-Forwarded-Proto": "http", "X-Forwarded-Host": "h2c.example", "X-Forwarded-Port": "80",
			"X-Request-Id": resp.Header.Get("X-Request-Id")}
		for k, v := range want {
			if got := r.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("backend got %s %q, want %q", k, got, v)
			}
		}
		for _, k := range []string{"Upgrade", "Http2-Settings", "Connection"} {
			if v, ok := r.Header[k]; ok {
				t.Errorf("backend got %s %q", k, v)
			}
		}
	})

	t.Run("unknown route", func(t *testing.T) {
		resp, body, err := fetch(client, "http://"+gw.addr+"/nowhere", "h2c.example")
		if err != nil {
			t.Fatalf("h2c request: %v", err)
		}
		if resp.ProtoMajor != 2 || resp.StatusCode != 404 || !strings.Contains(body, `"error":"no route"`) ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %s %d %q %q, want HTTP/2.0 404 with the gateway's JSON error", resp.Proto,
				resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	t.Run("concurrent streams", func(t *testing.T) {
		// The connection the subtests above opened is reused for every stream.
		var wg sync.WaitGroup
		errs := make(chan error, streams)
		for i := range streams {
			wg.Go(func() {
				path := fmt.Sprintf("/multi/%d", i)
				resp, body, err := fetch(client, "http://"+gw.addr+path, "h2c.example")
				switch {
				case err != nil:
					errs <- fmt.Errorf("%s: %v", path, err)
				case resp.ProtoMajor != 2 || resp.StatusCode != 200 || body != path+" together=true":
					errs <- fmt.Errorf("%s: got %s %d %q, want HTTP/2.0 200 %q", path, resp.Proto,
						resp.StatusCode, body, path+" together=true")
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("the h2c client dialled %d connections, want 1 carrying every stream", n)
		}
	})

	t.Run("HTTP/1.1 on the same port", func(t *testing.T) {
		tr := &http.Transport{} // HTTP/1.1 only for http:// URLs
		defer tr.CloseIdleConnections()
		resp, body, err := fetch(&http.Client{Transport: tr, Timeout: readTimeout}, "http://"+gw.addr+"/h2/one", "h1.example")
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 1 || resp.StatusCode != 200 || body != big {
			t.Errorf("got %s %d with %d body bytes, want HTTP/1.1 200 with %d", resp.Proto, resp.StatusCode,
				len(body), len(big))
		}
	})
}
