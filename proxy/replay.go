package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// replayBody records a request body as it is sent, up to a limit, so a failed attempt can be
// retried with the same bytes without buffering the body before the first attempt (most
// requests never retry). Each attempt reads through its own reader; after a rewind a
// lingering reader of an earlier attempt (a transport still winding down) gets an error
// instead of stealing bytes.
type replayBody struct {
	mu       sync.Mutex
	src      io.Reader
	max      int64
	buf      []byte
	overflow bool // more than max was read: no replay possible
	srcDone  error
	epoch    int
	// current mirrors epoch for Close, which must not wait on mu: a Read holds mu while it
	// waits on the client.
	current atomic.Int64
}

var errStaleAttempt = errors.New("request body read by a finished attempt")

func newReplayBody(src io.Reader, max int64) *replayBody {
	return &replayBody{src: src, max: max}
}

// reader returns the body for the next attempt, starting at its first byte.
func (b *replayBody) reader() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &replayReader{b: b, epoch: b.epoch}
}

// rewind prepares a replay; false when the body outgrew the limit.
func (b *replayBody) rewind() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow || errors.Is(b.srcDone, errBodyClosed) {
		return false // over the limit, or the rest of the client's body can no longer be read
	}
	b.epoch++
	b.current.Store(int64(b.epoch))
	return true
}

type replayReader struct {
	b     *replayBody
	epoch int
	off   int
}

func (r *replayReader) Read(p []byte) (int, error) {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.epoch != b.epoch {
		return 0, errStaleAttempt
	}
	if r.off < len(b.buf) {
		n := copy(p, b.buf[r.off:])
		r.off += n
		return n, nil
	}
	if b.srcDone != nil {
		return 0, b.srcDone
	}
	n, err := b.src.Read(p)
	if n > 0 {
		if !b.overflow && int64(len(b.buf)+n) <= b.max {
			b.buf = append(b.buf, p[:n]...)
			r.off += n
		} else {
			b.overflow = true
			b.buf = nil
		}
	}
	if err != nil {
		b.srcDone = err
	}
	return n, err
}

// Close ends a Read waiting on the client's body (see clientBody.interruptRead) when r is
// the current attempt's reader; a stale reader's Close does nothing.
func (r *replayReader) Close() error {
	b := r.b
	if c, ok := b.src.(*clientBody); ok && int64(r.epoch) == b.current.Load() {
		c.interruptRead(c.attempt.Load()) // the current epoch's reader is the current attempt's
	}
	return nil
}
