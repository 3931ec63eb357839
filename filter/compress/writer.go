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
	stateCompressing              // header sent with Content-Encoding; body through the encoder
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
	head           bool
	accepted       encoding // the coding negotiated for an eligible response
	state          state
	status         int        // the held final status, in stateBuffering
	held           *[]byte    // the held body, in stateBuffering; from bufferPool
	enc            compressor // in stateCompressing
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
	if !w.filter.eligible(h, status) {
		w.pass(status)
		return
	}
	// The response would be compressed for a client that asked: caches must key on
	// Accept-Encoding whatever this client sent, and whatever the body's size turns out.
	addVary(h)
	if !w.head {
		w.accepted = negotiate(w.acceptEncoding)
	}
	if w.accepted == identity {
		w.pass(status)
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
	if w.filter.minBytes == 0 {
		w.compress(status)
		return
	}
	w.status = status
	w.state = stateBuffering
	w.held = bufferPool.Get().(*[]byte)
}

// pass sends the final status line; the body goes as it is.
func (w *responseWriter) pass(status int) {
	w.state = statePassing
	w.next.WriteHeader(status)
}

// compress rewrites the header for the encoded body, sends it and starts the encoder.
func (w *responseWriter) compress(status int) {
	h := w.next.Header()
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges") // ranges of the encoded body are not ranges of the resource
	h["Content-Encoding"] = contentEncoding[w.accepted]
	weakenETags(h)
	w.state = stateCompressing
	w.next.WriteHeader(status)
	w.enc = newCompressor(w.accepted, w.next)
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
		if len(*w.held)+len(p) < w.filter.minBytes {
			*w.held = append(*w.held, p...)
			return len(p), nil
		}
		if err := w.compressHeld(); err != nil {
			return 0, err
		}
		return w.enc.Write(p)
	case stateFinished:
		return 0, errFinished
	}
	return w.next.Write(p)
}

// compressHeld starts compressing a held response and encodes what was held.
func (w *responseWriter) compressHeld() error {
	w.compress(w.status)
	var err error
	if len(*w.held) > 0 {
		_, err = w.enc.Write(*w.held)
	}
	w.releaseHeld()
	return err
}

// releaseHeld returns the held-body buffer to its pool.
func (w *responseWriter) releaseHeld() {
	if cap(*w.held) <= maxPooledBuffer {
		*w.held = (*w.held)[:0]
		bufferPool.Put(w.held)
	}
	w.held = nil
}

// Flush flushes the encoder, then the client's connection (http.Flusher).
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the error (http.ResponseController prefers it). A response
// still held under min_bytes with no Content-Length is decided now: it is a stream of
// unknown length, so it is compressed, and what was held goes out with the header.
func (w *responseWriter) FlushError() error {
	switch w.state {
	case stateNew:
		w.WriteHeader(http.StatusOK)
		return w.FlushError()
	case stateBuffering:
		if err := w.compressHeld(); err != nil {
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
	if f, ok := w.next.(http.Flusher); ok {
		f.Flush() // the common case, without a ResponseController
		return nil
	}
	return http.NewResponseController(w.next).Flush()
}

// finish ends the response: it closes the encoder (its trailer goes out) or writes a held
// small body as it came, and returns the encoder and the buffer to their pools. Later
// calls do nothing.
func (w *responseWriter) finish() {
	switch w.state {
	case stateBuffering:
		w.next.WriteHeader(w.status)
		if len(*w.held) > 0 {
			_, _ = w.next.Write(*w.held)
		}
		w.releaseHeld()
	case stateCompressing:
		_ = w.enc.Close() // a client gone is the proxy's to see; nothing is left to tell
		w.enc.release()
		w.enc = nil
	}
	w.state = stateFinished
}
