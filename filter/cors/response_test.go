package cors

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestActualResponse runs the response side as the proxy does: wrap, copy the upstream's
// fields into w.Header() (appending to keys already there), write the status.
func TestActualResponse(t *testing.T) {
	base := config.CORS{
		AllowOrigins:  []string{"https://app.example.com", "https://*.example.org"},
		ExposeHeaders: []string{"X-Total", "X-Page"},
	}
	withCredentials := base
	withCredentials.AllowOrigins = []string{"https://app.example.com", "https://a.example.org"} // no wildcard with credentials
	withCredentials.AllowCredentials = true
	anyOrigin := config.CORS{AllowOrigins: []string{"*"}}

	upstreamCORS := http.Header{
		allowOriginField:                       {"*"},
		allowCredentialsField:                  {"true"},
		exposeHeadersField:                     {"X-Secret"},
		"Access-Control-Allow-Private-Network": {"true"},
		"Content-Type":                         {"text/plain"},
	}
	tests := []struct {
		name     string
		cors     config.CORS
		origin   []string
		upstream http.Header
		want     http.Header
	}{
		{
			name:     "allowed origin: the upstream's CORS fields are replaced",
			cors:     base,
			origin:   []string{"https://app.example.com"},
			upstream: upstreamCORS,
			want: http.Header{"Content-Type": {"text/plain"}, allowOriginField: {"https://app.example.com"},
				exposeHeadersField: {"X-Total, X-Page"}, "Vary": {"Origin"}},
		},
		{
			name:     "listed origin with credentials",
			cors:     withCredentials,
			origin:   []string{"https://a.example.org"},
			upstream: http.Header{"Vary": {"Accept-Encoding"}},
			want: http.Header{allowOriginField: {"https://a.example.org"}, allowCredentialsField: {"true"},
				exposeHeadersField: {"X-Total, X-Page"}, "Vary": {"Accept-Encoding", "Origin"}},
		},
		{
			name:     "any origin",
			cors:     anyOrigin,
			origin:   []string{"https://x.test"},
			upstream: http.Header{allowOriginField: {"https://x.test"}},
			want:     http.Header{allowOriginField: {"*"}, "Vary": {"Origin"}},
		},
		{
			name:     "refused origin: no CORS fields at all",
			cors:     base,
			origin:   []string{"https://evil.test"},
			upstream: upstreamCORS,
			want:     http.Header{"Content-Type": {"text/plain"}, "Vary": {"Origin"}},
		},
		{
			name:     "two origins are refused",
			cors:     base,
			origin:   []string{"https://app.example.com", "https://app.example.com"},
			upstream: http.Header{},
			want:     http.Header{"Vary": {"Origin"}},
		},
		{
			name:     "no origin: untouched but for Vary",
			cors:     base,
			upstream: http.Header{allowOriginField: {"*"}, "Vary": {"Accept-Encoding, Cookie"}},
			want:     http.Header{allowOriginField: {"*"}, "Vary": {"Accept-Encoding, Cookie", "Origin"}},
		},
		{
			name:     "Vary already names Origin",
			cors:     base,
			origin:   []string{"https://app.example.com"},
			upstream: http.Header{"Vary": {"accept-encoding,  origin"}},
			want: http.Header{allowOriginField: {"https://app.example.com"}, exposeHeadersField: {"X-Total, X-Page"},
				"Vary": {"accept-encoding,  origin"}},
		},
		{
			name:     "Vary is *",
			cors:     base,
			upstream: http.Header{"Vary": {"*"}},
			want:     http.Header{"Vary": {"*"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustNew(t, &tt.cors)
			r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/api", nil)
			if tt.origin != nil {
				r.Header["Origin"] = tt.origin
			}
			q := &filter.Request{}
			chain := &filter.Chain{Request: []filter.RequestFilter{f}, Response: []filter.ResponseFilter{f}}
			rec := httptest.NewRecorder()
			if !chain.ServeRequest(rec, r, q) {
				t.Fatal("an actual request was answered by the filter")
			}
			w, done := chain.WrapResponse(rec, r, q)
			copyAppending(w.Header(), tt.upstream.Clone())
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "hello")
			done()
			if got := rec.Result().Header; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("header\n got %v\nwant %v", got, tt.want)
			}
			if rec.Body.String() != "hello" {
				t.Fatalf("body %q", rec.Body)
			}
		})
	}
}

