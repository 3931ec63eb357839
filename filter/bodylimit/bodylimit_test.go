package bodylimit

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/filter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewOff(t *testing.T) {
	for _, limit := range []int64{0, -1} {
		if f := New(limit); f != nil {
			t.Errorf("New(%d) = %v, want nil", limit, f)
		}
	}
	var f *Filter
	if !f.ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")), &filter.Request{}) {
		t.Error("a nil Filter refused a request")
	}
}

func TestContentLength(t *testing.T) {
	const limit = 10
	cases := []struct {
		name    string
		length  int
		allowed bool
	}{
		{"under", limit - 1, true},
		{"equal", limit, true},
		{"over", limit + 1, false},
		{"far over", 1 << 20, false},
		{"empty", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Repeat("a", tc.length)
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			w := httptest.NewRecorder()
			q := &filter.Request{RequestID: "rid"}
			chain := &filter.Chain{Request: []filter.RequestFilter{New(limit)}}
			if got := chain.ServeRequest(w, r, q); got != tc.allowed {
				t.Fatalf("chain went on = %v, want %v", got, tc.allowed)
			}
			if tc.allowed {
				if q.Status != 0 || w.Body.Len() != 0 || w.Header().Get("Connection") != "" {
					t.Fatalf("allowed request answered: status %d, body %q, header %v", q.Status, w.Body.String(), w.Header())
				}
				got, err := io.ReadAll(r.Body)
				if err != nil || string(got) != body {
					t.Fatalf("body read %d bytes, err %v", len(got), err)
				}
				return
			}
			if w.Code != http.StatusRequestEntityTooLarge || q.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("refusal: response %d, q.Status %d; want 413", w.Code, q.Status)
			}
			if w.Header().Get("Connection") != "close" {
				t.Errorf("413 without Connection: close: %v", w.Header())
			}
			if !strings.Contains(w.Body.String(), `"status":413`) || !strings.Contains(w.Body.String(), `"request_id":"rid"`) {
				t.Errorf("413 body %q", w.Body.String())
			}
		})
	}
}

// TestThroughServer sends bodies over loopback to a real server whose handler runs the
// filter and then reads the body, answering 413 on *http.MaxBytesError as the proxy does.
func TestThroughServer(t *testing.T) {
	const limit = 1000
	f := New(limit)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.ServeRequest(w, r, &filter.Request{}) {
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			filter.WriteError(w, http.StatusRequestEntityTooLarge, "")
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
		}
	}))
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	cases := []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"length under", limit - 1, false, http.StatusOK},
		{"length equal", limit, false, http.StatusOK},
		{"length over", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"chunked under", limit - 1, true, http.StatusOK},
		{"chunked equal", limit, true, http.StatusOK},
		{"chunked over", limit + 1, true, http.StatusRequestEntityTooLarge},
		{"chunked far over", 1 << 20, true, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(strings.Repeat("b", tc.size))
			if tc.chunked {
				// A reader of unknown length makes the client send Transfer-Encoding: chunked.
				body = io.MultiReader(body)
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", res.StatusCode, got, tc.status)
			}
			if tc.status == http.StatusOK && string(got) != strconv.Itoa(tc.size) {
				t.Errorf("server read %s bytes, want %d", got, tc.size)
			}
			if tc.status != http.StatusOK && !res.Close {
				t.Errorf("a 413 left the connection open (the unread body would be taken for the next request)")
			}
		})
	}
}

func BenchmarkServeRequest(b *testing.B) {
	f := New(1 << 20)
	w := httptest.NewRecorder()
	q := &filter.Request{}
	for _, tc := range []struct {
		name   string
		length int64
	}{{"content-length", 512}, {"chunked", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
			body := r.Body
			r.ContentLength = tc.length
			b.ReportAllocs()
			for b.Loop() {
				r.Body = body
				if !f.ServeRequest(w, r, q) {
					b.Fatal("refused")
				}
			}
		})
	}
}
