package compress

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/switchyard/switchyard/filter"
)

const testTimeout = 10 * time.Second

// serve runs handler behind f on a loopback server, wrapped as the proxy wraps it, and
// returns the server and a client that neither adds Accept-Encoding nor decodes.
func serve(t *testing.T, f *Filter, handler http.HandlerFunc) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw, done := f.WrapResponse(w, r, &filter.Request{})
		defer done()
		handler(cw, r)
	}))
	client := &http.Client{Timeout: testTimeout, Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
	})
	return srv, client
}

// serveHTTP2 is serve over TLS with HTTP/2, whose writer flushes through its own path.
func serveHTTP2(t *testing.T, f *Filter, handler http.HandlerFunc) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw, done := f.WrapResponse(w, r, &filter.Request{})
		defer done()
		handler(cw, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	client := srv.Client()
	client.Timeout = testTimeout
	client.Transport.(*http.Transport).DisableCompression = true
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
	})
	return srv, client
}

func get(t *testing.T, client *http.Client, url, accept string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", accept)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// decoder reads a compressed stream as it arrives.
func decoder(t *testing.T, encoding string, r io.Reader) io.Reader {
	t.Helper()
	switch encoding {
	case "":
		return r
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		return zr
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("Content-Encoding %q", encoding)
	return nil
}

// TestEventStream sends server-sent events through the filter and has the client read
// each event before the server writes the next: the stream only advances if every Flush
// pushes a decodable block through the (stateless gzip) encoder and onto the connection.
// A client that takes only zstd gets the stream as it is.
func TestEventStream(t *testing.T) {
	for _, tc := range []struct {
		accept, encoding string
		http2            bool
	}{
		{"gzip", "gzip", false}, {"zstd", "", false}, {"zstd, gzip", "gzip", false},
		{"gzip", "gzip", true}, {"zstd", "", true},
	} {
		encoding := tc.encoding
		t.Run(fmt.Sprintf("%s/http2=%v", tc.accept, tc.http2), func(t *testing.T) {
			const events = 5
			read := make(chan int)
			f := newFilter(t, 1024, "text/event-stream")
			start := serve
			if tc.http2 {
				start = serveHTTP2
			}
			srv, client := start(t, f, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush() // as the proxy does for an unknown length
				for i := range events {
					fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
					w.(http.Flusher).Flush()
					select {
					case got := <-read:
						if got != i {
							t.Errorf("client read event %d, server sent %d", got, i)
							return
						}
					case <-time.After(testTimeout):
						t.Errorf("the client never read event %d: it did not arrive before the stream ended", i)
						return
					case <-r.Context().Done():
						return
					}
				}
			})
			res := get(t, client, srv.URL, tc.accept)
			if got := res.Header.Get("Content-Encoding"); got != encoding {
				t.Fatalf("Content-Encoding %q, want %q", got, encoding)
			}
			if tc.http2 != (res.ProtoMajor == 2) {
				t.Fatalf("served over %s", res.Proto)
			}
			lines := bufio.NewReader(decoder(t, encoding, res.Body))
			for i := range events {
				var event strings.Builder
				for {
					line, err := lines.ReadString('\n')
					if err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
					if line == "\n" {
						break
					}
					event.WriteString(line)
				}
				if want := fmt.Sprintf("id: %d\ndata: event %d\n", i, i); event.String() != want {
					t.Fatalf("event %d: %q, want %q", i, event.String(), want)
				}
				select {
				case read <- i:
				case <-time.After(testTimeout): // the server gave up waiting: it has reported why
					t.FailNow()
				}
			}
			if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
				t.Fatalf("after the last event: %q, %v", rest, err)
			}
		})
	}
}

