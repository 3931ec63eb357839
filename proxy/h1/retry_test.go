package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

const okResp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func TestStaleConnRetry(t *testing.T) {
	tests := []struct {
		name      string
		req       func(url string) *http.Request
		wantErr   bool
		wantConns int32
	}{
		{
			name:      "GET retried on a fresh conn",
			req:       func(url string) *http.Request { return mustReq(t, "GET", url, nil) },
			wantConns: 2,
		},
		{
			name: "POST with non-replayable body not retried",
			req: func(url string) *http.Request {
				return mustReq(t, "POST", url, io.MultiReader(strings.NewReader("once")))
			},
			wantErr:   true,
			wantConns: 1,
		},
		{
			name: "POST replayable but not idempotent not retried",
			req: func(url string) *http.Request {
				return mustReq(t, "POST", url, strings.NewReader("once"))
			},
			wantErr:   true,
			wantConns: 1,
		},
		{
			name: "POST with GetBody and Idempotency-Key retried",
			req: func(url string) *http.Request {
				r := mustReq(t, "POST", url, strings.NewReader("again"))
				r.Header.Set("Idempotency-Key", "k1")
				return r
			},
			wantConns: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One response per conn, then the server closes: the pooled conn
			// is stale when the second request takes it. The socket is
			// hidden from the idle check, which would otherwise see the EOF
			// before any request is written (TestLateBytesOnIdleConn).
			srv := startRaw(t, serveOnce(okResp, 1))
			c := newClient(t, Options{Dialer: opaqueDial})
			if _, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil)); err != nil || body != "ok" {
				t.Fatalf("warm-up: %q %v", body, err)
			}
			_, body, err := do(t, c, tt.req(srv.URL()))
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error, got response")
				}
				if !IsConnReset(err) {
					t.Errorf("err %v: IsConnReset false", err)
				}
			} else if err != nil || body != "ok" {
				t.Fatalf("got %q, %v", body, err)
			}
			if n := srv.conns.Load(); n != tt.wantConns {
				t.Errorf("%d conns, want %d", n, tt.wantConns)
			}
		})
	}
}

func TestNoRetryOnFreshConn(t *testing.T) {
	srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		readHead(br) // then hang up without answering
	})
	c := newClient(t, Options{})
	_, _, err := do(t, c, mustReq(t, "GET", srv.URL(), nil))
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v, want io.ErrUnexpectedEOF", err)
	}
	if IsDialError(err) {
		t.Error("a mid-request failure must not look like a dial error")
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d conns: a fresh conn's failure was retried", n)
	}
}

func TestStale408Retried(t *testing.T) {
	srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, okResp)
		if _, err := readHead(br); err != nil {
			return
		}
		// What net/http servers send on an idle conn they time out.
		io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	})
	c := newClient(t, Options{})
	for i := 0; i < 2; i++ {
		resp, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil))
		if err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %v %v %q", i, resp, err, body)
		}
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("%d conns, want 2", n)
	}
}

func TestResponseFramingAndReuse(t *testing.T) {
	tests := []struct {
		name      string
		resp      string
		wantBody  string
		wantErr   error // matched with errors.Is; nil means success
		wantConns int32 // after two requests
	}{
		{"exact length reused", okResp, "ok", nil, 1},
		{"trailing bytes: conn not reused", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", "ok", nil, 2},
		{"fewer bytes than Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "short", io.ErrUnexpectedEOF, 2},
		{"truncated chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "hel", io.ErrUnexpectedEOF, 2},
		{"Connection: close honoured", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", nil, 2},
		{"HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				for {
					if _, err := readHead(br); err != nil {
						return
					}
					if _, err := io.WriteString(c, tt.resp); err != nil {
						return
					}
					if tt.wantErr != nil {
						return // close to end the truncated body
					}
				}
			})
			c := newClient(t, Options{})
			for i := 0; i < 2; i++ {
				_, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil))
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Fatalf("request %d: err %v, want %v", i, err, tt.wantErr)
				}
				if body != tt.wantBody {
					t.Fatalf("request %d: body %q, want %q", i, body, tt.wantBody)
				}
			}
			if n := srv.conns.Load(); n != tt.wantConns {
				t.Errorf("%d conns, want %d", n, tt.wantConns)
			}
		})
	}
}

func TestMalformedResponsesRejected(t *testing.T) {
	pad := "X-Pad: " + strings.Repeat("p", 6000) + "\r\n" // head larger than one 4 KiB buffer fill
	tests := []struct {
		name string
		resp string
	}{
		{"Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"Transfer-Encoding first, lower case", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"both, head spanning buffer fills", "HTTP/1.1 200 OK\r\n" + pad + "Transfer-Encoding: chunked\r\n" + pad + "Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{"invalid header name", "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok"},
		{"space before colon", "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nok"},
		{"control byte in name", "HTTP/1.1 200 OK\r\nX-\x01: x\r\nContent-Length: 2\r\n\r\nok"},
		{"unsupported Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok"},
		{"malformed status line", "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"HTTP/2.0 status line", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"HTTP/0.9 status line", "HTTP/0.9 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"header block too large", "HTTP/1.1 200 OK\r\n" + pad + pad + pad + "Content-Length: 2\r\n\r\nok"},
		{"endless 1xx", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 20) + okResp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRaw(t, serveOnce(tt.resp, 0))
			c := newClient(t, Options{MaxResponseHeaderBytes: 16 << 10})
			_, _, err := do(t, c, mustReq(t, "GET", srv.URL(), nil))
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want *ProtocolError", err)
			}
		})
	}
}

