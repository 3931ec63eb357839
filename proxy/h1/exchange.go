package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"time"

	"golang.org/x/net/http/httpguts"
)

func stopNothing() bool { return true }

// exchange performs one request/response on pc, on the caller's goroutine.
// On success the conn is owned by the response body (or already released);
// on failure it has been closed or released. st classifies failures on
// reused conns for RoundTrip's retry decision; a non-zero st with a nil
// error means "the response is a stale-conn 408, retry if you may".
func (c *Client) exchange(ctx context.Context, pc *persistConn, req *http.Request, body io.Reader, bodyLen int64) (*http.Response, staleness, error) {
	stop := stopNothing
	if ctx.Done() != nil {
		// No goroutine: for the usual cancelCtx this registers a child callback.
		stop = context.AfterFunc(ctx, pc.abortFn)
	}
	reused := pc.reused
	pc.cr.n, pc.cw.n = 0, 0
	closeConn := wantsClose(req)
	expect := body != nil && httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue")

	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(&pc.cw)
	err := writeHead(bw, req, bodyLen, closeConn)
	if err == nil && (body == nil || expect) {
		err = bw.Flush()
	}
	var resp *http.Response
	bodySkipped := false
	if err == nil && expect {
		resp, err = c.awaitContinue(ctx, pc, req)
		bodySkipped = resp != nil
	}
	if err == nil && body != nil && !bodySkipped {
		if err = pc.writeBody(bw, req, body, bodyLen); err == nil {
			err = bw.Flush()
		}
	}
	bw.Reset(nil)
	writerPool.Put(bw)
	if err != nil {
		st, err := c.fail(ctx, pc, stop, reused, "write", err)
		return nil, st, err
	}

	if resp == nil {
		if c.headerTimeout > 0 {
			pc.setReadDeadline(time.Now().Add(c.headerTimeout))
		}
		pc.cr.limit = c.maxHeaderBytes
		resp, err = c.readFinal(ctx, pc, req)
		pc.cr.limit = -1
		if err != nil {
			st, err := c.fail(ctx, pc, stop, reused, "read", err)
			return nil, st, err
		}
		if c.headerTimeout > 0 {
			pc.setReadDeadline(time.Time{})
		}
	}

	var st staleness
	if reused && resp.StatusCode == http.StatusRequestTimeout {
		// A server that timed out our idle conn may write a 408 before
		// closing (net/http servers do); it answers no request of ours.
		st = noResponseBytes
	}
	// Without the body we promised, the server's view of the stream is unknown.
	reusable := !closeConn && !resp.Close && !bodySkipped && st == notStale

	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !stop() {
			pc.close()
			pc.hp.forget()
			return nil, notStale, ctxError(ctx, "upgrade", nil)
		}
		c.detach(pc)
		resp.Body = &upgradeBody{pc: pc, br: pc.br}
		return resp, notStale, nil
	}
	if resp.Body == http.NoBody {
		c.finish(pc, stop, reusable)
		return resp, st, nil
	}
	b := &respBody{c: c, pc: pc, rc: resp.Body, ctx: ctx, stop: stop, reusable: reusable, remain: -1}
	if resp.ContentLength > 0 {
		b.remain = resp.ContentLength
	}
	resp.Body = b
	return resp, st, nil
}

// fail disposes of pc after a failed exchange and turns err into the
// documented error shape. A validation error found before any byte left
// keeps the conn: the connection itself did nothing wrong.
func (c *Client) fail(ctx context.Context, pc *persistConn, stop func() bool, reused bool, op string, err error) (staleness, error) {
	var reqErr *RequestError
	if errors.As(err, &reqErr) && pc.cw.n == 0 {
		c.finish(pc, stop, true)
		return notStale, err
	}
	st, err := ioError(ctx, pc, reused, op, err)
	stop()
	c.release(pc, false)
	return st, err
}

// finish releases pc once the exchange no longer needs it. The conn is pooled
// only if the AfterFunc was disarmed before it fired (otherwise its deadline
// may be poisoned) and no stray bytes follow the response.
func (c *Client) finish(pc *persistConn, stop func() bool, reuse bool) {
	stopped := stop()
	c.release(pc, reuse && stopped && !pc.aborted.Load() && pc.br.Buffered() == 0)
}

// detach removes an upgraded conn from its pool's accounting: from now on it
// belongs to the caller, and, as in http.Transport, no longer counts against
// MaxConnsPerHost (a long-lived tunnel would otherwise hold a slot that the
// pool cannot reclaim).
func (c *Client) detach(pc *persistConn) { pc.hp.forget() }

// awaitContinue implements Expect: 100-continue after the head was flushed:
// wait up to a second for the server. It returns (nil, nil) when the body
// should be sent (100 Continue, or silence), or the final response when the
// server answered without wanting the body.
func (c *Client) awaitContinue(ctx context.Context, pc *persistConn, req *http.Request) (*http.Response, error) {
	pc.cr.limit = c.maxHeaderBytes
	defer func() { pc.cr.limit = -1 }()
	for n := 0; n <= max1xxResponses; n++ {
		pc.setReadDeadline(time.Now().Add(expectContinueTimeout))
		_, err := pc.br.Peek(1)
		// Once the server speaks, read its head without the short deadline:
		// a deadline hit mid-head would leave the reader in an unknown state.
		pc.setReadDeadline(time.Time{})
		if err != nil {
			if isDeadline(err) && !pc.aborted.Load() && ctx.Err() == nil {
				return nil, nil // silence: send the body, as net/http does
			}
			return nil, err
		}
		resp, err := pc.readOne(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if err := got1xx(ctx, resp); err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusContinue {
			return nil, nil
		}
	}
	return nil, &ProtocolError{Err: errTooMany1xx}
}

// readFinal reads responses until a final one (>= 200, or 101), passing
// informational ones such as 103 Early Hints to the request's
// httptrace.ClientTrace.Got1xxResponse hook.
func (c *Client) readFinal(ctx context.Context, pc *persistConn, req *http.Request) (*http.Response, error) {
	for n := 0; n <= max1xxResponses; n++ {
		resp, err := pc.readOne(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if err := got1xx(ctx, resp); err != nil {
			return nil, err
		}
	}
	return nil, &ProtocolError{Err: errTooMany1xx}
}

func got1xx(ctx context.Context, resp *http.Response) error {
	if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
		return trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header))
	}
	return nil
}

