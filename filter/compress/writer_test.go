package compress

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/switchyard/switchyard/filter"
)

// callLog is a ResponseWriter that logs the calls it gets, with the header's coding at
// each status line.
type callLog struct {
	header http.Header
	calls  []string
	body   bytes.Buffer
}

func (c *callLog) Header() http.Header { return c.header }
func (c *callLog) WriteHeader(status int) {
	c.calls = append(c.calls, fmt.Sprintf("status %d %q", status, c.header.Get("Content-Encoding")))
}
func (c *callLog) Write(p []byte) (int, error) {
	if len(c.calls) == 0 || !strings.HasPrefix(c.calls[len(c.calls)-1], "write") {
		c.calls = append(c.calls, "write")
	}
	return c.body.Write(p)
}
func (c *callLog) Flush() { c.calls = append(c.calls, "flush") }

func TestCallSequence(t *testing.T) {
	cases := []struct {
		name  string
		steps func(w http.ResponseWriter)
		want  []string
	}{
		{"nothing written", func(w http.ResponseWriter) {}, nil},
		{"small body held until finish", func(w http.ResponseWriter) {
			w.WriteHeader(200)
			_, _ = w.Write([]byte("small"))
		}, []string{`status 200 ""`, "write"}},
		{"1xx first, untouched", func(w http.ResponseWriter) {
			w.WriteHeader(103)
			w.WriteHeader(200)
			_, _ = w.Write(bytes.Repeat([]byte("x"), 200))
		}, []string{`status 103 ""`, `status 200 "gzip"`, "write"}},
		{"second final status dropped", func(w http.ResponseWriter) {
			w.WriteHeader(200)
			w.WriteHeader(500)
			_, _ = w.Write(bytes.Repeat([]byte("x"), 200))
		}, []string{`status 200 "gzip"`, "write"}},
		{"Write without WriteHeader is a 200", func(w http.ResponseWriter) {
			_, _ = w.Write(bytes.Repeat([]byte("x"), 200))
		}, []string{`status 200 "gzip"`, "write"}},
		{"Flush before anything decides a 200 stream", func(w http.ResponseWriter) {
			w.(http.Flusher).Flush()
		}, []string{`status 200 "gzip"`, "flush", "write"}},
		{"Flush of a held body: encoder first, then the connection", func(w http.ResponseWriter) {
			w.WriteHeader(200)
			_, _ = w.Write([]byte("event"))
			w.(http.Flusher).Flush()
		}, []string{`status 200 "gzip"`, "write", "flush", "write"}},
		{"101 passes", func(w http.ResponseWriter) {
			w.WriteHeader(101)
		}, []string{`status 101 ""`}},
	}
	f := newFilter(t, 100, "text/plain")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Encoding", "gzip")
			log := &callLog{header: http.Header{"Content-Type": {"text/plain"}}}
			w, done := f.WrapResponse(log, r, &filter.Request{})
			tc.steps(w)
			done()
			done() // a second call does nothing
			if strings.Join(log.calls, "; ") != strings.Join(tc.want, "; ") {
				t.Fatalf("calls:\n %s\nwant:\n %s", strings.Join(log.calls, "; "), strings.Join(tc.want, "; "))
			}
		})
	}
}

// noFlusher hides the Flush of the writer it wraps, reachable only through Unwrap.
type noFlusher struct{ http.ResponseWriter }

func (n noFlusher) Unwrap() http.ResponseWriter { return n.ResponseWriter }

func TestFlushThroughUnwrap(t *testing.T) {
	f := newFilter(t, 100, "text/plain")
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	log := &callLog{header: http.Header{"Content-Type": {"text/plain"}}}
	w, done := f.WrapResponse(noFlusher{log}, r, &filter.Request{})
	w.WriteHeader(200)
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	done()
	if !strings.Contains(strings.Join(log.calls, ";"), "flush") {
		t.Fatalf("the flush did not reach the writer: %v", log.calls)
	}
}

// TestRoundTrip writes a large body of mixed text and noise in uneven pieces with flushes
// in between, across many encoder blocks, and decodes it again.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var body bytes.Buffer
	for body.Len() < 1<<20 {
		if rng.IntN(4) == 0 {
			noise := make([]byte, rng.IntN(2000))
			for i := range noise {
				noise[i] = byte(rng.Uint32())
			}
			body.Write(noise)
		} else {
			body.Write(jsonBody(rng.IntN(5000)))
		}
	}
	f := newFilter(t, 1024, "application/octet-stream")
	for _, encoding := range []string{"gzip", "zstd"} {
		t.Run(encoding, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Encoding", encoding)
			rec := httptest.NewRecorder()
			w, done := f.WrapResponse(rec, r, &filter.Request{})
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			for rest := body.Bytes(); len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(70000))
				if _, err := w.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
				if rng.IntN(3) == 0 {
					w.(http.Flusher).Flush()
				}
			}
			done()
			if got := rec.Header().Get("Content-Encoding"); got != encoding {
				t.Fatalf("Content-Encoding %q", got)
			}
			if got := decode(t, encoding, rec.Body.Bytes()); !bytes.Equal(got, body.Bytes()) {
				t.Fatalf("decoded %d bytes, sent %d (or they differ)", len(got), body.Len())
			}
			if encoding == "zstd" {
				// Frames must fit a decoder that allows no more than the configured window.
				zr, err := zstd.NewReader(bytes.NewReader(rec.Body.Bytes()),
					zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdWindow))
				if err != nil {
					t.Fatal(err)
				}
				defer zr.Close()
				if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, body.Bytes()) {
					t.Fatalf("decoding with a %d-byte window: %d bytes, %v", zstdWindow, len(got), err)
				}
			}
			t.Logf("%s: %d -> %d bytes", encoding, body.Len(), rec.Body.Len())
		})
	}
}

// TestPassThroughAllocs: a response that is not compressed costs the writer and its finish
// function, nothing more.
func TestPassThroughAllocs(t *testing.T) {
	f := newFilter(t, 1024, "application/json")
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	body := []byte("{}")
	d := &discardWriter{header: http.Header{}}
	q := &filter.Request{}
	for _, contentType := range []string{"image/png", "application/json"} {
		value := []string{contentType}
		allocs := testing.AllocsPerRun(200, func() {
			clear(d.header)
			d.header["Content-Type"] = value
			w, done := f.WrapResponse(d, r, q)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body) // held, then written as it is by done
			done()
		})
		if allocs > 2 {
			t.Errorf("%s: %v allocations per passed-through response, want 2", contentType, allocs)
		}
	}
}

// TestAfterFinish: the writer outlives its response safely: writes fail, the connection is
// still this request's.
func TestAfterFinish(t *testing.T) {
	f := newFilter(t, 10, "text/plain")
	for _, size := range []int{0, 5, 100} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", "zstd")
		rec := httptest.NewRecorder()
		w, done := f.WrapResponse(rec, r, &filter.Request{})
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bytes.Repeat([]byte("a"), size))
		done()
		sent := rec.Body.Len()
		if _, err := w.Write([]byte("late")); err != errFinished {
			t.Errorf("size %d: write after finish: %v", size, err)
		}
		if err := http.NewResponseController(w).Flush(); err != errFinished {
			t.Errorf("size %d: flush after finish: %v", size, err)
		}
		if got := w.(interface{ Unwrap() http.ResponseWriter }).Unwrap(); got != rec {
			t.Errorf("size %d: Unwrap after finish is %T", size, got)
		}
		if rec.Body.Len() != sent {
			t.Errorf("size %d: %d bytes reached the client after finish", size, rec.Body.Len()-sent)
		}
	}
}
