package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// chunkBufPool holds the scratch buffers for chunked request bodies.
var chunkBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// writeHead writes the request line and header block. It adds only Host,
// the body framing (Content-Length or Transfer-Encoding: chunked, Trailer)
// and Connection: close; everything else is written exactly as given, after
// validation, because a CR or LF smuggled into a name, value or target would
// let a client inject a second request on a shared upstream connection.
func writeHead(bw *bufio.Writer, req *http.Request, bodyLen int64, closeConn bool) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !httpguts.ValidHeaderFieldName(method) { // a method is a token, like a field name
		return &RequestError{Msg: "bad method " + strconv.Quote(method)}
	}
	if method == http.MethodConnect {
		return &RequestError{Msg: "CONNECT is not supported"}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !isASCII(host) {
		h, err := httpguts.PunycodeHostPort(host)
		if err != nil {
			return &RequestError{Msg: "bad host: " + err.Error()}
		}
		host = h
	}
	if !httpguts.ValidHostHeader(host) {
		return &RequestError{Msg: "bad Host " + strconv.Quote(host)}
	}
	host = removeZone(host)

	bw.WriteString(method)
	bw.WriteByte(' ')
	if err := writeTarget(bw, req); err != nil {
		return err
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")

	for k, vv := range req.Header {
		if skipHeader(k) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return &RequestError{Msg: "bad header name " + strconv.Quote(k)}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &RequestError{Msg: "bad value for header " + k}
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case bodyLen > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), bodyLen, 10))
		bw.WriteString("\r\n")
	case bodyLen < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !httpguts.ValidHeaderFieldName(k) {
					return &RequestError{Msg: "bad trailer name " + strconv.Quote(k)}
				}
				if !first {
					bw.WriteByte(',')
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	case sendsZeroLength(method):
		// Many servers insist on a length for these methods (net/http does the same).
		bw.WriteString("Content-Length: 0\r\n")
	}
	if closeConn {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	return nil
}

// writeTarget writes the origin-form request target without building the
// string RequestURI would allocate. RawQuery is not escaped by net/url, so it
// is checked for bytes that would end the request line early.
func writeTarget(bw *bufio.Writer, req *http.Request) error {
	u := req.URL
	if u.Opaque != "" {
		t := u.RequestURI()
		if !validTarget(t) {
			return &RequestError{Msg: "control character or space in request target"}
		}
		bw.WriteString(t)
		return nil
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if !validTarget(p) || !validTarget(u.RawQuery) {
		return &RequestError{Msg: "control character or space in request target"}
	}
	bw.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
	return nil
}

func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// skipHeader drops the fields this client owns: Host is written from
// req.Host, and letting caller-supplied framing headers through would allow a
// Content-Length that disagrees with the bytes actually sent (smuggling).
func skipHeader(k string) bool {
	switch len(k) {
	case 4:
		return strings.EqualFold(k, "Host")
	case 7:
		return strings.EqualFold(k, "Trailer")
	case 14:
		return strings.EqualFold(k, "Content-Length")
	case 17:
		return strings.EqualFold(k, "Transfer-Encoding")
	}
	return false
}

func sendsZeroLength(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// removeZone strips an IPv6 zone ("%eth0") from a Host value: it is
// meaningful only to the local stack and RFC 6874 forbids sending it.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

// bodyReader reads the caller's request body for a fixed-length write and
// keeps the body's own error apart from connection write errors, which the
// proxy must classify differently (client fault vs upstream fault).
type bodyReader struct {
	r   io.Reader
	n   int64 // bytes still expected
	err error // first non-EOF error from r
	eof bool  // r ended before n bytes
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err == io.EOF {
		if b.n > 0 {
			b.eof = true
		}
		return n, io.EOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

var errShortBody = errors.New("body shorter than ContentLength")

// maxEmptyReads is how many (0, nil) Reads in a row a request body gets
// before it counts as broken: bufio's limit, so both framings agree.
const maxEmptyReads = 100

// writeBody streams the request body after the head. Fixed-length bodies go
// through bufio.Writer.ReadFrom (no extra buffer); chunked ones are flushed
// after every chunk, as net/http does, so a streaming upload is not held back
// in our buffer while the upstream waits for it.
func (pc *persistConn) writeBody(bw *bufio.Writer, req *http.Request, body io.Reader, bodyLen int64) error {
	if bodyLen > 0 {
		pc.body = bodyReader{r: body, n: bodyLen}
		_, err := bw.ReadFrom(&pc.body)
		br := pc.body
		pc.body = bodyReader{}
		switch {
		case br.err != nil:
			return &RequestBodyError{Err: br.err}
		case err == io.ErrNoProgress:
			// bufio gave up on a body whose Reads return (0, nil) forever.
			return &RequestBodyError{Err: err}
		case err != nil:
			return err
		case br.eof:
			return &RequestBodyError{Err: errShortBody}
		}
		return nil
	}
	bufp := chunkBufPool.Get().(*[]byte)
	defer chunkBufPool.Put(bufp)
	buf := *bufp
	for empty := 0; ; {
		n, rerr := body.Read(buf)
		if n == 0 && rerr == nil {
			// A body whose Reads return (0, nil) forever would spin here,
			// deaf to the context (nothing is written, so the poisoned
			// deadline is never seen). Give up as bufio and io do.
			if empty++; empty >= maxEmptyReads {
				return &RequestBodyError{Err: io.ErrNoProgress}
			}
			continue
		}
		empty = 0
		if n > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &RequestBodyError{Err: rerr}
		}
	}
	bw.WriteString("0\r\n")
	// Trailer values are read only now: a proxied body fills them at EOF.
	for k, vv := range req.Trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			return &RequestError{Msg: "bad trailer name " + strconv.Quote(k)}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &RequestError{Msg: "bad value for trailer " + k}
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return nil
}
