package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

// wsFrame encodes one WebSocket frame: fin, opcode, payload; masked as a client's are.
func wsFrame(opcode byte, payload []byte, masked bool) []byte {
	b := []byte{0x80 | opcode}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := [4]byte{1, 2, 3, 4}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// writeChunks writes b to w in writes of chunk bytes.
func writeChunks(w io.Writer, b []byte, chunk int) error {
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// endAt is the first of the ascending offsets ends at or after at.
func endAt(ends []int, at int) int {
	for _, e := range ends {
		if e >= at {
			return e
		}
	}
	return ends[len(ends)-1]
}

// TestWSRelayCloseAtFrameBoundary: whatever the chunking of the upstream's stream and
// wherever the close is asked for, the client gets whole frames, then the Close frame, and
// nothing after it; the upstream's own Close frame afterwards ends the relay.
func TestWSRelayCloseAtFrameBoundary(t *testing.T) {
	frames := [][]byte{
		wsFrame(0x1, []byte("hello"), false),
		wsFrame(0x2, bytes.Repeat([]byte{7}, 200), false),   // 16-bit length
		wsFrame(0x9, nil, false),                            // ping, empty
		wsFrame(0x2, bytes.Repeat([]byte{9}, 70000), false), // 64-bit length
		{0x01, 0x03, 'a', 'b', 'c'},                         // first fragment of a message (no FIN)
		wsFrame(0x1, []byte("masked"), true),                // not from a server, but framed alike
		{0x80, 0x02, 'd', 'e'},                              // its last fragment
	}
	var stream []byte
	ends := []int{0} // offsets where a frame ends (and the start)
	for _, f := range frames {
		stream = append(stream, f...)
		ends = append(ends, len(stream))
	}
	upClose := wsFrame(0x8, []byte{0x03, 0xe8}, false)
	for _, chunk := range []int{1, 3, 7, 130, 4096, len(stream)} {
		for _, at := range []int{0, 1, 2, 5, 6, 7, 150, ends[2], ends[3] + 1, ends[4] - 1, ends[5] + 1, len(stream)} {
			t.Run(fmt.Sprintf("chunk %d close at %d", chunk, at), func(t *testing.T) {
				var out bytes.Buffer
				r := &wsRelay{dst: &out}
				feed := func(b []byte) error { return writeChunks(r, b, chunk) }
				if err := feed(stream[:at]); err != nil {
					t.Fatal(err)
				}
				r.requestEnd()
				if err := feed(stream[at:]); err != nil {
					t.Fatal(err)
				}
				boundary := endAt(ends, at) // the end of the frame in progress when the close was asked for
				want := append(append([]byte{}, stream[:boundary]...), wsCloseGoingAway...)
				if !bytes.Equal(out.Bytes(), want) {
					t.Fatalf("client got %d bytes, want %d: the frames up to offset %d, then the Close frame", out.Len(), len(want), boundary)
				}
				if got := r.relayed(); got != int64(boundary) {
					t.Errorf("relayed %d, want %d", got, boundary)
				}
				if err := feed(upClose); !errors.Is(err, errCloseHandshakeDone) {
					t.Fatalf("the upstream's Close frame: %v, want the relay to end", err)
				}
				if out.Len() != len(want) {
					t.Errorf("bytes written after the Close frame")
				}
			})
		}
	}
}

// TestWSRelayNoSecondClose: when the upstream's own Close frame reached the client before
// the drain, the client gets no second Close frame from the gateway (RFC 6455 5.5.1).
func TestWSRelayNoSecondClose(t *testing.T) {
	upClose := wsFrame(0x8, []byte{0x03, 0xe8}, false)
	for _, tc := range []struct {
		name   string
		before []byte // relayed before the drain
		want   []byte // what the client gets in all
	}{
		{"upstream closed first", append(wsFrame(0x1, []byte("hi"), false), upClose...), append(wsFrame(0x1, []byte("hi"), false), upClose...)},
		{"upstream did not close", wsFrame(0x1, []byte("hi"), false), append(wsFrame(0x1, []byte("hi"), false), wsCloseGoingAway...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &wsRelay{dst: &out}
			if err := writeChunks(r, tc.before, 1); err != nil {
				t.Fatal(err)
			}
			r.requestEnd()
			if !bytes.Equal(out.Bytes(), tc.want) {
				t.Fatalf("client got % x, want % x", out.Bytes(), tc.want)
			}
		})
	}
}

// drainGateway serves a route through a Handler whose requests carry streams, as the
// gateway's public server does.
func drainGateway(t *testing.T, streams *Streams, rt *Route) string {
	t.Helper()
	tr, err := NewTransport(config.Transport{DialTimeout: time.Second, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Transport: tr})
	h.SetTable(NewTable([]*Route{rt}, NewTrust(nil)))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.BaseContext = func(net.Listener) context.Context { return WithStreams(context.Background(), streams) }
	srv.Start()
	t.Cleanup(func() {
		streams.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := streams.Wait(ctx); err != nil {
			t.Errorf("streams still open after Close: %v", err)
		}
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv.Listener.Addr().String()
}

// upgradedBackend accepts one protocol switch per connection and hands the test its side
// of the tunnel.
func upgradedBackend(t *testing.T, protocol string) (addr string, conns <-chan net.Conn) {
	t.Helper()
	ch := make(chan net.Conn, 4)
	addr = backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", protocol)
		brw.Flush()
		ch <- c // the test closes it
	})
	return addr, ch
}

// openTunnel sends an upgrade request through the gateway and returns the client's
// connection, after the 101, with its reader.
func openTunnel(t *testing.T, gw, protocol string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", gw, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", protocol)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	return c, br
}

func receive(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the backend got no upgrade")
		return nil
	}
}

