package forward

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

func TestRelay(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		answer     http.Header
		body       string
		wantHeader http.Header // the fields the client gets, besides X-Request-Id and Content-Length
		wantBody   string
	}{
		{
			name:       "401 with its challenge",
			status:     http.StatusUnauthorized,
			answer:     http.Header{"Www-Authenticate": {`Bearer realm="shop"`}, "Content-Type": {"application/json"}},
			body:       `{"error":"login"}`,
			wantHeader: http.Header{"Www-Authenticate": {`Bearer realm="shop"`}, "Content-Type": {"application/json"}},
			wantBody:   `{"error":"login"}`,
		},
		{
			name:       "302 to the login page, not followed",
			status:     http.StatusFound,
			answer:     http.Header{"Location": {"/login?rd=%2Fcart"}, "Set-Cookie": {"csrf=1; HttpOnly", "state=2"}},
			wantHeader: http.Header{"Location": {"/login?rd=%2Fcart"}, "Set-Cookie": {"csrf=1; HttpOnly", "state=2"}, "Content-Type": nil},
		},
		{
			name:       "403 body",
			status:     http.StatusForbidden,
			answer:     http.Header{"Content-Type": {"text/plain"}},
			body:       "you shall not pass",
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   "you shall not pass",
		},
		{
			name:       "500 relayed as sent",
			status:     http.StatusInternalServerError,
			answer:     http.Header{"Content-Type": {"text/plain"}, "Retry-After": {"5"}},
			body:       "oops",
			wantHeader: http.Header{"Content-Type": {"text/plain"}, "Retry-After": {"5"}},
			wantBody:   "oops",
		},
		{
			name:       "hop-by-hop, nominated and managed fields dropped",
			status:     http.StatusUnauthorized,
			answer:     http.Header{"Connection": {"X-Internal"}, "X-Internal": {"secret"}, "Keep-Alive": {"timeout=5"}, "Alt-Svc": {`h3=":443"`}, "X-Request-Id": {"auth-service-id"}, "Proxy-Authenticate": {"Basic"}, "Upgrade": {"h2c"}, "Content-Type": {"text/plain"}},
			body:       "no",
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   "no",
		},
		{
			name:       "304 without a body",
			status:     http.StatusNotModified,
			answer:     http.Header{"Etag": {`"v1"`}},
			wantHeader: http.Header{"Etag": {`"v1"`}, "Content-Type": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var followed atomic.Int32
			service, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/login") {
					followed.Add(1)
				}
				for k, v := range tt.answer {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			m := newMechanism(t, &config.ForwardAuth{URL: service + "/check", Timeout: 10 * time.Second, ResponseHeaders: []string{"X-User-Id"}})
			r, q := clientRequest("/cart")
			before := r.Header.Clone()
			w := httptest.NewRecorder()
			w.Header().Set("X-Request-Id", "req-42") // the gateway sets it before the chain runs
			d := m.Authenticate(w, r, q)
			want := auth.Decision{Result: auth.Answered, Reason: "denied", Status: tt.status}
			if d != want {
				t.Fatalf("decision %+v, want %+v", d, want)
			}
			if w.Code != tt.status || w.Body.String() != tt.wantBody {
				t.Errorf("client got %d %q, want %d %q", w.Code, w.Body.String(), tt.status, tt.wantBody)
			}
			header := w.Header().Clone()
			if got := header.Get("X-Request-Id"); got != "req-42" {
				t.Errorf("X-Request-Id %q, want the gateway's", got)
			}
			delete(header, "X-Request-Id")
			if tt.status != http.StatusNotModified {
				if got := header.Get("Content-Length"); got != strconv.Itoa(len(tt.wantBody)) {
					t.Errorf("Content-Length %q, want %d", got, len(tt.wantBody))
				}
			}
			delete(header, "Content-Length")
			delete(header, "Date") // the service's, relayed
			if !reflect.DeepEqual(header, tt.wantHeader) {
				t.Errorf("client got fields\n%v\nwant\n%v", header, tt.wantHeader)
			}
			if followed.Load() != 0 {
				t.Error("the redirect was followed")
			}
			if !reflect.DeepEqual(r.Header, before) {
				t.Errorf("a request that was not admitted was edited: %v", r.Header)
			}
		})
	}
}