// TestPreflightNotWrapped: were the chain to wrap the writer before the request filters
// ran, the preflight's own answer must keep its CORS fields.
func TestPreflightNotWrapped(t *testing.T) {
	f := mustNew(t, &config.CORS{AllowOrigins: []string{"https://app.example.com"}})
	r := httptest.NewRequest(http.MethodOptions, "/", nil)
	r.Header = http.Header{"Origin": {"https://app.example.com"}, requestMethodField: {"GET"}}
	rec := httptest.NewRecorder()
	w, done := f.WrapResponse(rec, r, &filter.Request{})
	if w != http.ResponseWriter(rec) || done != nil {
		t.Fatal("a preflight's writer was wrapped")
	}
}

// copyAppending adds src to dst as the proxy's copyResponseHeaders does.
func copyAppending(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append(dst[k], vv...)
	}
}

// TestThroughListener drives the filter through a real listener in front of a real upstream
// that sends its own CORS fields, wired as the proxy wires a chain.
func TestThroughListener(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(allowOriginField, "*")
		w.Header().Set("Vary", "Accept-Encoding")
		_, _ = io.WriteString(w, "from upstream "+r.Method)
	}))
	defer upstream.Close()
	f := mustNew(t, &config.CORS{
		AllowOrigins: []string{"https://app.example.com"}, AllowMethods: []string{"PUT"},
		AllowHeaders: []string{"X-Token"}, AllowCredentials: true, MaxAge: time.Hour,
	})
	chain := &filter.Chain{Request: []filter.RequestFilter{f}, Response: []filter.ResponseFilter{f}}
	client := &http.Client{Timeout: 5 * time.Second}
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := &filter.Request{ClientIP: "127.0.0.1"}
		if !chain.ServeRequest(w, r, q) {
			return
		}
		w, done := chain.WrapResponse(w, r, q)
		defer done()
		out, err := http.NewRequestWithContext(r.Context(), r.Method, upstream.URL+r.URL.Path, nil)
		if err != nil {
			filter.WriteError(w, http.StatusBadGateway, "")
			return
		}
		resp, err := client.Do(out)
		if err != nil {
			filter.WriteError(w, http.StatusBadGateway, "")
			return
		}
		defer resp.Body.Close()
		copyAppending(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer gateway.Close()
	defer client.CloseIdleConnections()

	do := func(method string, header http.Header) (*http.Response, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, gateway.URL+"/api", nil)
		req.Header = header
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	resp, body := do(http.MethodOptions, http.Header{"Origin": {"https://app.example.com"},
		requestMethodField: {"PUT"}, requestHeadersField: {"x-token"}})
	if resp.StatusCode != 204 || body != "" || resp.Header.Get(allowOriginField) != "https://app.example.com" ||
		resp.Header.Get(allowHeadersField) != "x-token" || resp.Header.Get(maxAgeField) != "3600" ||
		resp.Header.Get(allowCredentialsField) != "true" {
		t.Fatalf("preflight: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	resp, body = do(http.MethodOptions, http.Header{"Origin": {"https://example.com"}, requestMethodField: {"PUT"}})
	if resp.StatusCode != 403 || resp.Header.Get(allowOriginField) != "" || strings.Contains(body, "upstream") {
		t.Fatalf("refused preflight: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	resp, body = do(http.MethodPut, http.Header{"Origin": {"https://app.example.com"}})
	if body != "from upstream PUT" || !reflect.DeepEqual(resp.Header[allowOriginField], []string{"https://app.example.com"}) ||
		!reflect.DeepEqual(resp.Header["Vary"], []string{"Accept-Encoding", "Origin"}) {
		t.Fatalf("actual request: %q %v", body, resp.Header)
	}

	resp, body = do(http.MethodGet, http.Header{})
	if body != "from upstream GET" || resp.Header.Get(allowOriginField) != "*" ||
		!reflect.DeepEqual(resp.Header["Vary"], []string{"Accept-Encoding", "Origin"}) {
		t.Fatalf("request without Origin: %q %v", body, resp.Header)
	}
}

// TestAllocs pins the per-request cost of the common cases.
func TestAllocs(t *testing.T) {
	f := mustNew(t, &config.CORS{
		AllowOrigins: []string{"https://app.example.com", "https://*.example.org"},
		AllowMethods: []string{"PUT"}, AllowHeaders: []string{"X-Token"}, MaxAge: time.Minute,
	})
	rec := httptest.NewRecorder()
	q := &filter.Request{}
	tests := []struct {
		name   string
		method string
		header http.Header
		want   float64
	}{
		{"preflight, exact origin", http.MethodOptions, http.Header{"Origin": {"https://app.example.com"}, requestMethodField: {"PUT"}, requestHeadersField: {"x-token"}}, 0},
		{"actual, exact origin", http.MethodGet, http.Header{"Origin": {"https://app.example.com"}}, 1},
		{"actual, no origin", http.MethodGet, http.Header{}, 1},
		{"actual, refused origin", http.MethodGet, http.Header{"Origin": {"https://evil.test"}}, 1},
		{"actual, wildcard origin", http.MethodGet, http.Header{"Origin": {"https://a.example.org"}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/", nil)
			r.Header = tt.header
			h := rec.Header()
			got := testing.AllocsPerRun(200, func() {
				if tt.method == http.MethodOptions {
					f.ServeRequest(rec, r, q)
					return
				}
				wrapped, _ = f.WrapResponse(rec, r, q)
			})
			clear(h)
			if got != tt.want {
				t.Errorf("%v allocs, want %v", got, tt.want)
			}
		})
	}
}

// wrapped keeps wrappers reachable so escape analysis treats them as the proxy's use does.
var wrapped http.ResponseWriter

// BenchmarkPreflight answers an allowed preflight.
func BenchmarkPreflight(b *testing.B) {
	f := mustNew(b, &config.CORS{
		AllowOrigins: []string{"https://app.example.com", "https://*.example.org"},
		AllowMethods: []string{"GET", "PUT"}, AllowHeaders: []string{"X-Token", "X-Trace"}, MaxAge: time.Minute,
	})
	r := httptest.NewRequest(http.MethodOptions, "/", nil)
	r.Header = http.Header{"Origin": {"https://app.example.com"}, requestMethodField: {"PUT"}, requestHeadersField: {"content-type,x-token,x-trace"}}
	w := &discardWriter{header: http.Header{}}
	q := &filter.Request{}
	b.ReportAllocs()
	for b.Loop() {
		f.ServeRequest(w, r, q)
	}
}

// BenchmarkResponse wraps an actual response and writes its header, an upstream's CORS field
// and Vary already in the map.
func BenchmarkResponse(b *testing.B) {
	f := mustNew(b, &config.CORS{
		AllowOrigins:  []string{"https://app.example.com", "https://*.example.org"},
		ExposeHeaders: []string{"X-Total"},
	})
	for _, c := range []struct{ name, origin string }{
		{"exact", "https://app.example.com"},
		{"wildcard", "https://a.b.example.org"},
		{"refused", "https://evil.test"},
		{"none", ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if c.origin != "" {
				r.Header.Set("Origin", c.origin)
			}
			w := &discardWriter{header: http.Header{}}
			q := &filter.Request{}
			upstreamOrigin, upstreamVary := []string{"*"}, []string{"Accept-Encoding"}
			b.ReportAllocs()
			for b.Loop() {
				w.header[allowOriginField] = upstreamOrigin
				w.header["Vary"] = upstreamVary
				ww, _ := f.WrapResponse(w, r, q)
				ww.WriteHeader(http.StatusOK)
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps one header map and writes nowhere.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
