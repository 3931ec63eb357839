package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// This file ends the long-lived exchanges of a stopping server, which http.Server.Shutdown
// would otherwise wait for (event streams) or not see at all (hijacked, upgraded
// connections): Streams tracks them, and the relays end each at a boundary where the client
// can tell a clean end from a cut (an SSE event, a WebSocket frame).

// Streams ends the long-lived exchanges of a stopping server, which it would otherwise wait
// on until its grace ends, or not see at all: upgraded connections (WebSocket, or another
// protocol a route allows) are hijacked, so http.Server's Shutdown neither waits for them nor
// closes them, and a stopping gateway would exit under them, cutting them wherever they were;
// event streams (SSE) never end by themselves. A server puts its Streams into its requests'
// context with WithStreams; without one, nothing is tracked. Make one with NewStreams.
type Streams struct {
	draining, cutting context.Context
	drain, cut        context.CancelFunc
	// closeKeepAlives: HTTP/1 responses carry Connection: close (see CloseKeepAlives).
	closeKeepAlives atomic.Bool

	mu      sync.Mutex
	tunnels int
	empty   chan struct{}      // made by Wait, closed when tunnels drops to 0
	relays  map[relay]struct{} // WebSocket and event stream relays, for Drain
}

// relay is a WebSocket or event stream relay that can end its stream at a message boundary.
type relay interface {
	// endAtBoundary marks the stream to end at the next boundary; requestEnd then ends it
	// at once if it is at one. Only the latter may block (on a write to a slow client).
	endAtBoundary()
	requestEnd()
}

// NewStreams returns a Streams with nothing open.
func NewStreams() *Streams {
	s := &Streams{relays: make(map[relay]struct{})}
	s.draining, s.drain = context.WithCancel(context.Background())
	s.cutting, s.cut = context.WithCancel(context.Background())
	return s
}

type streamsKey struct{}

// WithStreams returns ctx carrying s: the streams of requests served under it (an
// http.Server's BaseContext) are s's.
func WithStreams(ctx context.Context, s *Streams) context.Context {
	return context.WithValue(ctx, streamsKey{}, s)
}

func streamsFrom(ctx context.Context) *Streams {
	s, _ := ctx.Value(streamsKey{}).(*Streams)
	return s
}

// CloseKeepAlives has every HTTP/1 response from now on carry Connection: close, so clients
// move their keep-alive connections elsewhere one by one, each after a complete response,
// while the listener still serves. Behind a TCP load balancer (kube-proxy, HAProxy in tcp
// mode) a kept-alive connection stays with this process whatever readiness says; closing it
// only when idle at shutdown races with the client's next request (Envoy's drain does the
// same for HTTP/1).
func (s *Streams) CloseKeepAlives() { s.closeKeepAlives.Store(true) }

// Tunnels is the number of upgraded connections open now.
func (s *Streams) Tunnels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tunnels
}

// Drain asks every stream open now or opened later to end where it can end cleanly, and
// returns at once; once it has, no WebSocket frame and no event that begins after it
// reaches a client.
//
// A WebSocket client gets a Close frame (1001, going away) as soon as the upstream's frame in
// progress is complete; anything the upstream sends after that is dropped, the client's
// answering Close frame goes to the upstream, and the tunnel ends when the upstream answers
// it too (or closes). An event stream ends, as a complete response, after the event in
// progress: EventSource clients reconnect (elsewhere, when a load balancer took this server
// out), asking with Last-Event-ID for what comes next. Other upgraded protocols are opaque to
// the gateway, which cannot tell where a message ends: they go on until Close.
func (s *Streams) Drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drain()
	for r := range s.relays {
		r.endAtBoundary()
	}
}

// Close cuts every tunnel now: both of its connections are closed, whatever is in flight.
// A tunnel opening later is refused (503). It returns at once; Wait waits for the relays to
// stop. (Event streams are the server's connections: its Close cuts them.)
func (s *Streams) Close() {
	s.mu.Lock()
	s.cut() // under mu, so enterTunnel cannot count a tunnel after it
	s.mu.Unlock()
}

// Wait returns when no tunnel is open, or with ctx's error when ctx ends first.
func (s *Streams) Wait(ctx context.Context) error {
	s.mu.Lock()
	if s.tunnels == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.empty == nil {
		s.empty = make(chan struct{})
	}
	empty := s.empty
	s.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enterTunnel counts a tunnel about to open; it reports false once Close was called. A nil
// Streams tracks nothing.
func (s *Streams) enterTunnel() bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cutting.Err() != nil {
		return false
	}
	s.tunnels++
	return true
}

