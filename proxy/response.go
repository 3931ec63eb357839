package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/upstream"
)

// writeResponse sends res to the client: end-to-end headers, status, body (flushed as it
// arrives for streams), trailers; or hands over to tunnelling for a 101. It returns the
// status sent (499 when the client left), the body bytes written, and the upstream's failure
// kind if the upstream broke mid-body (ErrCanceled when the client did).
func (h *Handler) writeResponse(w http.ResponseWriter, r *http.Request, res *http.Response) (int, int64, upstream.ErrorKind) {
	if res.StatusCode == http.StatusSwitchingProtocols {
		return h.tunnel(w, r, res)
	}
	defer res.Body.Close()
	wh := w.Header()
	copyResponseHeaders(wh, res.Header)
	if len(res.Trailer) > 0 {
		// Announce the trailers the upstream announced; values are filled in after the body.
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		wh["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(res.StatusCode)

	var flusher http.Flusher
	if res.ContentLength == -1 || isEventStream(res.Header) {
		// Unknown length (chunked, SSE, long polls): every chunk goes out as it arrives,
		// as with httputil's FlushInterval -1 for such responses.
		flusher, _ = w.(http.Flusher)
		if flusher != nil {
			flusher.Flush()
		}
	}
	n, readErr, writeErr := copyBody(w, res.Body, flusher)
	switch {
	case writeErr != nil:
		return StatusClientClosed, n, upstream.ErrCanceled
	case readErr != nil:
		kind := classify(readErr, r.Context().Err() != nil, false)
		if kind == upstream.ErrCanceled {
			return StatusClientClosed, n, kind
		}
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream body broke",
			slog.String("error", readErr.Error()), slog.Int64("bytes", n))
		// Headers are gone: the only honest signal left is to abort the response, which
		// makes net/http reset the stream or close the connection without a clean end.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range res.Trailer {
		wh[http.TrailerPrefix+k] = vv
	}
	return res.StatusCode, n, upstream.ErrNone
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && strings.EqualFold(ct[:17], "text/event-stream")
}

// copyBody copies src to w through a pooled buffer, flushing after every write when flusher
// is set; read and write errors are told apart because only the former are the upstream's.
func copyBody(w io.Writer, src io.Reader, flusher http.Flusher) (n int64, readErr, writeErr error) {
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
			if flusher != nil {
				flusher.Flush()
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

// tunnel completes a protocol switch (WebSocket): it writes the 101 to the hijacked client
// connection and copies bytes both ways until either side closes.
func (h *Handler) tunnel(w http.ResponseWriter, r *http.Request, res *http.Response) (int, int64, upstream.ErrorKind) {
	backConn, ok := res.Body.(io.ReadWriteCloser)
	if !ok || !strings.EqualFold(upgradeType(res.Header), upgradeType(r.Header)) {
		_ = res.Body.Close()
		writeError(w, http.StatusBadGateway, "")
		return http.StatusBadGateway, 0, upstream.ErrProtocol
	}
	defer backConn.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "")
		return http.StatusInternalServerError, 0, upstream.ErrNone
	}
	defer conn.Close()
	res.Header = mergeUpgradeHeaders(w.Header(), res.Header)
	res.Body = nil
	if err := res.Write(brw); err != nil {
		return StatusClientClosed, 0, upstream.ErrCanceled
	}
	if err := brw.Flush(); err != nil {
		return StatusClientClosed, 0, upstream.ErrCanceled
	}
	var wg sync.WaitGroup
	var up int64
	done := make(chan struct{}, 2)
	wg.Add(2)
	go func() { // upstream -> client
		defer wg.Done()
		up, _ = io.Copy(conn, backConn)
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
	return http.StatusSwitchingProtocols, up, upstream.ErrNone
}

// mergeUpgradeHeaders returns the 101 response headers: the upstream's, including Connection
// and Upgrade (hop-by-hop, but they are the point of a 101), plus what the gateway set.
func mergeUpgradeHeaders(gw, up http.Header) http.Header {
	out := up.Clone()
	for k, vv := range gw {
		if _, ok := out[k]; !ok {
			out[k] = vv
		}
	}
	return out
}
