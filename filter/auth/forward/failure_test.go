package forward

import (
	"bufio"
	"context"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

// hangingService answers nothing until its client goes away or the test ends; received is
// closed when the first subrequest arrives.
func hangingService(t *testing.T) (service string, received <-chan struct{}) {
	t.Helper()
	arrived := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler holds srv.Close up
	return srv.URL, arrived
}

func TestTimeout(t *testing.T) {
	service, _ := hangingService(t)
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 50 * time.Millisecond, ResponseHeaders: []string{"X-User-Id"}})
	r, q := clientRequest("/")
	before := r.Header.Clone()
	var w untouched
	done := make(chan auth.Decision, 1)
	go func() { done <- m.Authenticate(&w, r, q) }()
	var d auth.Decision
	select {
	case d = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Authenticate did not return 10s after a 50ms timeout")
	}
	if d != (auth.Decision{Result: auth.Unavailable, Reason: "timeout"}) {
		t.Fatalf("decision %+v, want Unavailable timeout", d)
	}
	w.check(t)
	if !reflect.DeepEqual(r.Header, before) {
		t.Errorf("the request was edited: %v", r.Header)
	}
}

func TestSlowBodyTimesOut(t *testing.T) {
	// The head arrives in time, the relayed body never ends: the timeout covers reading it.
	service, _ := authService(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: 100 * time.Millisecond})
	r, q := clientRequest("/")
	var w untouched
	if d := m.Authenticate(&w, r, q); d != (auth.Decision{Result: auth.Unavailable, Reason: "timeout"}) {
		t.Fatalf("decision %+v, want Unavailable timeout", d)
	}
	w.check(t)
}

func TestServiceDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	m := newMechanism(t, &config.ForwardAuth{URL: "http://" + addr + "/check", Timeout: 10 * time.Second})
	r, q := clientRequest("/")
	var w untouched
	if d := m.Authenticate(&w, r, q); d != (auth.Decision{Result: auth.Unavailable, Reason: "unavailable"}) {
		t.Fatalf("decision %+v, want Unavailable unavailable", d)
	}
	w.check(t)
}

func TestClientCanceledMidSubrequest(t *testing.T) {
	service, received := hangingService(t)
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: time.Minute})
	r, q := clientRequest("/")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r = r.WithContext(ctx)
	var w untouched
	done := make(chan auth.Decision, 1)
	go func() { done <- m.Authenticate(&w, r, q) }()
	waitFor(t, "the subrequest to reach the auth service", received)
	cancel()
	var d auth.Decision
	select {
	case d = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Authenticate did not return 10s after the client went away")
	}
	if d != (auth.Decision{Result: auth.Unavailable, Reason: "canceled"}) {
		t.Fatalf("decision %+v, want Unavailable canceled", d)
	}
	w.check(t)
}

// rawService answers each subrequest with answer, then closes the connection: answers
// net/http's server would never write.
func rawService(t testing.TB, answer string) string {
	t.Helper()
	return rawServiceFunc(t, func() string { return answer })
}

// rawServiceFunc is rawService with the answer chosen per connection.
func rawServiceFunc(t testing.TB, answer func() string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				req.Body.Close()
				_, _ = io.WriteString(conn, answer())
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return "http://" + ln.Addr().String() + "/check"
}

