package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

func TestParseGRPCTimeout(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1S", time.Second, true},
		{"250m", 250 * time.Millisecond, true},
		{"99999999n", 99999999, true},
		{"5u", 5 * time.Microsecond, true},
		{"2M", 2 * time.Minute, true},
		{"1H", time.Hour, true},
		{"99999999H", 0, false}, // past what a deadline can be: none
		{"", 0, false},
		{"S", 0, false},
		{"123456789S", 0, false}, // 9 digits
		{"1s", 0, false},
		{"-1S", 0, false},
		{"1.5S", 0, false},
		{"1 S", 0, false},
	} {
		got, ok := parseGRPCTimeout([]string{c.in})
		if ok != c.ok || got != c.want {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if _, ok := parseGRPCTimeout([]string{"1S", "2S"}); ok {
		t.Error("two grpc-timeout values accepted")
	}
}

func TestEncodeGRPCTimeout(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{time.Second, "1000000u"},
		{90 * time.Millisecond, "90000000n"},
		{1500 * time.Millisecond, "1500000u"},
		{30 * time.Minute, "1800000m"},
		{0, "1n"},
		{1, "1n"},
		{10 * 365 * 24 * time.Hour, "5256000M"},
	} {
		got := encodeGRPCTimeout(c.in)
		if got != c.want {
			t.Errorf("encodeGRPCTimeout(%v) = %q, want %q", c.in, got, c.want)
		}
		if d, ok := parseGRPCTimeout([]string{got}); !ok || d < c.in {
			t.Errorf("encodeGRPCTimeout(%v) = %q reads back as %v", c.in, got, d)
		}
	}
}

func TestGRPCStatusOf(t *testing.T) {
	for _, c := range []struct {
		header, trailer string
		code            int
		ok              bool
	}{
		{"", "0", 0, true},
		{"14", "", 14, true},   // Trailers-Only
		{"", "14", 14, true},   // after the body
		{"", "", 0, false},     // none yet
		{"", "abc", 0, false},  // not a number
		{"", "-1", 0, false},   // negative
		{"", "1234", 0, false}, // too long to be a status
		{"", "99", 99, true},   // a code not yet defined is still a status
	} {
		res := &http.Response{Header: http.Header{}, Trailer: http.Header{}}
		if c.header != "" {
			res.Header["Grpc-Status"] = []string{c.header}
		}
		if c.trailer != "" {
			res.Trailer["Grpc-Status"] = []string{c.trailer}
		}
		if code, ok := grpcStatusOf(res); code != c.code || ok != c.ok {
			t.Errorf("header %q trailer %q: got %d, %v", c.header, c.trailer, code, ok)
		}
	}
}

func TestHTTPStatusForGRPC(t *testing.T) {
	for code, want := range map[int]int{0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401, 42: 500} {
		if got := httpStatusForGRPC(code); got != want {
			t.Errorf("gRPC %d -> %d, want %d", code, got, want)
		}
	}
}

// TestGRPCRelayBoundaries feeds framed messages in every split and checks where the relay
// believes it stands.
func TestGRPCRelayBoundaries(t *testing.T) {
	msg := func(n int) []byte {
		b := []byte{0, 0, 0, byte(n >> 8), byte(n)}
		return append(b, make([]byte, n)...)
	}
	stream := append(append(append(msg(3), msg(0)...), msg(300)...), msg(1)...)
	ends := map[int]bool{0: true, 8: true, 13: true, 318: true, 324: true}
	for chunk := 1; chunk <= len(stream); chunk++ {
		g := &grpcRelay{dst: io.Discard}
		for off := 0; off < len(stream); off += chunk {
			end := min(off+chunk, len(stream))
			if _, err := g.Write(stream[off:end]); err != nil {
				t.Fatal(err)
			}
			if got := g.atBoundary(); got != ends[end] {
				t.Fatalf("chunks of %d: after %d bytes atBoundary = %v, want %v", chunk, end, got, ends[end])
			}
		}
	}
}

// failingReader fails every Read, as a client body whose read deadline fired.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }
func (failingReader) Close() error             { return nil }

// TestInterruptReadIsPerAttempt: an HTTP/2 client's close interrupts only its own attempt's
// reads (errBodyClosed, not the client's fault); a late close from an earlier attempt does
// not touch a later one, whose failure stays the client's.
func TestInterruptReadIsPerAttempt(t *testing.T) {
	b := &clientBody{src: failingReader{}, rc: http.NewResponseController(httptest.NewRecorder())}
	first := b.nextAttempt()
	(&attemptBody{b: b, attempt: first}).Close()
	if _, err := b.Read(make([]byte, 8)); err != errBodyClosed || b.err != nil {
		t.Fatalf("interrupted attempt: %v (recorded %v), want errBodyClosed, nothing recorded", err, b.err)
	}
	second := b.nextAttempt()
	b.interruptRead(first) // late
	a := &attemptBody{b: b, attempt: second}
	if _, err := a.Read(make([]byte, 8)); err == errBodyClosed || b.err == nil {
		t.Fatalf("later attempt: %v (recorded %v), want the client's own failure", err, b.err)
	}
	a.Close()
	if _, err := a.Read(make([]byte, 8)); err != errBodyClosed {
		t.Fatalf("read after close: %v", err)
	}
}

// blockingRT waits for the request's context to end and returns its error, as an HTTP/2
// client does for an upstream that sends no response headers.
type blockingRT struct{}

func (blockingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// TestHeaderTimeout: transport.response_header_timeout on the HTTP/2 clients ends the wait
// for headers with an error classified as an upstream timeout.
func TestHeaderTimeout(t *testing.T) {
	rt := &headerTimeout{next: blockingRT{}, d: 20 * time.Millisecond}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	_, err := rt.RoundTrip(req)
	if err == nil || classify(err, false, false) != upstream.ErrTimeout {
		t.Fatalf("err %v classified %v, want a timeout", err, classify(err, false, false))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = rt.RoundTrip(req.WithContext(ctx))
	if classify(err, true, false) != upstream.ErrCanceled || errors.Is(err, errResponseHeaderTimeout) {
		t.Fatalf("client gone: %v", err)
	}
}
