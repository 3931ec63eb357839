package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// readTimeout bounds every wait for a response unless a test says otherwise: long enough
// for a loaded 2-core machine, short enough that a hung gateway fails the test quickly.
const readTimeout = 10 * time.Second

// client is one raw TCP connection to the gateway: the test writes request bytes itself and
// parses what comes back with http.ReadResponse (or reads raw bytes where framing itself is
// under test).
type client struct {
	nc net.Conn
	br *bufio.Reader
}

// dial connects to addr; the connection is closed in t.Cleanup at the latest.
func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := dialClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.nc.Close() })
	return c
}

// dialClient is dial for goroutines other than the test's own, which must not call
// t.Fatal; the caller closes the connection.
func dialClient(addr string) (*client, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{nc: nc, br: bufio.NewReader(nc)}, nil
}

// request renders a request head: the request line, one line per field, the blank line.
func request(line string, fields ...string) string {
	var b strings.Builder
	b.WriteString(line + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// send writes raw bytes.
func (c *client) send(s string) error {
	c.nc.SetWriteDeadline(time.Now().Add(readTimeout))
	_, err := io.WriteString(c.nc, s)
	return err
}

// read parses one response (a 1xx too) to a request with the given method and reads its
// whole body. When the body cannot be read to its end, the response (with the body read so
// far) comes back with the error.
func (c *client) read(method string, timeout time.Duration) (*http.Response, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// roundTrip sends req (whose first word is its method) and reads the response.
func (c *client) roundTrip(req string) (*http.Response, []byte, error) {
	if err := c.send(req); err != nil {
		return nil, nil, err
	}
	method, _, _ := strings.Cut(req, " ")
	return c.read(method, readTimeout)
}

// mustRoundTrip is roundTrip for the test's goroutine: any transport or parse error fails
// the test.
func (c *client) mustRoundTrip(t testing.TB, req string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := c.roundTrip(req)
	if err != nil {
		t.Fatalf("%q: %v", firstLine(req), err)
	}
	return resp, body
}

// closedWithin returns nil when the gateway closes the connection (EOF or reset) within d
// without sending another byte, and an error saying what happened instead.
func (c *client) closedWithin(d time.Duration) error {
	c.nc.SetReadDeadline(time.Now().Add(d))
	var extra []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.br.Read(buf)
		extra = append(extra, buf[:n]...)
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if len(extra) > 0 {
				return fmt.Errorf("connection still open after %v, and it sent %q", d, truncate(extra))
			}
			return fmt.Errorf("connection still open after %v", d)
		case len(extra) > 0:
			return fmt.Errorf("connection closed (%v) after sending %q", err, truncate(extra))
		default:
			return nil // EOF or reset: closed
		}
	}
}

// silentFor returns an error if any byte arrives within d; a close is silence too.
func (c *client) silentFor(d time.Duration) error {
	c.nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	n, err := c.br.Read(buf)
	if n > 0 {
		return fmt.Errorf("got %q", truncate(buf[:n]))
	}
	if err == nil {
		return errors.New("read returned nothing and no error")
	}
	return nil
}

// get sends one GET with the given Host on a new connection (closed after it) and reads
// the answer.
func get(addr, host, target string) (*http.Response, []byte, error) {
	c, err := dialClient(addr)
	if err != nil {
		return nil, nil, err
	}
	defer c.nc.Close()
	return c.roundTrip(request("GET "+target+" HTTP/1.1", "Host: "+host, "Connection: close"))
}

// connectionTokens returns the lower-cased tokens of every Connection field of h.
func connectionTokens(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.ToLower(strings.TrimSpace(tok)); tok != "" {
				out = append(out, tok)
			}
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// truncate shortens bytes for a failure message.
func truncate(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}