func TestBadOutgoingRequestsNotWritten(t *testing.T) {
	var requests atomic.Int32
	srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := readHead(br)
			if err != nil {
				return
			}
			requests.Add(1)
			if req.Header.Get("X-Evil") != "" {
				io.WriteString(c, "HTTP/1.1 500 Injected\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			io.WriteString(c, okResp)
		}
	})
	tests := []struct {
		name   string
		mutate func(r *http.Request)
	}{
		{"CRLF in header value", func(r *http.Request) { r.Header.Set("X-A", "v\r\nX-Evil: 1") }},
		{"LF in header value", func(r *http.Request) { r.Header["X-A"] = []string{"v\nX-Evil: 1"} }},
		{"space in header name", func(r *http.Request) { r.Header["X A"] = []string{"v"} }},
		{"CRLF in host", func(r *http.Request) { r.Host = "a.example\r\nX-Evil: 1" }},
		{"CRLF in raw query", func(r *http.Request) { r.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Evil: 1\r\n" }},
		{"bad method", func(r *http.Request) { r.Method = "GET /x HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET" }},
	}
	c := newClient(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := mustReq(t, "GET", srv.URL(), nil)
			tt.mutate(req)
			_, err := c.RoundTrip(req)
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("err %v, want *RequestError", err)
			}
		})
	}
	// The conn used by the rejected attempts is still clean: the next request
	// is the first one the server ever sees on it.
	if _, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil)); err != nil || body != "ok" {
		t.Fatalf("follow-up: %q %v", body, err)
	}
	if requests.Load() != 1 || srv.conns.Load() != 1 {
		t.Errorf("server saw %d requests on %d conns, want 1 on 1", requests.Load(), srv.conns.Load())
	}
}

func TestStatusOutsideRange(t *testing.T) {
	tests := []struct {
		status  string
		wantErr bool
	}{
		// http.ReadResponse takes any three digits. net/http's server panics
		// on WriteHeader below 100, and no such status is HTTP.
		{"600", true},
		{"999", true},
		{"000", true},
		{"099", true}, // would otherwise pass as informational and be skipped
		{"+99", true}, // strconv.Atoi accepts the sign
		{"599", false},
		{"100", false}, // informational, followed by the final 200
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			var served atomic.Int32
			srv := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				for {
					if _, err := readHead(br); err != nil {
						return
					}
					resp := okResp
					if served.Add(1) == 1 {
						resp = "HTTP/1.1 " + tt.status + " Odd\r\nContent-Length: 0\r\n\r\n" + okResp
					}
					if _, err := io.WriteString(c, resp); err != nil {
						return
					}
				}
			})
			c := newClient(t, Options{})
			resp, _, err := do(t, c, mustReq(t, "GET", srv.URL(), nil))
			var pe *ProtocolError
			if tt.wantErr != errors.As(err, &pe) {
				t.Fatalf("got %v, %v; want *ProtocolError: %v", resp, err, tt.wantErr)
			}
			// The conn of a rejected response is closed, never reused.
			if _, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil)); err != nil || body != "ok" {
				t.Fatalf("follow-up: %q %v", body, err)
			}
			if n := srv.conns.Load(); tt.wantErr && n != 2 {
				t.Errorf("%d conns, want 2", n)
			}
		})
	}
}

func TestResponseHeaderLimit(t *testing.T) {
	head := func(size int) string {
		const line = "X-Pad: " // plus 1017 bytes of value and CRLF: 1 KiB a field
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
		for b.Len() < size-1024 {
			b.WriteString(line + strings.Repeat("p", 1024-len(line)-2) + "\r\n")
		}
		b.WriteString("\r\nok")
		return b.String()
	}
	tests := []struct {
		name    string
		limit   int64
		size    int
		wantErr bool
	}{
		{"60 KiB under the 64 KiB default", 0, 60 << 10, false},
		{"70 KiB over the default", 0, 70 << 10, true},
		{"70 KiB under a raised limit", 128 << 10, 70 << 10, false},
		{"1 MiB over a raised limit", 128 << 10, 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRaw(t, serveOnce(head(tt.size), 0))
			c := newClient(t, Options{MaxResponseHeaderBytes: tt.limit})
			_, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil))
			var pe *ProtocolError
			if tt.wantErr {
				if !errors.As(err, &pe) || !errors.Is(err, errHeaderTooLarge) {
					t.Fatalf("err %v, want *ProtocolError for the header limit", err)
				}
				return
			}
			if err != nil || body != "ok" {
				t.Fatalf("got %q, %v", body, err)
			}
		})
	}
}
