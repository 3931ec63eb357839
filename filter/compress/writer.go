package compress

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
)

// state is where a response is in the compress-or-not decision.
type state uint8

const (
	stateNew         state = iota // no final status yet (1xx may have passed)
	stateBuffering                // final status held; body held until min_bytes or a Flush
	stateCompressing              // header sent with Content-Encoding; body through enc
	statePassing                  // header sent; body passes as it is
	stateFinished                 // finish ran: the encoder and buffer are back in their pools
)

// errFinished is what a write after the finish function gets.
var errFinished = errors.New("compress: write after the response was finished")

// maxPooledBuffer is the largest held-body buffer returned to the pool, so one route with
// a large min_bytes does not leave that much memory behind per idle buffer.
const maxPooledBuffer = 64 << 10

// bufferPool holds the buffers of held small bodies (*[]byte: a pointer, so Put does not
// allocate).
var bufferPool = sync.Pool{New: func() any { return new([]byte) }}

// responseWriter is the writer WrapResponse returns. It is not pooled, unlike what it
// holds: the proxy keeps references to it (an http.ResponseController, a timer that may
// still fire) that could outlive the response, and a pooled writer would then reach into
// another request's connection. After finish it stays valid and only refuses writes.
type responseWriter struct {
	next   http.ResponseWriter
	filter *Filter
	// acceptEncoding is the request's Accept-Encoding, negotiated once the response is
	// known to be eligible; head marks a HEAD request, whose answer is never encoded.
	acceptEncoding []string
	// ifNoneMatch is the request's If-None-Match, read only for a 304 (notModified).
	ifNoneMatch []string
	head        bool
	accepted    encoding // the coding negotiated for an eligible response
	// streamEncoding is the coding for the response if it turns out a stream: gzip
	// (stateless) or identity; see weights.stream.
	streamEncoding encoding
	state          state
	status         int        // the held final status, in stateBuffering
	held           *[]byte    // the held body, in stateBuffering; from bufferPool once written
	enc            compressor // in stateCompressing: pooled, or stateless gzip for a stream
}

// Header is the client response's header map: edits go straight to it.
func (w *responseWriter) Header() http.Header { return w.next.Header() }

// Unwrap lets http.ResponseController reach the connection (deadlines, full duplex,
// Hijack for upgrades).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.next }

// WriteHeader passes 1xx (except 101) straight through and decides on the final status. A
// second final status is dropped, as net/http would.
func (w *responseWriter) WriteHeader(status int) {
	if w.state != stateNew {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		w.next.WriteHeader(status)
		return
	}
	h := w.next.Header()
	if status == http.StatusNotModified {
		w.notModified(h)
		w.pass(status)
		return
	}
	if !w.filter.eligible(h, status) {
		w.pass(status)
		return
	}
	// The response would be compressed for a client that asked: caches must key on
	// Accept-Encoding whatever this client sent, and whatever the body's size turns out.
	addVary(h)
	if !w.head {
		weights := parseWeights(w.acceptEncoding)
		w.accepted, w.streamEncoding = weights.best(), weights.stream()
	}
	if w.accepted == identity {
		w.pass(status)
		return
	}
	if isEventStream(h["Content-Type"]) {
		// Listed explicitly (a wildcard does not cover it): an event stream is open-ended
		// and idle most of its life, whatever arrives before its first flush.
		w.stream(status)
		return
	}
	if length, ok := h["Content-Length"]; ok && len(length) > 0 {
		n, err := strconv.ParseInt(length[0], 10, 64)
		switch {
		case err != nil:
			// Unreadable: decide from the body as for an unknown length, below.
		case n > 0 && n >= int64(w.filter.minBytes):
			w.compress(status)
			return
		default:
			w.pass(status)
			return
		}
	}
	// Unknown length: held until min_bytes arrive (min_bytes 0: until the first byte), so
	// that a response flushed before then is known for a stream, which must not keep a
	// pooled encoder while it idles. The buffer is taken at the first Write.
	w.status = status
	w.state = stateBuffering
}

// notModified edits a 304's header as the 200 it stands for would have been (RFC 9110
// 15.4.5: a 304 carries the Vary and ETag the 200 would have, and a cache updates its stored
// response from them). The 200 is recognised by its Content-Type when the 304 carries one;
// without one (net/http and most servers drop it from a 304), by the request's
// If-None-Match holding the weakened form of the 304's strong ETag: the client's copy came
// through this filter compressed, and a 304 with the strong tag would make its cache claim
// byte equality with the identity body.
func (w *responseWriter) notModified(h http.Header) {
	if len(h["Content-Encoding"]) > 0 || hasToken(h["Cache-Control"], "no-transform") {
		return
	}
	if len(h["Content-Type"]) > 0 {
		if !w.filter.typeListed(h["Content-Type"]) {
			return
		}
		addVary(h)
		if !w.head && negotiate(w.acceptEncoding) != identity {
			weakenETags(h)
		}
		return
	}
	if !w.head && matchesWeakened(w.ifNoneMatch, h["Etag"]) && negotiate(w.acceptEncoding) != identity {
		addVary(h)
		weakenETags(h)
	}
}

