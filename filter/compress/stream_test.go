package compress

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/filter"
)

// encoderKind names what a response writer encodes with, for the tests.
func encoderKind(w http.ResponseWriter) string {
	rw := w.(*responseWriter)
	switch enc := rw.enc.(type) {
	case nil:
		if rw.state == stateCompressing {
			return "compressing without an encoder"
		}
		return "none"
	case statelessGzipCompressor:
		return "stateless gzip"
	case gzipCompressor:
		return "pooled gzip"
	case zstdCompressor:
		return "pooled zstd"
	default:
		return "unknown " + string(rune(0)) + enc.(interface{ Close() error }).Close().Error()
	}
}

// TestStreamEncoder checks which encoder a response holds once the proxy's pattern has run
// (header, a Flush, a first event, a Flush): a response flushed before min_bytes, or an
// explicitly listed event stream, must hold no pooled encoder.
func TestStreamEncoder(t *testing.T) {
	cases := []struct {
		name        string
		minBytes    int
		types       []string
		contentType string
		length      string // Content-Length, "" for none
		accept      string
		firstWrite  int // bytes written before the first Flush
		want        string
		encoding    string
	}{
		{"flushed before min_bytes: stateless gzip", 1024, []string{"text/*"}, "text/plain", "", "gzip", 0, "stateless gzip", "gzip"},
		{"min_bytes 0, flushed before a byte", 0, []string{"text/*"}, "text/plain", "", "gzip", 0, "stateless gzip", "gzip"},
		{"zstd preferred, gzip taken: stateless gzip", 1024, []string{"text/*"}, "text/plain", "", "zstd, gzip;q=0.5", 0, "stateless gzip", "gzip"},
		{"zstd only: as it is", 1024, []string{"text/*"}, "text/plain", "", "zstd", 0, "none", ""},
		{"identity weighed over gzip: as it is", 1024, []string{"text/*"}, "text/plain", "", "zstd, gzip;q=0.2, identity;q=0.5", 0, "none", ""},
		{"min_bytes arrived before the flush: pooled", 100, []string{"text/*"}, "text/plain", "", "gzip", 200, "pooled gzip", "gzip"},
		{"min_bytes arrived before the flush: pooled zstd", 100, []string{"text/*"}, "text/plain", "", "zstd", 200, "pooled zstd", "zstd"},
		{"known length: pooled", 100, []string{"text/*"}, "text/plain", "5000", "gzip", 0, "pooled gzip", "gzip"},
		{"event stream not covered by text/*", 0, []string{"text/*"}, "text/event-stream", "", "gzip", 0, "none", ""},
		{"event stream listed: stateless", 0, []string{"text/event-stream"}, "text/event-stream; charset=utf-8", "", "gzip", 0, "stateless gzip", "gzip"},
		{"event stream listed, body before the flush: stateless", 10, []string{"text/*", "text/event-stream"}, "Text/Event-Stream", "", "gzip", 500, "stateless gzip", "gzip"},
		{"event stream listed, zstd only: as it is", 0, []string{"text/event-stream"}, "text/event-stream", "", "zstd", 0, "none", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, tc.minBytes, tc.types...)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Encoding", tc.accept)
			rec := httptest.NewRecorder()
			w, done := f.WrapResponse(rec, r, &filter.Request{})
			w.Header().Set("Content-Type", tc.contentType)
			if tc.length != "" {
				w.Header().Set("Content-Length", tc.length)
			}
			w.WriteHeader(http.StatusOK)
			body := jsonBody(tc.firstWrite)
			_, _ = w.Write(body)
			w.(http.Flusher).Flush()
			event := []byte("data: event\n\n")
			_, _ = w.Write(event)
			w.(http.Flusher).Flush()
			got := encoderKind(w)
			done()
			if got != tc.want {
				t.Errorf("encoder %s, want %s", got, tc.want)
			}
			if enc := rec.Header().Get("Content-Encoding"); enc != tc.encoding {
				t.Errorf("Content-Encoding %q, want %q", enc, tc.encoding)
			}
			if out := decode(t, tc.encoding, rec.Body.Bytes()); string(out) != string(body)+string(event) {
				t.Errorf("body %q, want %q", out, string(body)+string(event))
			}
		})
	}
}

