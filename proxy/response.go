package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

var (
	errBadStatus       = errors.New("upstream status outside 100-599")
	errUnsolicited101  = errors.New("upstream switched protocols without an allowed upgrade request")
	errTooManyConnOpts = errors.New("upstream Connection header names too many options")
)

// checkResponse refuses an upstream answer the gateway cannot relay faithfully: a status
// outside 100-599 (net/http's server panics on some, and no client can act on them), a 101
// the client did not ask for (it would open a raw tunnel past every filter), or a 101 to a
// different protocol than the one requested and allowed.
func (x *exchange) checkResponse(res *http.Response) error {
	if res.StatusCode < 100 || res.StatusCode > 599 {
		return errBadStatus
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		if x.upgrade == "" || !strings.EqualFold(upgradeToken(res.Header), x.upgrade) {
			return errUnsolicited101
		}
	}
	return nil
}

// writeResponse sends res to the client: end-to-end headers, status, body (flushed as it
// arrives for streams), trailers; or hands over to tunnelling for a 101. It returns the
// status sent (499 when the client left), the body bytes written, and the upstream's failure
// kind if the upstream broke mid-body (ErrCanceled when the client did).
func (x *exchange) writeResponse(res *http.Response) (int, int64, upstream.ErrorKind) {
	w, r := x.w, x.r
	if res.StatusCode == http.StatusSwitchingProtocols {
		return x.tunnel(res)
	}
	defer res.Body.Close()
	wh := w.Header()
	if !copyResponseHeaders(wh, res.Header) {
		x.fail(w, http.StatusBadGateway)
		return http.StatusBadGateway, 0, upstream.ErrProtocol
	}
	if _, ok := res.Header["Content-Type"]; !ok {
		// A nil value stops net/http from sniffing one: the client gets exactly the
		// upstream's headers, never a type guessed from the body.
		wh["Content-Type"] = nil
	}
	var trailers []string
	if len(res.Trailer) > 0 {
		// Announce the trailers the upstream announced; values are filled in after the body.
		for k := range res.Trailer {
			if !forbiddenTrailer(k) {
				trailers = append(trailers, k)
			}
		}
		if len(trailers) > 0 {
			wh["Trailer"] = []string{strings.Join(trailers, ", ")}
		}
	}
	w.WriteHeader(res.StatusCode)

	pw := &x.out
	pw.x = x
	if x.h.pacing.enabled() {
		pw.pace.p = x.h.pacing
		if x.h.pacing.WriteTimeout > 0 {
			pw.pace.limit = x.start.Add(x.h.pacing.WriteTimeout)
		}
	}
	if (res.ContentLength == -1 || isEventStream(res.Header)) && !(x.grpc && trailersOnly(res)) {
		// (A gRPC Trailers-Only answer is not flushed: its header block must go out as the
		// end of the stream, which net/http does when the handler returns without a body.)
		// Unknown length (chunked, SSE, long polls): every chunk goes out as it arrives,
		// as with httputil's FlushInterval -1 for such responses.
		if pw.flusher, _ = w.(http.Flusher); pw.flusher != nil {
			pw.flusher.Flush()
		}
	}
	var dst io.Writer = pw
	var events *sseRelay
	if isEventStream(res.Header) && res.ContentLength < 0 {
		// Only an open-ended stream can end early as a complete response: one with a
		// Content-Length would arrive short, which is a cut.
		if streams := streamsFrom(r.Context()); streams != nil {
			events = &sseRelay{dst: pw, upstream: res.Body, atEventEnd: true}
			defer streams.watch(events)()
			dst = events
		}
	}
	var frames *grpcRelay
	if x.grpc {
		frames = &x.frames
		frames.dst = dst
		dst = frames
	}
	n, readErr, writeErr := copyBody(dst, res.Body)
	if events != nil && events.ended() {
		// Ended by Drain after a whole event: a complete response, not a broken one.
		readErr, writeErr = nil, nil
	}
	if writeErr == nil && readErr == nil {
		writeErr = pw.finish()
	}
	switch {
	case writeErr != nil:
		return StatusClientClosed, n, upstream.ErrCanceled
	case readErr != nil && x.cbody != nil && x.cbody.clientErr() != nil:
		// The client's body broke while the response was relayed: an HTTP/2 upstream client
		// aborts the stream with the client's error, and the response read returns it. The
		// client's failure, not the upstream's: nothing counts against the endpoint, and the
		// response, already begun, can only be aborted.
		x.h.log.LogAttrs(r.Context(), slog.LevelDebug, "request body broke mid-response",
			slog.String("route", x.rt.Name), slog.String("error", x.cbody.clientErr().Error()),
			slog.String("request_id", x.reqID))
		x.abort = true
		return x.cbody.status(), n, upstream.ErrCanceled
	case readErr != nil:
		// A gRPC call out of its own deadline ended as its caller asked: not the upstream's fault.
		kind := classify(readErr, r.Context().Err() != nil || x.pastDeadline(), false)
		if kind == upstream.ErrCanceled {
			return StatusClientClosed, n, kind
		}
		x.h.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream body broke",
			slog.String("error", readErr.Error()), slog.Int64("bytes", n))
		if x.endBroken(frames) {
			return res.StatusCode, n, kind
		}
		// Headers are gone: the only honest signal left is to abort the response (see
		// serveRoute), after the attempt has been reported.
		x.abort = true
		return res.StatusCode, n, kind
	}
	// net/http reads the trailers into res.Trailer at the body's end. Those the upstream did
	// not announce are relayed for gRPC only, whose servers send grpc-status and
	// grpc-message that way; elsewhere they would be a way round the route's response edits.
	for k, vv := range res.Trailer {
		if !forbiddenTrailer(k) && (x.grpc || slices.Contains(trailers, k)) {
			wh[trailerKey(k)] = vv
		}
	}
	return res.StatusCode, n, upstream.ErrNone
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && strings.EqualFold(ct[:17], "text/event-stream")
}