// TestInformational sends 100 and 103 before a compressed final response: both reach the
// client as they were, without the final response's coding headers.
func TestInformational(t *testing.T) {
	f := newFilter(t, 10, "text/plain")
	body := strings.Repeat("informational ", 100)
	srv, client := serve(t, f, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusContinue)
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, body)
	})
	var mu sync.Mutex
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%d link=%q encoding=%q vary=%q", code, header.Get("Link"), header.Get("Content-Encoding"), header.Get("Vary")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	decoded, err := io.ReadAll(decoder(t, res.Header.Get("Content-Encoding"), res.Body))
	if err != nil || string(decoded) != body {
		t.Fatalf("final body %q, %v", decoded, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{`100 link="" encoding="" vary=""`, `103 link="</style.css>; rel=preload" encoding="" vary=""`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("1xx responses:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTrailers checks trailers declared before the body and ones set after it with
// http.TrailerPrefix, on a compressed body and on a small one sent as it is.
func TestTrailers(t *testing.T) {
	for _, size := range []int{5000, 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			f := newFilter(t, 100, "application/json")
			body := jsonBody(size)
			srv, client := serve(t, f, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Trailer", "X-Checksum")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(body)
				w.Header().Set("X-Checksum", "sum-1")
				w.Header().Set(http.TrailerPrefix+"X-Late", "late-1")
			})
			res := get(t, client, srv.URL, "gzip")
			wantEncoding := "gzip"
			if size < 100 {
				wantEncoding = ""
			}
			if got := res.Header.Get("Content-Encoding"); got != wantEncoding {
				t.Fatalf("Content-Encoding %q, want %q", got, wantEncoding)
			}
			raw, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := decode(t, wantEncoding, raw); !bytes.Equal(got, body) {
				t.Fatalf("body of %d bytes, want %d", len(got), len(body))
			}
			if res.Trailer.Get("X-Checksum") != "sum-1" || res.Trailer.Get("X-Late") != "late-1" {
				t.Fatalf("trailers %v", res.Trailer)
			}
		})
	}
}

// TestResponseController reaches the connection through the wrapper: deadlines, full
// duplex and, for a 101 upgrade, Hijack.
func TestResponseController(t *testing.T) {
	f := newFilter(t, 10, "text/plain")
	srv, client := serve(t, f, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(testTimeout)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "echo")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := rc.Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(testTimeout))
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo: " + line)
		_ = brw.Flush()
	})
	// The client's Timeout would wrap the body, hiding the connection: a context bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	res, err := client.Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Content-Encoding") != "" || res.Header.Get("Vary") != "" {
		t.Fatalf("upgrade answered %d with %v", res.StatusCode, res.Header)
	}
	conn, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body is not the connection: %T", res.Body)
	}
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("after the upgrade: %q, %v", line, err)
	}
}

// TestConcurrentResponses runs many responses at once, each with its own body, so writers
// and encoders reused from the pools would show up as one response's bytes in another's.
func TestConcurrentResponses(t *testing.T) {
	f := newFilter(t, 64, "text/plain")
	srv, client := serve(t, f, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		id := r.URL.Query().Get("id")
		for i := range 50 {
			fmt.Fprintf(w, "response %s line %d\n", id, i)
			if i%10 == 9 { // after min_bytes: pooled encoders, not a stream
				w.(http.Flusher).Flush()
			}
		}
	})
	var wg sync.WaitGroup
	for worker := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				id := fmt.Sprintf("%d-%d", worker, i)
				accept := []string{"gzip", "zstd", ""}[i%3]
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/?id="+id, nil)
				req.Header.Set("Accept-Encoding", accept)
				res, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				raw, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Error(err)
					return
				}
				if got := res.Header.Get("Content-Encoding"); got != accept {
					t.Errorf("%s: Content-Encoding %q, want %q", id, got, accept)
					return
				}
				var want strings.Builder
				for line := range 50 {
					fmt.Fprintf(&want, "response %s line %d\n", id, line)
				}
				if got, err := decodeBody(accept, raw); err != nil || string(got) != want.String() {
					t.Errorf("%s: body %.80q... (%v), want %.80q...", id, got, err, want.String())
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestContentLengthOverServer has net/http check the framing: a compressed response must
// not keep the upstream's Content-Length, and one passed through must keep it.
func TestContentLengthOverServer(t *testing.T) {
	for _, size := range []int{4000, 50} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			body := jsonBody(size)
			f := newFilter(t, 100, "application/json")
			srv, client := serve(t, f, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.WriteHeader(http.StatusOK)
				if _, err := w.Write(body); err != nil {
					t.Errorf("write: %v", err)
				}
			})
			res := get(t, client, srv.URL, "zstd")
			raw, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			encoding := res.Header.Get("Content-Encoding")
			if wantEncoding := map[bool]string{true: "zstd", false: ""}[size >= 100]; encoding != wantEncoding {
				t.Fatalf("Content-Encoding %q, want %q", encoding, wantEncoding)
			}
			// net/http may count a compressed body small enough to end before its first
			// flush; any length it sends must be the encoded body's.
			if encoding == "" && res.ContentLength != int64(size) ||
				encoding != "" && res.ContentLength != -1 && res.ContentLength != int64(len(raw)) {
				t.Errorf("Content-Length %d with Content-Encoding %q", res.ContentLength, encoding)
			}
			if got := decode(t, encoding, raw); !bytes.Equal(got, body) {
				t.Fatalf("body of %d bytes, want %d", len(got), len(body))
			}
		})
	}
}