// idleStreamBytes opens n responses the way the proxy serves an event stream (header, a
// Flush, one event, a Flush), keeps them open, and returns the heap they hold each.
func idleStreamBytes(t testing.TB, f *Filter, accept string, n int) float64 {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Encoding", accept)
	event := []byte("id: 1\ndata: {\"price\": 101.5}\n\n")
	var before, after runtime.MemStats
	// Two collections empty the encoder pools (their victim caches too), so encoders left
	// there by earlier responses are not freed inside the measurement.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	open := make([]func(), n)
	for i := range open {
		d := &discardWriter{header: http.Header{"Content-Type": {"text/plain"}}}
		w, done := f.WrapResponse(d, r, &filter.Request{})
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		_, _ = w.Write(event)
		w.(http.Flusher).Flush()
		open[i] = done
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(open)
	for _, done := range open {
		done()
	}
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// TestIdleStreamMemory holds 100 open streams: each may keep a few hundred bytes (the
// writers and the gzip CRC state), not a pooled encoder (about 1 MiB gzip, 0.6 MiB zstd).
func TestIdleStreamMemory(t *testing.T) {
	const limit = 16 << 10
	f := newFilter(t, 1024, "text/*")
	for _, accept := range []string{"gzip", "zstd", "gzip, zstd"} {
		perStream := idleStreamBytes(t, f, accept, 100)
		t.Logf("%s: %.0f bytes held per idle stream", accept, perStream)
		if perStream > limit {
			t.Errorf("%s: %.0f bytes held per idle stream, want under %d", accept, perStream, limit)
		}
	}
}

// BenchmarkIdleStream reports the heap one open, idle stream holds (bytes/stream), over
// 1,000 streams so that klauspost's shared scratch pools weigh little in the figure.
func BenchmarkIdleStream(b *testing.B) {
	f := newFilter(b, 1024, "text/*")
	for _, accept := range []string{"gzip", "zstd"} {
		b.Run(accept, func(b *testing.B) {
			var perStream float64
			for b.Loop() {
				perStream = idleStreamBytes(b, f, accept, 1000)
			}
			b.ReportMetric(perStream, "bytes/stream")
		})
	}
}

// failingFlusher is a ResponseWriter whose flush fails, as a write timeout or a client
// gone makes the connection's flush fail. Its Flush (http.Flusher) cannot report that.
type failingFlusher struct {
	header  http.Header
	flushes int
}

var errFlush = errors.New("flush: client gone")

func (f *failingFlusher) Header() http.Header         { return f.header }
func (f *failingFlusher) WriteHeader(int)             {}
func (f *failingFlusher) Write(p []byte) (int, error) { return len(p), nil }
func (f *failingFlusher) Flush()                      { f.flushes++ }
func (f *failingFlusher) FlushError() error           { f.flushes++; return errFlush }

// TestFlushError: the client writer's flush error reaches the caller of FlushError and of
// an http.ResponseController's Flush, in every state a response can be flushed in.
func TestFlushError(t *testing.T) {
	cases := []struct {
		name        string
		contentType string
		accept      string
		write       int
	}{
		{"passing", "image/png", "gzip", 10},
		{"held, then a stateless gzip stream", "text/plain", "gzip", 10},
		{"held, then a stream as it is", "text/plain", "zstd", 10},
		{"pooled gzip", "text/plain", "gzip", 500},
		{"pooled zstd", "text/plain", "zstd", 500},
	}
	f := newFilter(t, 100, "text/plain")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Encoding", tc.accept)
			client := &failingFlusher{header: http.Header{"Content-Type": {tc.contentType}}}
			w, done := f.WrapResponse(client, r, &filter.Request{})
			defer done()
			_, _ = w.Write(jsonBody(tc.write))
			if err := w.(interface{ FlushError() error }).FlushError(); !errors.Is(err, errFlush) {
				t.Errorf("FlushError: %v, want %v", err, errFlush)
			}
			if err := http.NewResponseController(w).Flush(); !errors.Is(err, errFlush) {
				t.Errorf("ResponseController.Flush: %v, want %v", err, errFlush)
			}
			w.(http.Flusher).Flush() // still an http.Flusher; the error is dropped there
			if client.flushes != 3 {
				t.Errorf("%d flushes reached the client writer, want 3", client.flushes)
			}
		})
	}
}

