package compress

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newFilter(t testing.TB, minBytes int, types ...string) *Filter {
	t.Helper()
	f, err := New(&config.Compress{MinBytes: minBytes, Types: types})
	if err != nil || f == nil {
		t.Fatalf("New: %v, %v", f, err)
	}
	return f
}

// decode undoes the response's Content-Encoding, failing the test on an error.
func decode(t testing.TB, encoding string, body []byte) []byte {
	t.Helper()
	out, err := decodeBody(encoding, body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decodeBody undoes a Content-Encoding with decoders independent of the encoder where one
// exists (the standard library's gzip).
func decodeBody(encoding string, body []byte) ([]byte, error) {
	switch encoding {
	case "":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("gzip header: %w", err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		return out, nil
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("zstd body: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected Content-Encoding %q", encoding)
}

// jsonBody is a body of n bytes of JSON-looking text that compresses well.
func jsonBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i := 0; b.Len() < n; i++ {
		b.WriteString(`{"id":` + strconv.Itoa(i) + `,"name":"user-` + strconv.Itoa(i*7) + `","active":true,"tags":["a","b"]},`)
	}
	return b.Bytes()[:n]
}

func TestConditions(t *testing.T) {
	type response struct {
		status int
		header http.Header
		size   int
	}
	json := func(extra ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = append(h[extra[i]], extra[i+1])
		}
		return h
	}
	const minBytes = 100
	cases := []struct {
		name     string
		method   string
		accept   string // "" sends no Accept-Encoding
		res      response
		encoding string // expected Content-Encoding
		vary     bool   // expected Vary: Accept-Encoding
	}{
		{"gzip", "GET", "gzip", response{200, json(), 500}, "gzip", true},
		{"zstd preferred at equal q", "GET", "gzip, zstd", response{200, json(), 500}, "zstd", true},
		{"gzip preferred by q", "GET", "zstd;q=0.5, gzip", response{200, json(), 500}, "gzip", true},
		{"no Accept-Encoding", "GET", "", response{200, json(), 500}, "", true},
		{"only unsupported codings", "GET", "br, deflate", response{200, json(), 500}, "", true},
		{"refused codings", "GET", "gzip;q=0, zstd;q=0", response{200, json(), 500}, "", true},
		{"HEAD", "HEAD", "gzip", response{200, json("Content-Length", "500"), 0}, "", true},
		{"error status compressed", "GET", "gzip", response{404, json(), 500}, "gzip", true},
		{"204", "GET", "gzip", response{204, json(), 0}, "", false},
		{"304", "GET", "gzip", response{304, json(), 0}, "", true},
		{"304 of a type not listed", "GET", "gzip", response{304, http.Header{"Content-Type": {"image/png"}}, 0}, "", false},
		{"206", "GET", "gzip", response{206, json("Content-Range", "bytes 0-499/1000"), 500}, "", false},
		{"Content-Range on 200", "GET", "gzip", response{200, json("Content-Range", "bytes 0-499/500"), 500}, "", false},
		{"already encoded", "GET", "gzip", response{200, json("Content-Encoding", "br"), 500}, "", false},
		{"no-transform", "GET", "gzip", response{200, json("Cache-Control", "public, No-Transform"), 500}, "", false},
		{"other Cache-Control", "GET", "gzip", response{200, json("Cache-Control", "max-age=60, no-cache=\"Set-Cookie\""), 500}, "gzip", true},
		{"type not listed", "GET", "gzip", response{200, http.Header{"Content-Type": {"image/png"}}, 500}, "", false},
		{"no Content-Type", "GET", "gzip", response{200, http.Header{}, 500}, "", false},
		{"type with parameters and case", "GET", "gzip", response{200, http.Header{"Content-Type": {"Text/HTML; charset=utf-8"}}, 500}, "gzip", true},
		{"wildcard type", "GET", "gzip", response{200, http.Header{"Content-Type": {"text/css"}}, 500}, "gzip", true},
		{"wildcard needs a subtype", "GET", "gzip", response{200, http.Header{"Content-Type": {"text/"}}, 500}, "", false},
		{"Content-Length at min", "GET", "gzip", response{200, json("Content-Length", "100"), 100}, "gzip", true},
		{"Content-Length under min", "GET", "gzip", response{200, json("Content-Length", "99"), 99}, "", true},
		{"Content-Length unreadable", "GET", "gzip", response{200, json("Content-Length", "x"), 500}, "gzip", true},
		{"unknown length at min", "GET", "gzip", response{200, json(), 100}, "gzip", true},
		{"unknown length under min", "GET", "gzip", response{200, json(), 99}, "", true},
		{"empty body", "GET", "gzip", response{200, json(), 0}, "", true},
		{"identity refused but too small", "GET", "gzip, identity;q=0", response{200, json(), 10}, "", true},
	}
	f := newFilter(t, minBytes, "application/json", "text/*")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			if tc.accept != "" {
				r.Header.Set("Accept-Encoding", tc.accept)
			}
			rec := httptest.NewRecorder()
			w, done := f.WrapResponse(rec, r, &filter.Request{})
			for k, v := range tc.res.header {
				w.Header()[k] = v
			}
			body := jsonBody(tc.res.size)
			w.WriteHeader(tc.res.status)
			// Several writes, so the held body crosses min_bytes mid-write.
			for rest := body; len(rest) > 0; {
				n := min(len(rest), 37)
				if _, err := w.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			done()

			res := rec.Result()
			if res.StatusCode != tc.res.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.res.status)
			}
			if got := res.Header.Get("Content-Encoding"); got != tc.encoding && tc.res.header.Get("Content-Encoding") == "" {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.encoding)
			}
			if got := slices.Contains(res.Header.Values("Vary"), "Accept-Encoding"); got != tc.vary {
				t.Errorf("Vary %q: has Accept-Encoding %v, want %v", res.Header.Values("Vary"), got, tc.vary)
			}
			got := decode(t, tc.encoding, rec.Body.Bytes())
			if !bytes.Equal(got, body) {
				t.Fatalf("body: %d bytes, want the %d sent", len(got), len(body))
			}
			if tc.encoding != "" && res.Header.Get("Content-Length") != "" {
				t.Errorf("compressed with Content-Length %q", res.Header.Get("Content-Length"))
			}
			if tc.encoding == "" && tc.res.header.Get("Content-Length") != "" && res.Header.Get("Content-Length") != tc.res.header.Get("Content-Length") {
				t.Errorf("Content-Length changed on a response sent as is: %q", res.Header.Get("Content-Length"))
			}
		})
	}
}

