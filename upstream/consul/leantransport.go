package consul

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// The api client decodes every answer with encoding/json, which costs the checks feed about
// 8 ms per change at 1,000 checks, and offers no way to read a body itself. NewClient's
// transport therefore decodes the checks answers the feed marks (see withChecksSink) with
// decodeChecks, hands the checks over through the request's context and lets the client
// decode an empty list instead. Status codes, headers and errors pass through untouched, so
// the client's own error handling and query metadata stay as they are. A client not built by
// NewClient never fills the sink, and the feed uses the client's own decoding.

// checksSinkKey is the context key of a request's checksSink.
type checksSinkKey struct{}

// answerBuffers holds the buffers checks answers are read into: one answer is hundreds of KB
// at a thousand services, on every change.
var answerBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const (
	// maxChecksAnswer bounds the checks answer read into memory: about 500,000 checks. A
	// larger one is refused as an error (a broken or hostile agent), not buffered.
	maxChecksAnswer = 256 << 20
	// maxPooledBuffer is the largest buffer put back into answerBuffers: one huge answer
	// must not pin its memory for the process's life.
	maxPooledBuffer = 8 << 20
)

// releaseBuffer returns buf to answerBuffers unless it grew past maxPooledBuffer, and says
// whether it did.
func releaseBuffer(buf *bytes.Buffer) bool {
	if buf.Cap() > maxPooledBuffer {
		return false
	}
	answerBuffers.Put(buf)
	return true
}

// checksSink receives a checks answer decoded by the transport.
type checksSink struct {
	entries []checkEntry
	decoded bool
}

// withChecksSink marks ctx's request as a checks query whose answer goes to sink.
func withChecksSink(ctx context.Context, sink *checksSink) context.Context {
	return context.WithValue(ctx, checksSinkKey{}, sink)
}

// leanChecksTransport decodes marked checks answers (see above), of at most limit bytes
// (maxChecksAnswer when 0).
type leanChecksTransport struct {
	next  http.RoundTripper
	limit int64
}

// RoundTrip passes req to the next transport and, for a marked checks query answered 200,
// reads and decodes the answer into the request's sink, handing the api client an empty
// list in its place. An answer past t.limit or one that does not decode is an error.
func (t leanChecksTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	sink, _ := req.Context().Value(checksSinkKey{}).(*checksSink)
	if err != nil || sink == nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	buf := answerBuffers.Get().(*bytes.Buffer)
	defer releaseBuffer(buf)
	buf.Reset()
	limit := t.limit
	if limit <= 0 {
		limit = maxChecksAnswer
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("consul: checks answer larger than %d bytes", limit)
	}
	entries, err := decodeChecks(buf.Bytes()) // copies what it keeps: buf is reused
	if err != nil {
		return nil, err
	}
	sink.entries, sink.decoded = entries, true
	resp.Body = io.NopCloser(strings.NewReader("[]"))
	resp.ContentLength = 2
	resp.Header.Del("Content-Length")
	return resp, nil
}

// CloseIdleConnections closes the next transport's idle connections, so that
// http.Client.CloseIdleConnections (and api's callers of it) still reach them.
func (t leanChecksTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