// TestNotModified: a 304 carries the Vary and the ETag the 200 it stands for would have.
func TestNotModified(t *testing.T) {
	cases := []struct {
		name        string
		accept      string
		ifNoneMatch string
		header      http.Header
		vary        bool
		etag        string
	}{
		{"listed type, gzip taken", "gzip", `W/"v1"`, http.Header{"Content-Type": {"application/json"}, "Etag": {`"v1"`}}, true, `W/"v1"`},
		{"listed type, zstd taken", "zstd", `"v1"`, http.Header{"Content-Type": {"application/json"}, "Etag": {`"v1"`}}, true, `W/"v1"`},
		{"listed type, no coding taken", "", `"v1"`, http.Header{"Content-Type": {"application/json"}, "Etag": {`"v1"`}}, true, `"v1"`},
		{"listed type, weak already", "gzip", `W/"v1"`, http.Header{"Content-Type": {"application/json"}, "Etag": {`W/"v1"`}}, true, `W/"v1"`},
		{"type not listed", "gzip", `"v1"`, http.Header{"Content-Type": {"image/png"}, "Etag": {`"v1"`}}, false, `"v1"`},
		{"encoded upstream", "gzip", `"v1"`, http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"br"}, "Etag": {`"v1"`}}, false, `"v1"`},
		{"no-transform", "gzip", `"v1"`, http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-transform"}, "Etag": {`"v1"`}}, false, `"v1"`},
		{"no type, client holds the weakened tag", "gzip", `"v0", W/"v1"`, http.Header{"Etag": {`"v1"`}}, true, `W/"v1"`},
		{"no type, client holds the strong tag", "gzip", `"v1"`, http.Header{"Etag": {`"v1"`}}, false, `"v1"`},
		{"no type, weakened tag but no coding taken", "", `W/"v1"`, http.Header{"Etag": {`"v1"`}}, false, `"v1"`},
		{"no type, no tag", "gzip", `W/"v1"`, http.Header{}, false, ""},
	}
	f := newFilter(t, 1024, "application/json")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.accept != "" {
				r.Header.Set("Accept-Encoding", tc.accept)
			}
			r.Header.Set("If-None-Match", tc.ifNoneMatch)
			rec := httptest.NewRecorder()
			w, done := f.WrapResponse(rec, r, &filter.Request{})
			for k, v := range tc.header {
				w.Header()[k] = v
			}
			w.WriteHeader(http.StatusNotModified)
			done()
			res := rec.Result()
			if res.StatusCode != http.StatusNotModified || rec.Body.Len() != 0 {
				t.Fatalf("status %d, %d body bytes", res.StatusCode, rec.Body.Len())
			}
			if got := slices.Contains(res.Header.Values("Vary"), "Accept-Encoding"); got != tc.vary {
				t.Errorf("Vary %q: has Accept-Encoding %v, want %v", res.Header.Values("Vary"), got, tc.vary)
			}
			if got := res.Header.Get("Etag"); got != tc.etag {
				t.Errorf("ETag %q, want %q", got, tc.etag)
			}
			if got := res.Header.Get("Content-Encoding"); got != tc.header.Get("Content-Encoding") {
				t.Errorf("Content-Encoding %q on a 304", got)
			}
		})
	}
}

// BenchmarkStreamResponse sends a 64 KiB JSON body of unknown length as the proxy does
// (header, Flush, then 32 KiB or 1 KiB writes, each flushed): "stateless" is the stream
// path, "pooled" the same body with min_bytes reached before the first flush, for the
// ratio the stream path gives up (sent-bytes).
func BenchmarkStreamResponse(b *testing.B) {
	body := jsonBody(64 << 10)
	f := newFilter(b, 1024, "application/json")
	for _, tc := range []struct {
		name       string
		writeSize  int
		headerOnly bool // flush after the header: a stream
	}{
		{"stateless/32KiB-writes", 32 << 10, true},
		{"stateless/1KiB-writes", 1 << 10, true},
		{"pooled/32KiB-writes", 32 << 10, false},
		{"pooled/1KiB-writes", 1 << 10, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Encoding", "gzip")
			q := &filter.Request{}
			contentType := []string{"application/json"}
			d := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				clear(d.header)
				d.header["Content-Type"] = contentType
				d.n = 0
				w, done := f.WrapResponse(d, r, q)
				w.WriteHeader(http.StatusOK)
				flusher := w.(http.Flusher)
				if tc.headerOnly {
					flusher.Flush()
				}
				for rest := body; len(rest) > 0; {
					n := min(len(rest), tc.writeSize)
					_, _ = w.Write(rest[:n])
					flusher.Flush()
					rest = rest[n:]
				}
				done()
			}
			b.ReportMetric(float64(d.n), "sent-bytes")
		})
	}
}