func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// TestTunnelsDrainWebSocket: on Drain the client of a WebSocket gets the frame in progress
// whole, then a Close frame 1001; its answering Close reaches the upstream, whose own answer
// ends the tunnel.
func TestTunnelsDrainWebSocket(t *testing.T) {
	be, conns := upgradedBackend(t, "websocket")
	streams := NewStreams()
	gw := drainGateway(t, streams, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	client, cr := openTunnel(t, gw, "websocket")
	up := receive(t, conns)

	msg := wsFrame(0x1, bytes.Repeat([]byte("x"), 300), false)
	up.Write(msg[:100]) // a frame in progress
	if got := readN(t, cr, 100); !bytes.Equal(got, msg[:100]) {
		t.Fatal("first part of the frame garbled")
	}
	if n := streams.Tunnels(); n != 1 {
		t.Fatalf("Tunnels() = %d, want 1", n)
	}
	streams.Drain()
	up.Write(msg[100:])
	up.Write(wsFrame(0x1, []byte("after the close: dropped"), false))
	if got := readN(t, cr, len(msg)-100); !bytes.Equal(got, msg[100:]) {
		t.Fatal("the frame in progress was not completed")
	}
	if got := readN(t, cr, len(wsCloseGoingAway)); !bytes.Equal(got, wsCloseGoingAway) {
		t.Fatalf("client got % x, want the Close frame % x", got, wsCloseGoingAway)
	}
	reply := wsFrame(0x8, []byte{0x03, 0xe9}, true)
	client.Write(reply)
	if got := readN(t, up, len(reply)); !bytes.Equal(got, reply) {
		t.Fatal("the client's Close did not reach the upstream")
	}
	up.Write(wsFrame(0x8, []byte{0x03, 0xe9}, false))
	if n, err := cr.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read %d bytes, %v after the handshake; want EOF", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := streams.Wait(ctx); err != nil {
		t.Fatalf("the tunnel did not end after the closing handshake: %v", err)
	}
}

