package proxy

import (
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// FuzzGRPCTimeout: any grpc-timeout value a client sends is either refused or read as a
// duration within maxGRPCTimeout, and what the gateway forwards (encodeGRPCTimeout) parses
// back to at least that duration and less than one unit more (it rounds up, never down).
func FuzzGRPCTimeout(f *testing.F) {
	for _, seed := range []string{"1S", "200m", "99999999H", "0n", "100000000S", "1", "", "12x", "-5S", "1 S", "5M", "3u", "1H"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		d, ok := parseGRPCTimeout([]string{value})
		if !ok {
			return
		}
		if d < 0 || d > maxGRPCTimeout {
			t.Fatalf("%q parsed to %v, outside [0, %v]", value, d, maxGRPCTimeout)
		}
		out := encodeGRPCTimeout(d)
		back, ok := parseGRPCTimeout([]string{out})
		if d > 0 && (!ok || back < d) {
			t.Fatalf("%q -> %v -> %q -> %v (ok %v): the upstream must get at least what is left", value, d, out, back, ok)
		}
		if ok && d > 0 && back-d >= time.Hour && back > 2*d {
			t.Fatalf("%q -> %v -> %q -> %v: rounded up too far", value, d, out, back)
		}
	})
}

// FuzzGRPCFraming: the message framing tracker agrees with a direct parse of the same bytes
// on whether the relayed stream ends at a message boundary, however the bytes are split
// into writes (an upstream controls both the bytes and the split).
func FuzzGRPCFraming(f *testing.F) {
	msg := func(n int) []byte {
		b := make([]byte, 5+n)
		binary.BigEndian.PutUint32(b[1:], uint32(n))
		return b
	}
	f.Add(append(msg(3), msg(0)...), uint8(2))
	f.Add(msg(10)[:7], uint8(1))
	f.Add([]byte{0, 0, 0}, uint8(5))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff}, uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		g := &grpcRelay{dst: io.Discard}
		step := int(split%16) + 1
		for i := 0; i < len(stream); i += step {
			if _, err := g.Write(stream[i:min(i+step, len(stream))]); err != nil {
				t.Fatal(err)
			}
		}
		// Direct parse: walk whole messages; the stream is at a boundary when the walk ends
		// exactly at its end.
		at := 0
		for at+5 <= len(stream) {
			n := uint64(binary.BigEndian.Uint32(stream[at+1:]))
			if uint64(len(stream)-at-5) < n {
				break
			}
			at += 5 + int(n)
		}
		if want := at == len(stream); g.atBoundary() != want {
			t.Fatalf("stream of %d bytes split by %d: tracker says boundary %v, a direct parse %v", len(stream), step, g.atBoundary(), want)
		}
	})
}