// copyBody copies src to w through a pooled buffer; read and write errors are told apart
// because only the former are the upstream's.
func copyBody(w io.Writer, src io.Reader) (n int64, readErr, writeErr error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		nr, err := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, nil, werr
			}
			if nw != nr {
				return n, nil, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// drainAndClose discards a little of a body we will not use, so a small response's
// connection can be reused, then closes it.
func drainAndClose(res *http.Response) {
	_, _ = io.CopyN(io.Discard, res.Body, 4<<10)
	_ = res.Body.Close()
}

// maxInterimResponses bounds the informational responses relayed for one request, as
// proxy/h1 bounds them per exchange: an upstream cannot flood a client with 1xx.
const maxInterimResponses = 8

var errTooManyInterim = errors.New("upstream sent more than 8 informational (1xx) responses")

// relay1xx forwards an upstream's informational response (103 Early Hints) to the client,
// without the fields that describe the upstream's connection. It sends nothing to an
// HTTP/1.0 client (which cannot parse a 1xx, RFC 9110 15.2), nothing for 100 Continue
// (net/http sends its own when the handler first reads a body the client announced with
// Expect, so a relayed one would be a duplicate or unsolicited), and nothing for 101,
// which tunnel completes. More than maxInterimResponses in one exchange end the attempt
// with errTooManyInterim, a protocol error (502): the HTTP/2 clients leave the bound to this
// hook, and proxy/h1 applies the same one itself.
func (x *exchange) relay1xx(code int, header textproto.MIMEHeader) error {
	x.relayMu.Lock()
	defer x.relayMu.Unlock()
	if x.interim++; x.interim > maxInterimResponses {
		return errTooManyInterim
	}
	if code == http.StatusSwitchingProtocols || code == http.StatusContinue ||
		(x.r.ProtoMajor == 1 && x.r.ProtoMinor == 0) {
		return nil
	}
	if x.relayDone {
		return nil
	}
	src := http.Header(header)
	var co connectionOptions
	if c := src["Connection"]; len(c) > 0 && !parseConnection(c, &co) {
		return nil // an answer with that many options is not relayed
	}
	h := x.w.Header()
	saved := h.Clone()
	for k, vv := range src {
		if !filterResponseHeader(k, &co) {
			h[k] = vv
		}
	}
	x.w.WriteHeader(code)
	// net/http does not clear headers after a 1xx: put back exactly what the final
	// response should carry.
	clear(h)
	for k, vv := range saved {
		h[k] = vv
	}
	return nil
}

// tunnel completes a protocol switch (WebSocket): it writes the 101 to the hijacked client
// connection and copies bytes both ways until either side closes, or the server's Streams
// (see WithStreams) end it.
func (x *exchange) tunnel(res *http.Response) (int, int64, upstream.ErrorKind) {
	w := x.w
	backConn, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		_ = res.Body.Close()
		x.fail(w, http.StatusBadGateway)
		return http.StatusBadGateway, 0, upstream.ErrProtocol
	}
	defer backConn.Close()
	header, ok := upgradeResponseHeaders(w.Header(), res.Header, x.upgrade)
	if !ok {
		writeError(w, http.StatusBadGateway, x.reqID)
		return http.StatusBadGateway, 0, upstream.ErrProtocol
	}
	streams := streamsFrom(x.r.Context())
	if !streams.enterTunnel() {
		// The server is cutting its tunnels: this one would be cut as soon as it opened.
		writeError(w, http.StatusServiceUnavailable, x.reqID)
		return http.StatusServiceUnavailable, 0, upstream.ErrNone
	}
	defer streams.leaveTunnel()
	conn, brw, err := x.rc().Hijack()
	if err != nil {
		writeError(w, http.StatusInternalServerError, x.reqID)
		return http.StatusInternalServerError, 0, upstream.ErrNone
	}
	defer conn.Close()
	// The hijacked connection keeps whatever deadlines were armed: a tunnel has none.
	_ = conn.SetDeadline(time.Time{})
	res.Header = header
	res.Body = nil
	if err := res.Write(brw); err != nil {
		return StatusClientClosed, 0, upstream.ErrCanceled
	}
	if err := brw.Flush(); err != nil {
		return StatusClientClosed, 0, upstream.ErrCanceled
	}
	toClient := io.Writer(conn)
	var ws *wsRelay
	if strings.EqualFold(x.upgrade, "websocket") {
		ws = &wsRelay{dst: conn}
		toClient = ws
	}
	// Watched only from here: a Close frame must not go out before the 101.
	unwatch := streams.watchTunnel(conn, backConn, ws)
	defer unwatch()
	var wg sync.WaitGroup
	var up int64
	done := make(chan struct{}, 2)
	wg.Add(2)
	go func() { // upstream -> client
		defer wg.Done()
		up, _ = io.Copy(toClient, backConn)
		done <- struct{}{}
	}()
	go func() { // client (including bytes already buffered) -> upstream
		defer wg.Done()
		_, _ = io.Copy(backConn, brw)
		done <- struct{}{}
	}()
	<-done
	// One side ended: close both so the other copy returns, and wait for it, so no
	// goroutine outlives the request.
	_ = conn.Close()
	_ = backConn.Close()
	wg.Wait()
	if ws != nil {
		up = ws.relayed() // without what was dropped after the Close frame
	}
	return http.StatusSwitchingProtocols, up, upstream.ErrNone
}