// leaveTunnel counts a tunnel that enterTunnel counted as ended.
func (s *Streams) leaveTunnel() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tunnels--; s.tunnels == 0 && s.empty != nil {
		close(s.empty)
		s.empty = nil
	}
}

// watchTunnel arranges for Close to close client and backend, and for Drain to end ws (when
// it is a WebSocket). The returned func closes both connections and returns once no hook
// runs any more.
func (s *Streams) watchTunnel(client, backend io.Closer, ws *wsRelay) (unwatch func()) {
	closeBoth := func() {
		_ = client.Close()
		_ = backend.Close()
	}
	if s == nil {
		return closeBoth
	}
	stopCut := afterFunc(s.cutting, closeBoth)
	var stopDrain func()
	if ws != nil {
		stopDrain = s.watch(ws)
	}
	return func() {
		closeBoth() // so that a Close frame being written to a client that reads nothing fails
		if stopDrain != nil {
			stopDrain()
		}
		stopCut()
	}
}

// watch has Drain end r; the returned func undoes it, once no hook runs any more. A nil
// Streams does nothing.
func (s *Streams) watch(r relay) (unwatch func()) {
	if s == nil {
		return func() {}
	}
	s.mu.Lock()
	s.relays[r] = struct{}{}
	if s.draining.Err() != nil {
		r.endAtBoundary()
	}
	s.mu.Unlock()
	// requestEnd may wait on a write to a slow client: not in Drain.
	stop := afterFunc(s.draining, r.requestEnd)
	return func() {
		stop()
		s.mu.Lock()
		delete(s.relays, r)
		s.mu.Unlock()
	}
}

// afterFunc is context.AfterFunc whose stop also waits for f to return if it had started,
// so that f never outlives its caller.
func afterFunc(ctx context.Context, f func()) (stop func()) {
	done := make(chan struct{})
	stopf := context.AfterFunc(ctx, func() {
		defer close(done)
		f()
	})
	return func() {
		if !stopf() {
			<-done
		}
	}
}

// errCloseHandshakeDone ends the relay of a WebSocket whose closing handshake, begun by
// the gateway, the upstream has completed.
var errCloseHandshakeDone = errors.New("websocket closing handshake completed")

// wsCloseGoingAway is a Close frame from a server (unmasked) with status 1001, "an endpoint
// is going away, such as a server going down" (RFC 6455 7.4.1).
var wsCloseGoingAway = append([]byte{0x88, 2 + byte(len(wsGoingAwayReason)), 0x03, 0xe9}, wsGoingAwayReason...)

const wsGoingAwayReason = "gateway shutting down"

// wsRelay writes a WebSocket server's byte stream to the client (it is the io.Copy
// destination) and follows its framing (RFC 6455 5.2), so that a stopping gateway can put a
// Close frame between two frames: control frames may come between the fragments of a
// message, never inside a frame.
type wsRelay struct {
	// closing says a Close frame is to be sent at the next frame boundary. It is set apart
	// from mu, which a write to a slow client can hold for long.
	closing atomic.Bool

	mu     sync.Mutex
	dst    io.Writer
	hdr    [14]byte // the next frame's header, as far as it has come
	nhdr   int
	left   uint64 // payload bytes of the current frame still to come
	opcode byte   // of the current frame
	sent   bool   // the Close frame was sent: the upstream's further frames are dropped
	// upstreamClosed: a whole Close frame of the upstream's went to the client, which must
	// not get a second one (RFC 6455 5.5.1); the closing handshake is then theirs.
	upstreamClosed bool
	written        int64 // bytes written to the client, the Close frame left out
}

// Write relays p, or the part of it up to the frame boundary where the Close frame goes.
func (r *wsRelay) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := len(p)
	if !r.sent {
		closing := r.closing.Load()
		k := len(p)
		if closing && !r.atBoundary() {
			k = r.advance(p, true)
		} else if !closing {
			r.advance(p, false)
		} else {
			k = 0 // closing at a boundary: requestEnd has not run yet
		}
		n, err := r.dst.Write(p[:k])
		r.written += int64(n)
		if err != nil {
			return n, err
		}
		if !closing || !r.atBoundary() {
			return total, nil
		}
		r.sendClose()
		p = p[k:]
	}
	// The Close frame is out; what the upstream sends after it is dropped. Only its answer to
	// the client's Close is awaited: once that frame is complete both sides have closed, and
	// the tunnel ends (RFC 6455 7.1.1 has the server close the TCP connection then; the
	// gateway does it for the upstream).
	for n := 0; n < len(p); {
		n += r.advance(p[n:], true)
		if r.atBoundary() && r.opcode == 0x8 {
			return total, errCloseHandshakeDone
		}
	}
	return total, nil
}