func TestCompressedHeaders(t *testing.T) {
	cases := []struct {
		name   string
		header http.Header
		want   http.Header // expected values; nil value: header absent
	}{
		{"strong ETag weakened", http.Header{"Etag": {`"abc"`}}, http.Header{"Etag": {`W/"abc"`}}},
		{"weak ETag kept", http.Header{"Etag": {`W/"abc"`}}, http.Header{"Etag": {`W/"abc"`}}},
		{"Accept-Ranges dropped", http.Header{"Accept-Ranges": {"bytes"}}, http.Header{"Accept-Ranges": nil}},
		{"Content-Length dropped", http.Header{"Content-Length": {"2000"}}, http.Header{"Content-Length": nil}},
		{"Vary appended", http.Header{"Vary": {"Origin"}}, http.Header{"Vary": {"Origin", "Accept-Encoding"}}},
		{"Vary not duplicated", http.Header{"Vary": {"Origin, accept-encoding"}}, http.Header{"Vary": {"Origin, accept-encoding"}}},
		{"Vary * kept", http.Header{"Vary": {"*"}}, http.Header{"Vary": {"*"}}},
	}
	f := newFilter(t, 100, "application/json")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Accept-Encoding", "gzip")
			rec := httptest.NewRecorder()
			w, done := f.WrapResponse(rec, r, &filter.Request{})
			w.Header().Set("Content-Type", "application/json")
			for k, v := range tc.header {
				w.Header()[k] = v
			}
			w.WriteHeader(200)
			_, _ = w.Write(jsonBody(2000))
			done()
			res := rec.Result()
			if res.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("not compressed: %v", res.Header)
			}
			for k, want := range tc.want {
				if got := res.Header[k]; !slices.Equal(got, want) {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	off := false
	on := true
	cases := []struct {
		name    string
		cfg     *config.Compress
		nilF    bool
		wantErr string
	}{
		{"nil block", nil, true, ""},
		{"disabled", &config.Compress{Enabled: &off, MinBytes: 1}, true, ""},
		{"enabled", &config.Compress{Enabled: &on, MinBytes: 1024, Types: []string{"text/*"}}, false, ""},
		{"no types", &config.Compress{Enabled: &on, MinBytes: 1024}, true, "compress.types: empty"},
		{"no enabled key", &config.Compress{MinBytes: 0, Types: []string{"text/plain"}}, false, ""},
		{"negative min", &config.Compress{MinBytes: -1}, true, "compress.min_bytes"},
		{"no slash", &config.Compress{Types: []string{"text"}}, true, `compress.types[0]: "text"`},
		{"any type", &config.Compress{Types: []string{"text/*", "*/*"}}, true, "compress.types[1]"},
		{"star inside a subtype is literal", &config.Compress{Types: []string{"text/h*"}}, false, ""},
		{"empty subtype", &config.Compress{Types: []string{"text/"}}, true, "compress.types[0]"},
		{"space inside", &config.Compress{Types: []string{"text /html"}}, true, "compress.types[0]"},
		{"parameters", &config.Compress{Types: []string{"text/html; charset=utf-8"}}, true, "compress.types[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.cfg)
			if (f == nil) != tc.nilF {
				t.Errorf("filter %v, want nil %v", f, tc.nilF)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	f := newFilter(t, 0, "text/*", "Application/JSON", "text/h*")
	for typ, want := range map[string]bool{
		"text/plain": true, "TEXT/HTML; charset=utf-8": true, "application/json": true,
		"text/h*": true, "application/json+x": false, "image/png": false, "text": false, "": false,
	} {
		if got := f.typeListed([]string{typ}); got != want {
			t.Errorf("type %q listed: %v, want %v", typ, got, want)
		}
	}
}
