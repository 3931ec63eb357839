package compress

import (
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encoder settings. Encoders are pooled (sync.Pool): one costs from tens to hundreds of KiB
// of tables and history, far too much to build per response.
const (
	// gzipLevel is klauspost's level 5 (its default): within a few percent of level 9's
	// size on JSON and text at a fraction of the CPU, which matters more on a gateway.
	// An encoder takes about 1 MiB (level 1 still about 0.8 MiB).
	gzipLevel = gzip.DefaultCompression
	// zstdWindow bounds the back-reference distance and so the history each encoder (and
	// each client's decoder) keeps: 128 KiB, far under the 8 MiB RFC 8878 lets HTTP
	// clients demand, and as large as the typical API response, so little ratio is lost.
	zstdWindow = 128 << 10
)

// compressor is a pooled encoder writing to one response.
type compressor interface {
	Write(p []byte) (int, error)
	// Flush emits everything written so far as complete blocks a decoder can read.
	Flush() error
	// Close ends the stream (zstd's last block and checksum, gzip's CRC and size).
	Close() error
	// release detaches the encoder from the response and returns it to its pool.
	release()
}

var gzipPool = sync.Pool{New: func() any {
	w, err := gzip.NewWriterLevel(io.Discard, gzipLevel)
	if err != nil {
		panic("compress: gzip level: " + err.Error()) // a constant: cannot happen
	}
	return w
}}

var zstdPool = sync.Pool{New: func() any {
	w, err := zstd.NewWriter(nil,
		// Fastest: about 0.4 MiB per encoder against 1.5 MiB for SpeedDefault with the
		// settings below, for output ~3-6% larger; an open event stream holds its encoder
		// for as long as it lasts.
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		// One: streams encode on the caller's goroutine, so no goroutine outlives a
		// response and the CPU a response costs is its own request's.
		zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true),
		zstd.WithWindowSize(zstdWindow),
	)
	if err != nil {
		panic("compress: zstd options: " + err.Error()) // constants: cannot happen
	}
	return w
}}

// gzipCompressor and zstdCompressor are one pointer wide, so storing them in the
// compressor interface does not allocate.
type gzipCompressor struct{ *gzip.Writer }

func (c gzipCompressor) release() {
	c.Reset(io.Discard) // drop the reference to the response writer
	gzipPool.Put(c.Writer)
}

type zstdCompressor struct{ *zstd.Encoder }

func (c zstdCompressor) release() {
	c.Reset(nil) // drop the reference to the response writer
	zstdPool.Put(c.Encoder)
}

// newCompressor takes a pooled encoder for e writing to dst.
func newCompressor(e encoding, dst io.Writer) compressor {
	if e == encodingZstd {
		enc := zstdPool.Get().(*zstd.Encoder)
		enc.Reset(dst)
		return zstdCompressor{enc}
	}
	enc := gzipPool.Get().(*gzip.Writer)
	enc.Reset(dst)
	return gzipCompressor{enc}
}

// statelessGzipCompressor encodes a stream: each Write is compressed on its own into
// complete, byte-aligned deflate blocks (klauspost's StatelessCompression level), so the
// writer keeps only the CRC and size between writes, a few hundred bytes instead of a
// pooled encoder's ~1 MiB for as long as the stream stays open. It costs ratio (no history
// across writes), which is why only streams use it. Flush has nothing to do: every Write
// already ends on a block boundary a decoder can read up to.
type statelessGzipCompressor struct{ *gzip.Writer }

func (c statelessGzipCompressor) release() {}

// newStreamCompressor starts a stateless gzip stream writing to dst. zstd has no stateless
// encoder in klauspost/compress (a frame per write would need a pooled encoder during each
// write and repeat a frame header per event), so a stream to a client that takes only zstd
// passes uncompressed instead.
func newStreamCompressor(dst io.Writer) compressor {
	enc, err := gzip.NewWriterLevel(dst, gzip.StatelessCompression)
	if err != nil {
		panic("compress: gzip stateless level: " + err.Error()) // a constant: cannot happen
	}
	return statelessGzipCompressor{enc}
}
