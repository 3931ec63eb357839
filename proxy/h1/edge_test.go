package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

func TestUpgradeEcho(t *testing.T) {
	handlerDone := make(chan struct{})
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			w.WriteHeader(400)
			return
		}
		defer close(handlerDone)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(testTimeout))
		// "hello" rides in the same write as the head, so the client finds it
		// already in its read buffer.
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello")
		brw.Flush()
		io.Copy(conn, brw.Reader)
	}))
	c := newClient(t, Options{})
	req := mustReq(t, "GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body %T is not an io.ReadWriteCloser", resp.Body)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rwc, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("buffered bytes: %q %v", buf, err)
	}
	for _, msg := range []string{"ping", "a longer message"} {
		if _, err := io.WriteString(rwc, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(rwc, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q: %q %v", msg, got, err)
		}
	}
	rwc.Close()
	<-handlerDone
	// The upgraded conn is gone for good; a new request dials.
	if _, _, err := do(t, c, mustReq(t, "GET", srv.URL, nil)); err != nil {
		t.Fatal(err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("%d conns, want 2", n)
	}
}

func TestExpectContinue(t *testing.T) {
	const payload = "body after the go-ahead"
	tests := []struct {
		name       string
		server     func(c net.Conn, br *bufio.Reader) (bodyBytes int)
		wantStatus int
	}{
		{
			name: "100 then body",
			server: func(c net.Conn, br *bufio.Reader) int {
				// No body byte may arrive before the 100 (the client waits up to 1 s).
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := br.Peek(1); err == nil {
					return -1
				}
				c.SetReadDeadline(time.Now().Add(testTimeout))
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
				b := make([]byte, len(payload))
				n, _ := io.ReadFull(br, b)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				return n
			},
			wantStatus: 200,
		},
		{
			name: "final status without 100: body never sent",
			server: func(c net.Conn, br *bufio.Reader) int {
				io.WriteString(c, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
				n, _ := io.Copy(io.Discard, br) // until the client closes the conn
				return int(n)
			},
			wantStatus: 417,
		},
		{
			name: "silent server: body sent after the timeout",
			server: func(c net.Conn, br *bufio.Reader) int {
				b := make([]byte, len(payload))
				n, _ := io.ReadFull(br, b)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				return n
			},
			wantStatus: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan int, 1)
			srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				req, err := readHead(br)
				if err != nil || req.Header.Get("Expect") != "100-continue" {
					got <- -2
					return
				}
				got <- tt.server(c, br)
			})
			c := newClient(t, Options{})
			req := mustReq(t, "PUT", srv.URL(), strings.NewReader(payload))
			req.Header.Set("Expect", "100-continue")
			resp, _, err := do(t, c, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			c.CloseIdleConnections()
			wantBytes := len(payload)
			if tt.wantStatus == 417 {
				wantBytes = 0
			}
			if n := <-got; n != wantBytes {
				t.Errorf("server received %d body bytes, want %d", n, wantBytes)
			}
		})
	}
}

func TestInformationalResponses(t *testing.T) {
	hints := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	raw := startRaw(t, serveOnce("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"+
		"HTTP/1.1 103 Early Hints\r\nLink: </b.js>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", 0))
	tests := []struct {
		name      string
		url       string
		wantCodes string
		wantLink  string
	}{
		{"103 from net/http server", hints.URL, "103", "</app.css>; rel=preload; as=style"},
		{"unsolicited 100 and 102 skipped", raw.URL(), "100,102,103", "</b.js>"},
	}
	c := newClient(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var codes []string
			var link string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				codes = append(codes, fmt.Sprint(code))
				if code == 103 {
					link = h.Get("Link")
				}
				return nil
			}}
			req := mustReq(t, "GET", tt.url, nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			resp, body, err := do(t, c, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || body != "final" {
				t.Errorf("final: %d %q", resp.StatusCode, body)
			}
			if strings.Join(codes, ",") != tt.wantCodes || link != tt.wantLink {
				t.Errorf("1xx codes %v link %q, want %s %q", codes, link, tt.wantCodes, tt.wantLink)
			}
		})
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := readHead(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/slow-body" {
			// Headers at once, body later than the header timeout: allowed.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
			time.Sleep(300 * time.Millisecond)
			io.WriteString(c, "body")
			return
		}
		io.Copy(io.Discard, br) // never answer
	})
	c := newClient(t, Options{ResponseHeaderTimeout: 100 * time.Millisecond})
	_, _, err := do(t, c, mustReq(t, "GET", srv.URL()+"/silent", nil))
	var ne net.Error
	if !errors.Is(err, ErrResponseHeaderTimeout) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("silent upstream: %v, want ErrResponseHeaderTimeout (a net.Error timeout)", err)
	}
	if IsContextError(err) {
		t.Error("header timeout must not look like a client cancel")
	}
	if _, body, err := do(t, c, mustReq(t, "GET", srv.URL()+"/slow-body", nil)); err != nil || body != "body" {
		t.Errorf("slow body: %q %v (header timeout must not cover the body)", body, err)
	}
}

func TestDialFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	// blackhole mimics a SYN that is never answered: only ctx ends it.
	blackhole := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	tests := []struct {
		name        string
		opts        Options
		cancelAfter time.Duration
		wantIs      error
		wantTimeout bool
	}{
		{name: "refused", opts: Options{}},
		{name: "cancel during dial", opts: Options{Dialer: blackhole}, cancelAfter: 50 * time.Millisecond, wantIs: context.Canceled},
		{name: "DialTimeout", opts: Options{Dialer: blackhole, DialTimeout: 50 * time.Millisecond}, wantTimeout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.opts)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			if tt.cancelAfter > 0 {
				timer := time.AfterFunc(tt.cancelAfter, cancel)
				defer timer.Stop()
			}
			req := mustReq(t, "GET", "http://"+closedAddr+"/", nil).WithContext(ctx)
			_, err := c.RoundTrip(req)
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" || !IsDialError(err) {
				t.Fatalf("err %v (%T), want *net.OpError Op dial", err, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err %v, want errors.Is %v", err, tt.wantIs)
			}
			var ne net.Error
			if tt.wantTimeout && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf("err %v: want Timeout()", err)
			}
		})
	}
}

func TestContextEndsBlockedIO(t *testing.T) {
	release := make(chan struct{})
	srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := readHead(br)
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/partial":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		case "/no-read":
			// Never read the body: the client's write blocks once buffers fill.
			<-release
			return
		}
		c.SetReadDeadline(time.Now().Add(testTimeout))
		io.Copy(io.Discard, c) // hold the conn open until the client gives up
	})
	t.Cleanup(func() { close(release) }) // runs before the server's own cleanup
	tests := []struct {
		name     string
		path     string
		method   string
		body     io.Reader
		deadline bool // context deadline instead of cancel
		readBody bool // cancel while reading the body, not the head
		want     error
	}{
		{name: "cancel awaiting headers", path: "/silent", method: "GET", want: context.Canceled},
		{name: "deadline awaiting headers", path: "/silent", method: "GET", deadline: true, want: context.DeadlineExceeded},
		{name: "cancel during body read", path: "/partial", method: "GET", readBody: true, want: context.Canceled},
		{name: "cancel during body write", path: "/no-read", method: "POST", body: &patternReader{n: 256 << 20}, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Options{})
			var ctx context.Context
			var cancel context.CancelFunc
			if tt.deadline {
				ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), testTimeout)
				if !tt.readBody {
					timer := time.AfterFunc(100*time.Millisecond, cancel)
					defer timer.Stop()
				}
			}
			defer cancel()
			req := mustReq(t, tt.method, srv.URL()+tt.path, tt.body).WithContext(ctx)
			resp, err := c.RoundTrip(req)
			if tt.readBody {
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				buf := make([]byte, 3)
				if _, err := io.ReadFull(resp.Body, buf); err != nil {
					t.Fatal(err)
				}
				cancel()
				_, err = io.ReadAll(resp.Body)
				if !errors.Is(err, tt.want) {
					t.Errorf("body read: %v, want %v", err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.want) || !IsContextError(err) {
				t.Errorf("err %v, want errors.Is %v", err, tt.want)
			}
			if IsDialError(err) {
				t.Errorf("mid-request cancel reported as dial error: %v", err)
			}
		})
	}
}

func TestIdleConnTimeout(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(echoHandler))
	c := newClient(t, Options{IdleConnTimeout: 50 * time.Millisecond})
	if _, _, err := do(t, c, mustReq(t, "GET", srv.URL, nil)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, srv, 1) // the sweeper closes it with no further traffic
	if _, _, err := do(t, c, mustReq(t, "GET", srv.URL, nil)); err != nil {
		t.Fatal(err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("%d conns, want 2", n)
	}
}

func TestMaxIdleConnsPerHost(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(echoHandler))
	c := newClient(t, Options{MaxIdleConnsPerHost: 1})
	var bodies []io.ReadCloser
	for i := 0; i < 3; i++ { // three conns in use at once
		resp, err := c.RoundTrip(mustReq(t, "POST", srv.URL, strings.NewReader("x")))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	for _, b := range bodies {
		io.Copy(io.Discard, b)
		b.Close()
	}
	waitClosed(t, srv, 2) // only one fits in the idle pool
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("%d conns, want 3", n)
	}
}