// TestRelayGRPC: a gRPC request is denied in gRPC form (HTTP 200, the status as grpc-status,
// no body), keeping the service's fields.
func TestRelayGRPC(t *testing.T) {
	tests := []struct {
		status   int
		wantCode int
	}{
		{http.StatusUnauthorized, filter.GRPCUnauthenticated},
		{http.StatusForbidden, filter.GRPCPermissionDenied},
		{http.StatusFound, filter.GRPCCode(http.StatusFound)},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			service, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Www-Authenticate", `Bearer realm="shop"`)
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "<html>login</html>")
			})
			m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second})
			r, q := clientRequest("/pkg.Svc/Call")
			q.GRPC = true
			w := httptest.NewRecorder()
			d := m.Authenticate(w, r, q)
			if want := (auth.Decision{Result: auth.Answered, Reason: "denied", Status: tt.status}); d != want {
				t.Fatalf("decision %+v, want %+v", d, want)
			}
			h := w.Header()
			if w.Code != http.StatusOK || w.Body.Len() != 0 || h.Get("Content-Type") != "application/grpc" {
				t.Fatalf("client got %d %v %q, want a Trailers-Only gRPC answer", w.Code, h, w.Body)
			}
			if got := h.Get("Grpc-Status"); got != strconv.Itoa(tt.wantCode) {
				t.Errorf("grpc-status %q, want %d", got, tt.wantCode)
			}
			if !strings.Contains(h.Get("Grpc-Message"), "req-42") || h.Get("Www-Authenticate") == "" {
				t.Errorf("grpc-message %q (want the request id), challenge %q (want kept)", h.Get("Grpc-Message"), h.Get("Www-Authenticate"))
			}
		})
	}
}

// TestRelayThroughServer relays through a real server and client: the client sees the
// service's answer with a length the gateway set and no sniffed type.
func TestRelayThroughServer(t *testing.T) {
	service, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // the service sends no type either
		w.Header().Set("Www-Authenticate", `Basic realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "<html><script>alert(1)</script></html>")
	})
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second})
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := m.Authenticate(w, r, &filter.Request{ClientIP: "127.0.0.1", RequestID: "r1"}); d.Result != auth.Answered {
			t.Errorf("decision %+v", d)
		}
	}))
	defer gateway.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	res, err := client.Get(gateway.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || string(body) != "<html><script>alert(1)</script></html>" {
		t.Fatalf("client got %d %q", res.StatusCode, body)
	}
	if ct, ok := res.Header["Content-Type"]; ok {
		t.Errorf("Content-Type %q was sniffed", ct)
	}
	if res.ContentLength != int64(len(body)) || res.Header.Get("Www-Authenticate") != `Basic realm="x"` {
		t.Errorf("length %d, challenge %q", res.ContentLength, res.Header.Get("Www-Authenticate"))
	}
}

func TestBodyCap(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		size    int
		chunked bool // no Content-Length from the service
		want    auth.Result
	}{
		{"at the cap with a length", http.StatusForbidden, MaxRelayedBody, false, auth.Answered},
		{"at the cap chunked", http.StatusForbidden, MaxRelayedBody, true, auth.Answered},
		{"over the cap with a length", http.StatusForbidden, MaxRelayedBody + 1, false, auth.Unavailable},
		{"over the cap chunked", http.StatusForbidden, MaxRelayedBody + 1, true, auth.Unavailable},
		{"huge chunked", http.StatusUnauthorized, 16 << 20, true, auth.Unavailable},
		{"huge with a length", http.StatusUnauthorized, 16 << 20, false, auth.Unavailable},
		{"a 2xx body is not the client's", http.StatusOK, 16 << 20, true, auth.Admitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunk := []byte(strings.Repeat("x", 32<<10))
			service, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
				if !tt.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(tt.size))
				}
				w.WriteHeader(tt.status)
				for left := tt.size; left > 0; {
					n := min(left, len(chunk))
					if _, err := w.Write(chunk[:n]); err != nil {
						return // the gateway stopped reading
					}
					left -= n
					if tt.chunked {
						w.(http.Flusher).Flush()
					}
				}
			})
			m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second})
			r, q := clientRequest("/")
			w := httptest.NewRecorder()
			d := m.Authenticate(w, r, q)
			if d.Result != tt.want {
				t.Fatalf("decision %+v, want result %d", d, tt.want)
			}
			switch tt.want {
			case auth.Answered:
				if w.Body.Len() != tt.size || w.Header().Get("Content-Length") != strconv.Itoa(tt.size) {
					t.Errorf("relayed %d bytes with Content-Length %q, want %d", w.Body.Len(), w.Header().Get("Content-Length"), tt.size)
				}
			default:
				if len(w.Header()) != 0 || w.Body.Len() != 0 {
					t.Errorf("wrote %v %d bytes to the client", w.Header(), w.Body.Len())
				}
				if tt.want == auth.Unavailable && d.Reason != "unavailable" {
					t.Errorf("reason %q", d.Reason)
				}
			}
		})
	}
}

func TestConnectionOptions(t *testing.T) {
	many := strings.Repeat("X-A,", maxConnectionTokens) + "X-B"
	tests := []struct {
		name   string
		values []string
		want   []string
		ok     bool
	}{
		{"none", nil, nil, true},
		{"close and keep-alive name no field", []string{"close", "Keep-Alive, upgrade"}, nil, true},
		{"fields canonicalized", []string{"x-one ,\tX-TWO", ",,"}, []string{"X-One", "X-Two"}, true},
		{"at the bound", []string{strings.TrimSuffix(strings.Repeat("X-A,", maxConnectionTokens), ",")}, slices.Repeat([]string{"X-A"}, maxConnectionTokens), true},
		{"over the bound", []string{many}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := connectionOptions(tt.values)
			if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("connectionOptions = %q %v, want %q %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
