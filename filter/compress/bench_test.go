package compress

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/switchyard/switchyard/filter"
)

// discardWriter is a ResponseWriter that only counts the body bytes.
type discardWriter struct {
	header http.Header
	n      int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discardWriter) Flush()                      {}

// BenchmarkResponse measures one whole response through the filter (wrap, header, a 16
// KiB JSON body in one write, finish) and reports the bytes sent to the client. "direct"
// is the same response without the filter, the floor the pass-through cases compare to.
func BenchmarkResponse(b *testing.B) {
	body := jsonBody(16 << 10)
	length := []string{strconv.Itoa(len(body))}
	f := newFilter(b, 1024, "text/*", "application/json")
	cases := []struct {
		name        string
		accept      string
		contentType string
		direct      bool
	}{
		{"gzip", "gzip", "application/json", false},
		{"zstd", "zstd", "application/json", false},
		{"pass/not-accepted", "", "application/json", false},
		{"pass/type-not-listed", "gzip, zstd", "image/png", false},
		{"direct", "gzip, zstd", "application/json", true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.accept != "" {
				r.Header.Set("Accept-Encoding", tc.accept)
			}
			q := &filter.Request{}
			contentType := []string{tc.contentType}
			d := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				clear(d.header)
				d.header["Content-Type"] = contentType
				d.header["Content-Length"] = length
				d.n = 0
				if tc.direct {
					d.WriteHeader(http.StatusOK)
					_, _ = d.Write(body)
					continue
				}
				w, done := f.WrapResponse(d, r, q)
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(body)
				done()
			}
			b.ReportMetric(float64(d.n), "sent-bytes")
		})
	}
}

func BenchmarkNegotiate(b *testing.B) {
	header := []string{"gzip, deflate, br, zstd"}
	b.ReportAllocs()
	for b.Loop() {
		negotiate(header)
	}
}

// BenchmarkNewEncoder is what the pools save: the memory one encoder of each kind takes
// when made for a response (B/op), with its first 16 KiB.
func BenchmarkNewEncoder(b *testing.B) {
	body := jsonBody(16 << 10)
	b.Run("gzip", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc := gzipPool.New().(*gzip.Writer)
			enc.Reset(io.Discard)
			_, _ = enc.Write(body)
			_ = enc.Close()
		}
	})
	b.Run("zstd", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc := zstdPool.New().(*zstd.Encoder)
			enc.Reset(io.Discard)
			_, _ = enc.Write(body)
			_ = enc.Close()
		}
	})
}