// TestTunnelsDrainLeavesOpaqueTunnels: a protocol the gateway cannot frame keeps going on
// Drain, and Close cuts it on both sides; a tunnel asked for after Close is refused.
func TestTunnelsDrainLeavesOpaqueTunnels(t *testing.T) {
	be, conns := upgradedBackend(t, "foo")
	streams := NewStreams()
	gw := drainGateway(t, streams, routeSpec{prefix: "/", backends: []string{be}, upgrades: []string{"foo"}}.build(t))
	client, cr := openTunnel(t, gw, "foo")
	up := receive(t, conns)

	streams.Drain()
	client.Write([]byte("ping"))
	if got := readN(t, up, 4); string(got) != "ping" {
		t.Fatalf("upstream got %q", got)
	}
	up.Write([]byte("pong"))
	if got := readN(t, cr, 4); string(got) != "pong" {
		t.Fatalf("client got %q", got)
	}

	streams.Close()
	if n, err := cr.Read(make([]byte, 1)); err == nil {
		t.Fatalf("client read %d bytes after Close, want the connection closed", n)
	}
	if n, err := up.Read(make([]byte, 1)); err == nil {
		t.Fatalf("upstream read %d bytes after Close, want the connection closed", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := streams.Wait(ctx); err != nil || streams.Tunnels() != 0 {
		t.Fatalf("Wait after Close: %v, %d open", err, streams.Tunnels())
	}

	c, err := net.DialTimeout("tcp", gw, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Close: %v %v, want 503", res, err)
	}
	res.Body.Close()
	receive(t, conns) // the upstream agreed before the gateway refused; closed by the cleanup
}

// closeRecorder is an upstream body's Close, recorded.
type closeRecorder struct{ closed bool }

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestSSERelayEndsAtEventBoundary: whatever the chunking of the upstream's stream, its line
// ends and where the end is asked for, the client gets whole events and nothing after the
// one in progress; when none is in progress the wait for the next one is ended at once.
func TestSSERelayEndsAtEventBoundary(t *testing.T) {
	events := []string{
		"data: a\n\n",
		"id: 2\r\ndata: b\r\n\r\n",
		": a comment\n\n",
		"data: c\rdata: d\r\r",
		"event: x\ndata: " + strings.Repeat("e", 300) + "\n\n",
		"data: f\r\n\n",
	}
	var stream []byte
	ends := []int{0} // offsets where an event ends (and the start)
	for _, e := range events {
		stream = append(stream, e...)
		ends = append(ends, len(stream))
	}
	for _, chunk := range []int{1, 2, 5, 64, len(stream)} {
		for at := 0; at <= len(stream); at += 7 {
			t.Run(fmt.Sprintf("chunk %d end at %d", chunk, at), func(t *testing.T) {
				var out bytes.Buffer
				up := &closeRecorder{}
				r := &sseRelay{dst: &out, upstream: up, atEventEnd: true}
				feed := func(b []byte) error { return writeChunks(r, b, chunk) }
				if err := feed(stream[:at]); err != nil {
					t.Fatal(err)
				}
				boundary := endAt(ends, at) // the end of the event in progress when the end was asked for
				r.endAtBoundary()
				r.requestEnd()
				if idle := boundary == at; idle != up.closed || idle != r.ended() {
					t.Fatalf("no event in progress %v, upstream closed %v, ended %v: want all alike", idle, up.closed, r.ended())
				}
				if err := feed(stream[at:]); err != nil && !errors.Is(err, errStreamEnded) {
					t.Fatal(err)
				} else if err == nil && at < len(stream) {
					t.Fatal("the relay took the rest of the stream")
				}
				got, want := out.Bytes(), stream[:boundary]
				if !bytes.Equal(got, want) && !(bytes.HasSuffix(want, []byte("\r\n")) && bytes.Equal(got, want[:len(want)-1])) {
					t.Fatalf("client got %q, want the stream up to the end of the event in progress, %q", got, want)
				}
				if !r.ended() {
					t.Error("not ended")
				}
			})
		}
	}
}

// TestStreamsDrainEventStream: on Drain an event stream through the gateway ends as a
// complete response right after the event in progress, or at once between events, and the
// upstream's request is ended.
func TestStreamsDrainEventStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		partial string // sent after the first event, before Drain
		want    string // the whole body the client gets
	}{
		{"between events", "", "data: 1\n\n"},
		{"inside an event", "id: 2\ndata: 2", "data: 1\n\nid: 2\ndata: 2\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drained, upstreamDone := make(chan struct{}), make(chan struct{})
			be := backend(t, func(w http.ResponseWriter, r *http.Request) {
				defer close(upstreamDone)
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: 1\n\n"+tc.partial)
				w.(http.Flusher).Flush()
				select {
				case <-drained:
				case <-r.Context().Done():
					return
				}
				if tc.partial != "" {
					io.WriteString(w, "\n\n")
				}
				for i := 3; ; i++ {
					fmt.Fprintf(w, "data: %d\n\n", i)
					w.(http.Flusher).Flush()
					select {
					case <-time.After(10 * time.Millisecond):
					case <-r.Context().Done():
						return
					}
				}
			})
			streams := NewStreams()
			gw := drainGateway(t, streams, routeSpec{prefix: "/", backends: []string{be}}.build(t))
			c := http.Client{Timeout: 10 * time.Second}
			res, err := c.Get("http://" + gw + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			first := make([]byte, len("data: 1\n\n")+len(tc.partial))
			if _, err := io.ReadFull(res.Body, first); err != nil {
				t.Fatal(err)
			}
			streams.Drain()
			close(drained)
			rest, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("the stream did not end cleanly: %v (after %q)", err, rest)
			}
			if got := string(first) + string(rest); got != tc.want {
				t.Errorf("client got %q, want %q", got, tc.want)
			}
			select {
			case <-upstreamDone:
			case <-time.After(10 * time.Second):
				t.Error("the upstream's request did not end")
			}
		})
	}
}