// upgradeResponseHeaders returns the 101 response headers: the upstream's end-to-end
// fields (no hop-by-hop ones, none its Connection names, no Alt-Svc), what the gateway set
// (X-Request-Id), and Connection/Upgrade for the one protocol that was agreed. It returns
// false when the upstream's Connection names too many options.
func upgradeResponseHeaders(gw, up http.Header, protocol string) (http.Header, bool) {
	out := make(http.Header, len(up)+len(gw)+2)
	if !copyResponseHeaders(out, up) {
		return nil, false
	}
	for k, vv := range gw {
		if _, ok := out[k]; !ok {
			out[k] = vv
		}
	}
	out["Connection"] = []string{"Upgrade"}
	out["Upgrade"] = []string{protocol}
	return out, true
}

// holdable reports whether res's body is small enough to read whole before relaying: a
// known length of at most max bytes (and at most one pooled buffer), and not a stream.
func holdable(res *http.Response, max int64) bool {
	return res.ContentLength > 0 && res.ContentLength <= max && res.ContentLength <= copyBufSize &&
		res.Body != http.NoBody && res.Request != nil && res.Request.Method != http.MethodHead &&
		!isEventStream(res.Header)
}

// holdBody reads res's whole body into a pooled buffer (returned, for the caller to put
// back after the response is written) and replaces res.Body with it. The attempt's timer is
// still running, so a stalled upstream cannot hold the request past the attempt's timeout.
func (x *exchange) holdBody(res *http.Response) (*[]byte, error) {
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:res.ContentLength]
	_, err := io.ReadFull(res.Body, buf)
	_ = res.Body.Close() // at the declared end: the connection goes back to the pool
	if err != nil {
		bufPool.Put(bp)
		return nil, err
	}
	x.held = heldBody{b: buf}
	res.Body = &x.held
	return bp, nil
}

// heldBody is a response body already read whole.
type heldBody struct {
	b   []byte
	off int
}

func (h *heldBody) Read(p []byte) (int, error) {
	if h.off >= len(h.b) {
		return 0, io.EOF
	}
	n := copy(p, h.b[h.off:])
	h.off += n
	return n, nil
}

func (h *heldBody) Close() error { return nil }

// copyBufSize matches io.Copy's default buffer.
const copyBufSize = 32 << 10

// bufPool holds copy buffers of copyBufSize bytes.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
