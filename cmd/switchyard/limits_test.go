package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Listener limits of issue #11, item 15, on the real server.

// exchange writes a raw request on c and reads one response, within the deadline.
func exchange(c net.Conn, br *bufio.Reader, request string, deadline time.Duration) (*http.Response, error) {
	c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(c, request); err != nil {
		return nil, err
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res, nil
}

func TestMaxConnections(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	listen, _ := startGateway(t, fmt.Sprintf("discovery: {}\nserver: { max_connections: 2 }\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", backend.URL))
	const get = "GET / HTTP/1.1\r\nHost: gw\r\n\r\n"

	// Two keep-alive connections, served and left open: the limit is reached.
	var open []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if res, err := exchange(c, bufio.NewReader(c), get, 10*time.Second); err != nil || res.StatusCode != 200 {
			t.Fatalf("connection %d: %v %v", i+1, res, err)
		}
		open = append(open, c)
	}

	// A third connects (the kernel's backlog takes it) but is not served...
	third, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	br := bufio.NewReader(third)
	res, err := exchange(third, br, get, 500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("third connection while two are open: %v %v, want no answer", res, err)
	}

	// ...until one of the others closes; then its waiting request is answered.
	open[0].Close()
	third.SetDeadline(time.Now().Add(10 * time.Second))
	res, err = http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("third connection after one closed: %v %v", res, err)
	}
	res.Body.Close()
}

// TestHeaderLimit: the default max_header_bytes (64 KiB) answers 431 to a 100 KiB header,
// and still serves ordinary large headers (a 32 KiB cookie).
func TestHeaderLimit(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	listen, _ := startGateway(t, fmt.Sprintf("discovery: {}\nroutes:\n  - { prefix: /, upstreams: [%q] }\n", backend.URL))
	for _, tc := range []struct {
		size   int
		status int
	}{
		{32 << 10, 200},
		{100 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		req := "GET / HTTP/1.1\r\nHost: gw\r\nCookie: " + strings.Repeat("a", tc.size) + "\r\n\r\n"
		res, err := exchange(c, bufio.NewReader(c), req, 10*time.Second)
		c.Close()
		if err != nil || res.StatusCode != tc.status {
			t.Errorf("%d KiB header: %v %v, want %d", tc.size>>10, res, err, tc.status)
		}
	}
}