// TestStreamsDrainLeavesSizedEventStream: an event stream with a Content-Length is not ended
// early by Drain (it would arrive short, a cut): it runs to its end.
func TestStreamsDrainLeavesSizedEventStream(t *testing.T) {
	const body = "data: 1\n\ndata: 2\n\n"
	drained := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body[:9])
		w.(http.Flusher).Flush()
		select {
		case <-drained:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, body[9:])
	})
	streams := NewStreams()
	gw := drainGateway(t, streams, routeSpec{prefix: "/", backends: []string{be}}.build(t))
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get("http://" + gw + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	first := make([]byte, 9)
	if _, err := io.ReadFull(res.Body, first); err != nil {
		t.Fatal(err)
	}
	streams.Drain()
	close(drained)
	rest, err := io.ReadAll(res.Body)
	if got := string(first) + string(rest); err != nil || got != body {
		t.Fatalf("client got %q (%v), want the whole %q", got, err, body)
	}
}

// TestCloseKeepAlives: once asked, HTTP/1 responses (proxied or the gateway's own) carry
// Connection: close, so keep-alive clients leave after a complete response.
func TestCloseKeepAlives(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	streams := NewStreams()
	gw := drainGateway(t, streams, routeSpec{prefix: "/api", backends: []string{be}}.build(t))
	c := http.Client{Timeout: 10 * time.Second}
	get := func(path string) *http.Response {
		t.Helper()
		res, err := c.Get("http://" + gw + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	if res := get("/api/x"); res.Close {
		t.Fatal("Connection: close before draining")
	}
	streams.CloseKeepAlives()
	for _, path := range []string{"/api/x", "/nowhere"} {
		if res := get(path); !res.Close {
			t.Errorf("%s while draining: no Connection: close (status %d)", path, res.StatusCode)
		}
	}
}