// pass sends the final status line; the body goes as it is.
func (w *responseWriter) pass(status int) {
	w.state = statePassing
	w.next.WriteHeader(status)
}

// compress rewrites the header for the encoded body, sends it and starts a pooled encoder.
func (w *responseWriter) compress(status int) {
	w.sendEncoded(status, w.accepted)
	w.enc = newCompressor(w.accepted, w.next)
}

// stream starts a response known for a stream: stateless gzip when the client takes gzip,
// else (zstd only, which has no stateless encoder) the body as it is.
func (w *responseWriter) stream(status int) {
	if w.streamEncoding == identity {
		w.pass(status)
		return
	}
	w.sendEncoded(status, w.streamEncoding)
	w.enc = newStreamCompressor(w.next)
}

// sendEncoded rewrites the header for a body in coding e and sends it.
func (w *responseWriter) sendEncoded(status int, e encoding) {
	h := w.next.Header()
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges") // ranges of the encoded body are not ranges of the resource
	h["Content-Encoding"] = contentEncoding[e]
	weakenETags(h)
	w.state = stateCompressing
	w.next.WriteHeader(status)
}

// Write sends p through the encoder, as it is, or into the held small body.
func (w *responseWriter) Write(p []byte) (int, error) {
	switch w.state {
	case stateNew:
		w.WriteHeader(http.StatusOK)
		return w.Write(p)
	case stateCompressing:
		return w.enc.Write(p)
	case stateBuffering:
		if len(p) == 0 {
			return 0, nil // decides nothing: min_bytes 0 waits for a byte, not a call
		}
		if w.held == nil {
			if len(p) >= w.filter.minBytes {
				w.compress(w.status)
				return w.enc.Write(p)
			}
			w.held = bufferPool.Get().(*[]byte)
		}
		if len(*w.held)+len(p) < w.filter.minBytes {
			*w.held = append(*w.held, p...)
			return len(p), nil
		}
		w.compress(w.status)
		if err := w.writeHeld(); err != nil {
			return 0, err
		}
		return w.enc.Write(p)
	case stateFinished:
		return 0, errFinished
	}
	return w.next.Write(p)
}

// writeHeld writes the held body, once the response is decided, through the encoder or as
// it is, and releases its buffer.
func (w *responseWriter) writeHeld() error {
	if w.held == nil {
		return nil
	}
	var err error
	if len(*w.held) > 0 {
		if w.state == stateCompressing {
			_, err = w.enc.Write(*w.held)
		} else {
			_, err = w.next.Write(*w.held)
		}
	}
	w.releaseHeld()
	return err
}

// releaseHeld returns the held-body buffer to its pool.
func (w *responseWriter) releaseHeld() {
	if w.held == nil {
		return
	}
	if cap(*w.held) <= maxPooledBuffer {
		*w.held = (*w.held)[:0]
		bufferPool.Put(w.held)
	}
	w.held = nil
}

// Flush flushes the encoder, then the client's connection (http.Flusher).
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the error (http.ResponseController prefers it): the
// encoder's, else the client writer's flush error, which is how the proxy learns of a write
// timeout or a client gone. A response still held under min_bytes with no Content-Length
// is decided now: it is a stream, so it gets stateless gzip or goes as it is (see stream),
// and what was held goes out with the header.
func (w *responseWriter) FlushError() error {
	switch w.state {
	case stateNew:
		w.WriteHeader(http.StatusOK)
		return w.FlushError()
	case stateBuffering:
		w.stream(w.status)
		if err := w.writeHeld(); err != nil {
			return err
		}
	case stateFinished:
		return errFinished
	}
	if w.state == stateCompressing {
		if err := w.enc.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(w.next).Flush()
}

// finish ends the response: it closes the encoder (its trailer goes out) or writes a held
// small body as it came, and returns the encoder and the buffer to their pools. Later
// calls do nothing.
func (w *responseWriter) finish() {
	switch w.state {
	case stateBuffering:
		w.pass(w.status)
		_ = w.writeHeld() // a client gone is the proxy's to see
	case stateCompressing:
		_ = w.enc.Close() // a client gone is the proxy's to see; nothing is left to tell
		w.enc.release()
		w.enc = nil
	}
	w.state = stateFinished
}