func (r *wsRelay) endAtBoundary() { r.closing.Store(true) }

// requestEnd has the Close frame sent now if no frame is in progress, else when the one in
// progress is complete.
func (r *wsRelay) requestEnd() {
	r.closing.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.sent && r.atBoundary() {
		r.sendClose()
	}
}

func (r *wsRelay) sendClose() {
	r.sent = true
	r.opcode = 0 // from now on opcode is that of the upstream's frames after the boundary
	if r.upstreamClosed {
		return // the client has the upstream's Close already
	}
	_, _ = r.dst.Write(wsCloseGoingAway)
}

func (r *wsRelay) relayed() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written
}

func (r *wsRelay) atBoundary() bool { return r.left == 0 && r.nhdr == 0 }

// advance follows the framing through p and returns how many bytes it consumed: all of p,
// or with stop only up to the end of the first frame that ends in p.
func (r *wsRelay) advance(p []byte, stop bool) int {
	n := 0
	for n < len(p) {
		if r.left > 0 {
			k := min(uint64(len(p)-n), r.left)
			n += int(k)
			r.left -= k
		} else {
			r.hdr[r.nhdr] = p[n]
			r.nhdr++
			n++
			if need := wsHeaderLen(r.hdr[:r.nhdr]); r.nhdr == need {
				r.opcode = r.hdr[0] & 0x0f
				r.left = wsPayloadLen(r.hdr[:need])
				r.nhdr = 0
			}
		}
		if r.atBoundary() && r.opcode == 0x8 && !r.sent {
			r.upstreamClosed = true
		}
		if stop && r.atBoundary() {
			return n
		}
	}
	return n
}

// wsHeaderLen is the length of the frame header that begins with h: 2 bytes, the extended
// payload length (2 or 8) and the masking key (4) when the second byte announces them.
func wsHeaderLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// wsPayloadLen is the payload length a complete frame header announces.
func wsPayloadLen(h []byte) uint64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return binary.BigEndian.Uint64(h[2:10])
	default:
		return uint64(l)
	}
}

// errStreamEnded stops the copy of an event stream that Drain ended at an event boundary.
var errStreamEnded = errors.New("event stream ended at an event boundary by a stopping server")

// sseRelay writes an event stream (text/event-stream) to the client (it is the copy's
// destination) and follows where its events end, so that a stopping server can end the
// response between two events: each ends with an empty line, and lines end with CRLF, LF or
// CR (the HTML standard's "Parsing an event stream").
type sseRelay struct {
	// closing says the stream is to end at the next event boundary. It is set apart from
	// mu, which a write to a slow client can hold for long.
	closing atomic.Bool

	mu         sync.Mutex
	dst        io.Writer
	upstream   io.Closer // closed to end a Read waiting for an event that will not be relayed
	atEventEnd bool      // what was written ends with an event (or nothing was written)
	atLineEnd  bool      // what was written ends with a line end
	cr         bool      // the last byte written was CR: an LF after it belongs to the same line end
	done       bool      // ended: nothing more is written
}

func (r *sseRelay) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return 0, errStreamEnded
	}
	closing := r.closing.Load()
	k := len(p)
	switch {
	case !closing:
		r.scan(p, false)
	case r.atEventEnd:
		k = 0 // requestEnd has not run yet
	default:
		k = r.scan(p, true)
	}
	n, err := r.dst.Write(p[:k])
	if err != nil || !closing || !r.atEventEnd {
		return n, err
	}
	r.done = true
	return n, errStreamEnded
}

// scan follows the line ends through p and returns how many bytes it consumed: all of p,
// or with stop only up to the end of the first event that ends in p (with the LF of a final
// CRLF if p holds it).
func (r *sseRelay) scan(p []byte, stop bool) int {
	for i, c := range p {
		switch {
		case c == '\n' && r.cr:
			r.cr = false // the second half of CRLF
		case c == '\n' || c == '\r':
			r.atEventEnd = r.atLineEnd // an empty line
			r.atLineEnd, r.cr = true, c == '\r'
		default:
			r.atEventEnd, r.atLineEnd, r.cr = false, false, false
		}
		if stop && r.atEventEnd {
			if c == '\r' && i+1 < len(p) && p[i+1] == '\n' {
				i++
			}
			return i + 1
		}
	}
	return len(p)
}

func (r *sseRelay) endAtBoundary() { r.closing.Store(true) }

// requestEnd ends the stream now if no event is in progress (the copy, waiting for the
// upstream's next one, sees its Read fail and ended true), else after the event in progress.
func (r *sseRelay) requestEnd() {
	r.closing.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done && r.atEventEnd {
		r.done = true
		_ = r.upstream.Close()
	}
}

func (r *sseRelay) ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}
