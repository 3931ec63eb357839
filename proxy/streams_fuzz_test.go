package proxy

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// FuzzEventStreamEnd: whatever an upstream sends, however it is chunked and wherever the
// drain comes, the client gets a prefix of the upstream's bytes, and once the relay says it
// ended, that prefix ends with a blank line (a whole event) or is empty.
func FuzzEventStreamEnd(f *testing.F) {
	f.Add([]byte("data: 1\n\ndata: 2\n\n"), uint8(3), uint16(5))
	f.Add([]byte("id: 1\r\ndata: x\r\n\r\nid: 2\r\n"), uint8(1), uint16(9))
	f.Add([]byte("data: a\r\rdata: b\r\r"), uint8(2), uint16(0))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8, at uint16) {
		size := int(chunk)%64 + 1
		cut := min(int(at), len(stream))
		var out bytes.Buffer
		r := &sseRelay{dst: &out, upstream: nopCloser{}, atEventEnd: true}
		feed := func(b []byte) error {
			for len(b) > 0 {
				n := min(size, len(b))
				if _, err := r.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			return nil
		}
		if err := feed(stream[:cut]); err != nil {
			t.Fatalf("before the drain: %v", err)
		}
		r.requestEnd()
		if err := feed(stream[cut:]); err != nil && !errors.Is(err, errStreamEnded) {
			t.Fatalf("after the drain: %v", err)
		}
		got := out.Bytes()
		if !bytes.HasPrefix(stream, got) {
			t.Fatalf("client got %q, not a prefix of %q", got, stream)
		}
		if r.ended() && len(got) > 0 && !endsWithEvent(got) {
			t.Fatalf("ended after %q, which does not end an event", got)
		}
	})
}

// endsWithEvent reports whether b ends with an empty line: LF LF, CR CR, CRLF CRLF, or
// mixes of them (the HTML standard's event stream grammar).
func endsWithEvent(b []byte) bool {
	trim := func(b []byte) ([]byte, bool) {
		switch {
		case bytes.HasSuffix(b, []byte("\r\n")):
			return b[:len(b)-2], true
		case bytes.HasSuffix(b, []byte("\n")), bytes.HasSuffix(b, []byte("\r")):
			return b[:len(b)-1], true
		}
		return b, false
	}
	b, ok := trim(b)
	if !ok {
		return false
	}
	if len(b) == 0 {
		return true
	}
	_, ok = trim(b)
	return ok
}

// FuzzWebSocketClose: whatever frames an upstream sends, however chunked and wherever the
// drain comes, the client gets a prefix of the upstream's bytes that ends at a frame
// boundary, followed by at most one Close frame of the gateway's, and nothing after it.
func FuzzWebSocketClose(f *testing.F) {
	f.Add(append(wsFrame(0x1, []byte("hello"), false), wsFrame(0x2, bytes.Repeat([]byte{7}, 300), false)...), uint8(3), uint16(4))
	f.Add(append(wsFrame(0x8, []byte{3, 0xe8}, false), wsFrame(0x1, []byte("x"), false)...), uint8(1), uint16(4))
	f.Add([]byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2}, uint8(5), uint16(3))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8, at uint16) {
		size := int(chunk)%64 + 1
		cut := min(int(at), len(stream))
		var out bytes.Buffer
		r := &wsRelay{dst: &out}
		feed := func(b []byte) error {
			for len(b) > 0 {
				n := min(size, len(b))
				if _, err := r.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			return nil
		}
		if err := feed(stream[:cut]); err != nil && !errors.Is(err, errCloseHandshakeDone) {
			t.Fatal(err)
		}
		r.requestEnd()
		if err := feed(stream[cut:]); err != nil && !errors.Is(err, errCloseHandshakeDone) && !errors.Is(err, io.ErrShortWrite) {
			t.Fatal(err)
		}
		got := out.Bytes()
		relayed := got
		if bytes.HasSuffix(got, wsCloseGoingAway) && !bytes.HasPrefix(stream, got) {
			relayed = got[:len(got)-len(wsCloseGoingAway)]
		}
		if !bytes.HasPrefix(stream, relayed) {
			t.Fatalf("client got % x, not a prefix of the upstream's % x plus one Close frame", got, stream)
		}
		if bytes.Count(got[len(relayed):], wsCloseGoingAway) > 1 {
			t.Fatalf("more than one Close frame of the gateway's: % x", got)
		}
	})
}
