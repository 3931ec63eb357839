package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// brokenBody yields data, then fails with err: in the same Read as the
// last data when together is set, else in the next one.
type brokenBody struct {
	data     string
	err      error
	together bool
	done     bool
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.done || b.data == "" {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	if b.data == "" {
		b.done = true
		if b.together {
			return n, b.err
		}
	}
	return n, nil
}

// stuckBody returns nothing, forever.
type stuckBody struct{}

func (stuckBody) Read([]byte) (int, error) { return 0, nil }

// upstreamView is what the server saw on one conn.
type upstreamView struct {
	raw      []byte // every byte received
	sawPost  bool
	bodyErr  error
	bodyRead int
}

func TestBrokenRequestBodyNotCompleted(t *testing.T) {
	// More than the 4 KiB write buffer, so part of a Content-Length body is
	// on the wire before the body fails.
	partial := strings.Repeat("x", 10000)
	// What a downstream client's read deadline looks like to the proxy.
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name    string
		chunked bool
		body    io.Reader
		sent    int   // body bytes the reader yields before failing
		want    error // the body's error, to be reached with errors.Is
	}{
		{"chunked, unexpected EOF", true, &brokenBody{data: partial, err: io.ErrUnexpectedEOF}, len(partial), io.ErrUnexpectedEOF},
		{"chunked, timeout with the last data", true, &brokenBody{data: partial, err: timeout, together: true}, len(partial), timeout},
		{"chunked, timeout before any byte", true, &brokenBody{err: timeout}, 0, timeout},
		{"chunked, no progress", true, stuckBody{}, 0, io.ErrNoProgress},
		{"content-length, unexpected EOF", false, &brokenBody{data: partial, err: io.ErrUnexpectedEOF}, len(partial), io.ErrUnexpectedEOF},
		{"content-length, timeout", false, &brokenBody{data: partial, err: timeout}, len(partial), timeout},
		{"content-length, unexpected EOF with the last data", false, &brokenBody{data: partial, err: io.ErrUnexpectedEOF, together: true}, len(partial), io.ErrUnexpectedEOF},
		{"content-length, error before any byte", false, &brokenBody{err: io.ErrUnexpectedEOF}, 0, io.ErrUnexpectedEOF},
		{"content-length, no progress", false, stuckBody{}, 0, io.ErrNoProgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			views := make(chan upstreamView, 4)
			srv := startRaw(t, func(c net.Conn, _ *bufio.Reader) {
				var v upstreamView
				defer func() { views <- v }()
				br := bufio.NewReader(io.TeeReader(c, (*rawLog)(&v.raw)))
				for {
					req, err := readHead(br)
					if err != nil {
						return
					}
					if req.Method == http.MethodPost {
						v.sawPost = true
						n, err := io.Copy(io.Discard, req.Body)
						v.bodyRead, v.bodyErr = int(n), err
						if err != nil {
							return
						}
					}
					io.WriteString(c, okResp)
				}
			})
			c := newClient(t, Options{})
			// Warm up, so the broken request goes out on a pooled conn: it
			// must neither be retried nor return the conn to the pool.
			if _, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil)); err != nil || body != "ok" {
				t.Fatalf("warm-up: %q %v", body, err)
			}
			req := mustReq(t, "POST", srv.URL(), tt.body)
			req.ContentLength = 2 * int64(len(partial))
			if tt.chunked {
				req.ContentLength = -1
			}
			req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("GetBody must not be called") }
			_, _, err := do(t, c, req)

			var rbe *RequestBodyError
			if !errors.As(err, &rbe) || !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want *RequestBodyError wrapping %v", err, tt.want)
			}
			var ne net.Error
			if isTimeout := errors.As(err, &ne) && ne.Timeout(); isTimeout != (tt.want == timeout) {
				t.Errorf("err %v: net.Error Timeout() reachable = %v", err, isTimeout)
			}
			if IsContextError(err) || IsDialError(err) || errors.Is(err, ErrResponseHeaderTimeout) {
				t.Errorf("err %v misclassified", err)
			}

			var v upstreamView
			select {
			case v = <-views: // the conn was closed, so its handler ended
			case <-time.After(testTimeout):
				t.Fatal("the conn of the broken request is still open")
			}
			if v.sawPost {
				if !errors.Is(v.bodyErr, io.ErrUnexpectedEOF) || v.bodyRead > tt.sent {
					t.Errorf("upstream read %d body bytes, err %v: want a short body", v.bodyRead, v.bodyErr)
				}
				if tt.chunked && bytes.HasSuffix(v.raw, []byte("\r\n0\r\n\r\n")) {
					t.Error("terminating chunk written for a broken body")
				}
			}
			if _, body, err := do(t, c, mustReq(t, "GET", srv.URL(), nil)); err != nil || body != "ok" {
				t.Fatalf("follow-up: %q %v", body, err)
			}
			if n := srv.conns.Load(); n != 2 {
				t.Errorf("%d conns, want 2: the broken request's conn went back to the pool", n)
			}
		})
	}
}

// rawLog appends everything written to it.
type rawLog []byte

func (r *rawLog) Write(p []byte) (int, error) {
	*r = append(*r, p...)
	return len(p), nil
}