func TestMalformedAnswers(t *testing.T) {
	tooManyOptions := "Connection: " + strings.Repeat("X-A, ", maxConnectionTokens) + "X-B\r\n"
	tests := []struct {
		name   string
		answer string
	}{
		{"no answer at all", ""},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n\r\n"},
		{"bad status code", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"},
		{"header line without a colon", "HTTP/1.1 200 OK\r\nX-User-Id alice\r\nContent-Length: 0\r\n\r\n"},
		{"control character in the identity", "HTTP/1.1 200 OK\r\nX-User-Id: ali\x01ce\r\nContent-Length: 0\r\n\r\n"},
		{"control character in a copied field", "HTTP/1.1 200 OK\r\nX-User-Id: alice\r\nX-Groups: a\x7fb\r\nContent-Length: 0\r\n\r\n"},
		{"two different lengths", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{"bad chunk", "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
		{"body shorter than its length", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\nshort"},
		{"head over the cap", "HTTP/1.1 401 Unauthorized\r\nX-Pad: " + strings.Repeat("p", MaxResponseHeaderBytes) + "\r\nContent-Length: 0\r\n\r\n"},
		{"switching protocols nobody asked for", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"connection names too many fields", "HTTP/1.1 401 Unauthorized\r\n" + tooManyOptions + "Content-Length: 0\r\n\r\n"},
		{"two identities", "HTTP/1.1 200 OK\r\nX-User-Id: alice\r\nX-User-Id: root\r\nContent-Length: 0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMechanism(t, &config.ForwardAuth{URL: rawService(t, tt.answer), Timeout: 10 * time.Second,
				ResponseHeaders: []string{"X-User-Id", "X-Groups"}, IdentityHeader: "X-User-Id"})
			r, q := clientRequest("/")
			before := r.Header.Clone()
			var w untouched
			if d := m.Authenticate(&w, r, q); d != (auth.Decision{Result: auth.Unavailable, Reason: "unavailable"}) {
				t.Fatalf("decision %+v, want Unavailable unavailable", d)
			}
			w.check(t)
			if !reflect.DeepEqual(r.Header, before) {
				t.Errorf("the request was edited: %v", r.Header)
			}
		})
	}
}

func TestRawAnswersThatAreFine(t *testing.T) {
	// Answers net/http's server does not write but that are valid HTTP.
	tests := []struct {
		name   string
		answer string
		want   auth.Decision
		check  func(t *testing.T, w *httptest.ResponseRecorder)
	}{
		{
			name:   "HTTP/1.0 without a length, ended by close",
			answer: "HTTP/1.0 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nnope",
			want:   auth.Decision{Result: auth.Answered, Reason: "denied", Status: http.StatusForbidden},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Body.String() != "nope" || w.Header().Get("Content-Length") != "4" {
					t.Errorf("relayed %q with length %q", w.Body.String(), w.Header().Get("Content-Length"))
				}
			},
		},
		{
			name:   "an unusual status is relayed as sent",
			answer: "HTTP/1.1 499 Whatever\r\nContent-Length: 0\r\n\r\n",
			want:   auth.Decision{Result: auth.Answered, Reason: "denied", Status: 499},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Code != 499 {
					t.Errorf("status %d", w.Code)
				}
			},
		},
		{
			// net/http takes the chunked framing (RFC 9112 6.3); the relay sets its own length.
			name:   "length and chunked",
			answer: "HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
			want:   auth.Decision{Result: auth.Answered, Reason: "denied", Status: http.StatusUnauthorized},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Body.String() != "abcd" || w.Header().Get("Content-Length") != "4" || w.Header().Get("Transfer-Encoding") != "" {
					t.Errorf("relayed %q with %v", w.Body.String(), w.Header())
				}
			},
		},
		{
			// net/http's client keeps such a field under a name that is not a token; it is
			// not relayed.
			name:   "space before the colon",
			answer: "HTTP/1.1 401 Unauthorized\r\nX-User-Id : alice\r\nContent-Length: 0\r\n\r\n",
			want:   auth.Decision{Result: auth.Answered, Reason: "denied", Status: http.StatusUnauthorized},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				for name := range w.Header() {
					if strings.Contains(name, "User") {
						t.Errorf("relayed field %q", name)
					}
				}
			},
		},
		{
			name:   "informational answers before the final one",
			answer: "HTTP/1.1 103 Early Hints\r\nLink: </internal.css>\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno",
			want:   auth.Decision{Result: auth.Answered, Reason: "denied", Status: http.StatusUnauthorized},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Body.String() != "no" || w.Header().Get("Link") != "" {
					t.Errorf("relayed %q with %v", w.Body.String(), w.Header())
				}
			},
		},
		{
			name:   "trailer fields are not relayed",
			answer: "HTTP/1.1 401 Unauthorized\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\nX-T: v\r\n\r\n",
			want:   auth.Decision{Result: auth.Answered, Reason: "denied", Status: http.StatusUnauthorized},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Body.String() != "no" || w.Header().Get("Trailer") != "" || w.Header().Get("X-T") != "" || w.Header().Get("Transfer-Encoding") != "" {
					t.Errorf("relayed %q with %v", w.Body.String(), w.Header())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMechanism(t, &config.ForwardAuth{URL: rawService(t, tt.answer), Timeout: 10 * time.Second})
			r, q := clientRequest("/")
			w := httptest.NewRecorder()
			if d := m.Authenticate(w, r, q); d != tt.want {
				t.Fatalf("decision %+v, want %+v", d, tt.want)
			}
			tt.check(t, w)
		})
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-User-Id", "tls-user")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	cfg := &config.ForwardAuth{URL: srv.URL, Timeout: 10 * time.Second, ResponseHeaders: []string{"X-User-Id"}, IdentityHeader: "X-User-Id"}

	// The test server's certificate is not signed by a system root: fail closed.
	untrusting := newMechanism(t, cfg)
	r, q := clientRequest("/")
	if d := untrusting.Authenticate(&untouched{}, r, q); d != (auth.Decision{Result: auth.Unavailable, Reason: "unavailable"}) {
		t.Fatalf("an untrusted certificate gave %+v, want Unavailable", d)
	}

	trusting := newMechanism(t, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	trusting.transport.TLSClientConfig.RootCAs = roots
	r, q = clientRequest("/")
	if d := trusting.Authenticate(&untouched{}, r, q); d != (auth.Decision{Result: auth.Admitted, Identity: "tls-user", Reason: "ok"}) {
		t.Fatalf("decision %+v, want Admitted over TLS", d)
	}
}

func TestRequestDeadlineBoundsSubrequest(t *testing.T) {
	service, _ := hangingService(t)
	m := newMechanism(t, &config.ForwardAuth{URL: service, Timeout: time.Minute})
	r, q := clientRequest("/")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r = r.WithContext(ctx)
	done := make(chan auth.Decision, 1)
	go func() { done <- m.Authenticate(&untouched{}, r, q) }()
	select {
	case d := <-done:
		if d != (auth.Decision{Result: auth.Unavailable, Reason: "timeout"}) {
			t.Fatalf("decision %+v, want Unavailable timeout", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request's 50ms deadline did not end a subrequest with a 1m timeout within 10s")
	}
}
