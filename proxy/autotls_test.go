package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/grpctest"
)

// rawTLSBackend answers every request on a TLS listener offering only http/1.1 with the
// canned bytes resp, then closes the connection.
func rawTLSBackend(t *testing.T, cert *grpctest.Cert, resp string) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert.TLS}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 4096)
				// The gateway's ALPN probe closes after the handshake: nothing to answer.
				if _, err := c.Read(buf); err != nil {
					return
				}
				_, _ = io.WriteString(c, resp)
			}()
		}
	}()
	t.Cleanup(func() { _ = lis.Close(); <-done })
	return lis.Addr().String()
}

// TestAutoTLSHTTP1GoesThroughH1: on upstream_protocol auto over TLS, an endpoint whose ALPN
// picks http/1.1 is served by proxy/h1, whose response checks hold there as on http1 routes.
func TestAutoTLSHTTP1GoesThroughH1(t *testing.T) {
	cert := grpctest.NewCert(t)
	for _, c := range []struct {
		name, resp string
		status     int
		body       string
	}{
		{"well formed", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 200, "ok"},
		{"ambiguous framing", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 502, ""},
		{"HTTP/2.0 status line", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 502, ""},
	} {
		for _, protocol := range []string{"http1", ""} {
			t.Run(fmt.Sprintf("%s via %q", c.name, protocol), func(t *testing.T) {
				be := rawTLSBackend(t, &cert, c.resp)
				rt := routeSpec{prefix: "/", protocol: protocol, scheme: "https", timeout: 5 * time.Second, backends: []string{be}}.build(t)
				gw, _ := startGatewayWith(t, Options{Transport: caFile(cert.CAFile)}, nil, rt)
				conn, err := net.Dial("tcp", gw.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_, _ = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
				_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
				all, _ := io.ReadAll(conn)
				head, body, _ := strings.Cut(string(all), "\r\n\r\n")
				if want := fmt.Sprintf("HTTP/1.1 %d ", c.status); !strings.HasPrefix(head, want) {
					t.Fatalf("client got %q, want status %d", all, c.status)
				}
				if c.status == 200 && body != c.body {
					t.Errorf("body %q, want %q", body, c.body)
				}
			})
		}
	}
}

// TestAutoTLSLearnsOnce: an endpoint's protocol is asked once and used by every request after
// it, concurrent first requests share one probe, and a failed probe or a connect or protocol
// failure of the request makes the next request ask again.
func TestAutoTLSLearnsOnce(t *testing.T) {
	errProtocol := errors.New("malformed response")
	errDial := &net.OpError{Op: "dial", Err: errors.New("refused")}
	for _, c := range []struct {
		name      string
		answer    string // what the probe learns
		probeErr  error  // what the first probe fails with
		sendErr   error  // what the first request fails with
		via       string // the client the requests went through
		wantProbe int32  // probes for the requests
	}{
		{"h2", "h2", nil, nil, "h2", 1},
		{"http/1.1", "http/1.1", nil, nil, "h1", 1},
		{"no ALPN", "", nil, nil, "h1", 1},
		{"probe fails", "h2", errDial, nil, "h2", 2},
		{"protocol error", "http/1.1", nil, errProtocol, "h1", 2},
		{"connect error", "h2", nil, errDial, "h2", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var probes, sends atomic.Int32
			client := func(name string) http.RoundTripper {
				return roundTripFunc(func(*http.Request) (*http.Response, error) {
					if name != c.via {
						t.Errorf("request went through %s, want %s", name, c.via)
					}
					if sends.Add(1) == 1 && c.sendErr != nil {
						return nil, c.sendErr
					}
					return &http.Response{StatusCode: 502, Body: http.NoBody}, nil
				})
			}
			a := newAutoTLS(client("h1"), client("h2"), func(context.Context, string) (string, error) {
				time.Sleep(10 * time.Millisecond) // let concurrent first requests meet
				if probes.Add(1) == 1 && c.probeErr != nil {
					return "", c.probeErr
				}
				return c.answer, nil
			})
			send := func() error {
				req := httptest.NewRequest(http.MethodGet, "https://10.0.0.1:8443/x", nil)
				_, err := a.RoundTrip(req)
				return err
			}
			first := make(chan error, 4)
			for range 4 { // concurrent first requests: one probe
				go func() { first <- send() }()
			}
			failed := 0
			for range 4 {
				if err := <-first; err != nil {
					failed++
				}
			}
			if c.probeErr == nil && c.sendErr == nil && failed > 0 {
				t.Fatalf("%d first requests failed", failed)
			}
			for range 3 {
				_ = send()
			}
			if n := probes.Load(); n != c.wantProbe {
				t.Errorf("%d probes, want %d", n, c.wantProbe)
			}
		})
	}
}

// TestAutoTLSRelearnsAfterTTL: an answer older than alpnTTL is asked again.
func TestAutoTLSRelearnsAfterTTL(t *testing.T) {
	var probes atomic.Int32
	ok := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	a := newAutoTLS(ok, ok, func(context.Context, string) (string, error) { probes.Add(1); return "h2", nil })
	send := func() {
		if _, err := a.RoundTrip(httptest.NewRequest(http.MethodGet, "https://10.0.0.1/x", nil)); err != nil {
			t.Fatal(err)
		}
	}
	send()
	send()
	a.mu.Lock()
	ans := a.learnt["10.0.0.1:443"]
	ans.expires = time.Now().Add(-time.Second)
	a.learnt["10.0.0.1:443"] = ans
	a.mu.Unlock()
	send()
	if n := probes.Load(); n != 2 {
		t.Errorf("%d probes, want 2 (one, then one after the answer expired)", n)
	}
}