// readOne reads one response head with http.ReadResponse, adding the checks
// it lacks: a status within 100-599, an HTTP/1.x version, and no smuggling. ReadResponse silently
// drops Content-Length when Transfer-Encoding is present (RFC 9112 §6.1
// allows that for recipients but calls it a likely attack), so the raw head
// is scanned first. Usually the whole head is already in the read buffer and
// the scan costs no copy; when it is not, the connReader records the raw
// bytes while ReadResponse runs.
func (pc *persistConn) readOne(req *http.Request) (*http.Response, error) {
	if _, err := pc.br.Peek(1); err != nil {
		return nil, err
	}
	buf, _ := pc.br.Peek(pc.br.Buffered())
	scan := scanFraming(buf)
	if !scan.complete {
		pc.cr.rec = append(pc.cr.rec[:0], buf...)
		pc.cr.recording = true
	}
	resp, err := http.ReadResponse(pc.br, req)
	if !scan.complete {
		scan = scanFraming(pc.cr.rec)
		pc.cr.recording = false
		if cap(pc.cr.rec) > 64<<10 {
			pc.cr.rec = nil // do not pin a huge head's buffer for the conn's lifetime
		}
	}
	if err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || isNetErr(err) {
			return nil, err
		}
		return nil, &ProtocolError{Err: err}
	}
	switch {
	case resp.StatusCode < 100 || resp.StatusCode > 599:
		// ReadResponse takes any three digits ("000", "+99", "999"). None is
		// HTTP, a low one would pass as informational, and relaying one
		// would make net/http's server panic (WriteHeader below 100).
		return nil, &ProtocolError{Err: errBadStatus}
	case resp.ProtoMajor != 1:
		// ReadResponse takes any HTTP/d.d; "HTTP/0.0" or "HTTP/2.0" on an
		// HTTP/1.1 conn is no HTTP/1 message.
		return nil, &ProtocolError{Err: errBadVersion}
	case scan.cl && scan.te:
		return nil, &ProtocolError{Err: errAmbiguousFraming}
	case scan.badName:
		return nil, &ProtocolError{Err: errBadFieldName}
	}
	return resp, nil
}

// headScan is what scanFraming learned about a raw response head.
type headScan struct {
	cl, te   bool // Content-Length / Transfer-Encoding present
	badName  bool // a field name with whitespace, which textproto tolerates (go.dev/issue/34540)
	complete bool // the empty line ending the head was found
}

// scanFraming looks through a raw response head (status line first) for
// Content-Length and Transfer-Encoding fields and for field names containing
// whitespace: textproto keeps "Transfer-Encoding :" as a distinct, unused
// key, and forwarding it downstream would hand a smuggling primitive to the
// next hop.
func scanFraming(b []byte) (s headScan) {
	first := true
	for len(b) > 0 {
		i := indexByte(b, '\n')
		if i < 0 {
			return s
		}
		line := b[:i]
		b = b[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if first {
			first = false
			continue
		}
		if len(line) == 0 {
			s.complete = true
			return s
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obs-fold continuation of the previous value
		}
		for _, c := range line {
			if c == ':' {
				break
			}
			if c == ' ' || c == '\t' {
				s.badName = true
				break
			}
		}
		if hasFieldFold(line, "content-length") {
			s.cl = true
		} else if hasFieldFold(line, "transfer-encoding") {
			s.te = true
		}
	}
	return s
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// hasFieldFold reports whether line starts with name followed by a colon,
// ignoring ASCII case.
func hasFieldFold(line []byte, name string) bool {
	if len(line) <= len(name) || line[len(name)] != ':' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := line[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// ioError shapes an I/O failure of an exchange and classifies staleness.
func ioError(ctx context.Context, pc *persistConn, reused bool, op string, err error) (staleness, error) {
	if ctx.Err() != nil || pc.aborted.Load() {
		return notStale, ctxError(ctx, op, err)
	}
	var (
		rbe *RequestBodyError
		re  *RequestError
		pe  *ProtocolError
	)
	if errors.As(err, &rbe) || errors.As(err, &re) || errors.As(err, &pe) {
		return notStale, err
	}
	if op == "read" && isDeadline(err) {
		return notStale, ErrResponseHeaderTimeout
	}
	st := notStale
	if reused {
		switch {
		case op == "write" && pc.cw.n == 0:
			st = nothingWritten
		case pc.cr.n == 0 && (isStaleConnErr(err) || (op == "read" && isNetErr(err))):
			st = noResponseBytes
		}
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return st, fmt.Errorf("h1: server closed connection before full response: %w", io.ErrUnexpectedEOF)
	}
	return st, fmt.Errorf("h1: %s: %w", op, err)
}
