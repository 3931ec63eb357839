package forward

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
	"go.uber.org/goleak"
)

// goleak also proves Close and the end of each exchange leave no connection goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewRefuses(t *testing.T) {
	ok := func(c *config.ForwardAuth) *config.ForwardAuth {
		if c.URL == "" {
			c.URL = "http://127.0.0.1:9/check"
		}
		if c.Timeout == 0 {
			c.Timeout = 2 * time.Second
		}
		return c
	}
	tests := []struct {
		name string
		cfg  *config.ForwardAuth
		want string // in the error
	}{
		{"nil", nil, "no configuration"},
		{"empty url", &config.ForwardAuth{Timeout: time.Second}, "must be http"},
		{"relative url", ok(&config.ForwardAuth{URL: "/check"}), "must be http"},
		{"other scheme", ok(&config.ForwardAuth{URL: "ftp://127.0.0.1/check"}), "must be http"},
		{"no host", ok(&config.ForwardAuth{URL: "http:///check"}), "no host"},
		{"port only", ok(&config.ForwardAuth{URL: "http://:8080/check"}), "no host"},
		{"credentials", ok(&config.ForwardAuth{URL: "http://user:pw@127.0.0.1/check"}), "credentials"},
		{"fragment", ok(&config.ForwardAuth{URL: "http://127.0.0.1/check#x"}), "fragment"},
		{"bad url", ok(&config.ForwardAuth{URL: "http://127.0.0.1:port/"}), "url"},
		{"zero timeout", &config.ForwardAuth{URL: "http://127.0.0.1/", Timeout: 0}, "timeout"},
		{"negative timeout", &config.ForwardAuth{URL: "http://127.0.0.1/", Timeout: -time.Second}, "timeout"},
		{"request header not a token", ok(&config.ForwardAuth{RequestHeaders: []string{"X Bad"}}), `"X Bad" is not a valid header name`},
		{"request header hop-by-hop", ok(&config.ForwardAuth{RequestHeaders: []string{"connection"}}), `"Connection" is hop-by-hop`},
		{"request header host", ok(&config.ForwardAuth{RequestHeaders: []string{"Host"}}), `"Host" is hop-by-hop or framing`},
		{"request header set by the gateway", ok(&config.ForwardAuth{RequestHeaders: []string{"x-forwarded-uri"}}), "set by the gateway"},
		{"request id", ok(&config.ForwardAuth{RequestHeaders: []string{"X-Request-Id"}}), "set by the gateway"},
		{"response header framing", ok(&config.ForwardAuth{ResponseHeaders: []string{"content-length"}}), "managed by the gateway"},
		{"response header forwarding", ok(&config.ForwardAuth{ResponseHeaders: []string{"X-Forwarded-For"}}), "managed by the gateway"},
		{"response header hop-by-hop", ok(&config.ForwardAuth{ResponseHeaders: []string{"Transfer-Encoding"}}), "hop-by-hop"},
		{"response header not a token", ok(&config.ForwardAuth{ResponseHeaders: []string{"X-User:Id"}}), "not a valid header name"},
		{"identity not copied", ok(&config.ForwardAuth{ResponseHeaders: []string{"X-User-Id"}, IdentityHeader: "X-Email"}), "must be one of response_headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.cfg)
			if err == nil {
				m.Close()
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(&config.ForwardAuth{URL: "http://127.0.0.1/", Timeout: time.Second,
		RequestHeaders: []string{"Te"}, ResponseHeaders: []string{"Upgrade"}, IdentityHeader: "X-Who"})
	if err == nil {
		t.Fatal("New accepted three bad fields")
	}
	for _, want := range []string{"request_headers", "response_headers", "identity_header"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestNewCanonicalizes(t *testing.T) {
	m := newMechanism(t, &config.ForwardAuth{
		URL:             "https://auth.example:8443/check?x=1",
		Timeout:         time.Second,
		RequestHeaders:  []string{"authorization", "Cookie", "AUTHORIZATION"},
		ResponseHeaders: []string{"x-user-id", "X-Groups", "X-USER-ID"},
		IdentityHeader:  "x-user-id",
	})
	if got, want := m.requestHeaders, []string{"Authorization", "Cookie"}; !reflect.DeepEqual(got, want) {
		t.Errorf("request headers %q, want %q", got, want)
	}
	want := []string{"X-User-Id", "X-Groups"}
	got := m.IdentityHeaders()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("IdentityHeaders %q, want %q", got, want)
	}
	got[0] = "Changed"
	if m.IdentityHeaders()[0] != "X-User-Id" {
		t.Error("IdentityHeaders returned the mechanism's own slice")
	}
	if m.identityHeader != "X-User-Id" {
		t.Errorf("identity header %q", m.identityHeader)
	}
	if m.Name() != config.AuthForward {
		t.Errorf("Name %q", m.Name())
	}
	if c := m.Challenge(auth.Decision{Result: auth.Invalid}); c != "" {
		t.Errorf("Challenge %q, want none", c)
	}
	if m.template.Host != "auth.example:8443" || m.template.URL.RawQuery != "x=1" {
		t.Errorf("subrequest target %q %q", m.template.Host, m.template.URL)
	}
}

func TestNewTransport(t *testing.T) {
	m := newMechanism(t, &config.ForwardAuth{URL: "http://127.0.0.1/", Timeout: 1500 * time.Millisecond})
	tr := m.transport
	if tr.Proxy != nil {
		t.Error("the transport reads a proxy from the environment")
	}
	if tr.MaxIdleConnsPerHost != MaxIdleConnections || tr.MaxConnsPerHost != MaxConnections || tr.IdleConnTimeout != IdleConnTimeout {
		t.Errorf("pool bounds %d idle, %d open, %v idle timeout", tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost, tr.IdleConnTimeout)
	}
	if tr.TLSHandshakeTimeout != 1500*time.Millisecond || tr.MaxResponseHeaderBytes != MaxResponseHeaderBytes || !tr.DisableCompression {
		t.Errorf("handshake timeout %v, head cap %d, compression disabled %v", tr.TLSHandshakeTimeout, tr.MaxResponseHeaderBytes, tr.DisableCompression)
	}
	if tr.TLSClientConfig.RootCAs != nil || tr.TLSClientConfig.InsecureSkipVerify || tr.TLSClientConfig.MinVersion != tls.VersionTLS12 {
		t.Error("TLS does not verify against the system roots with TLS 1.2 or later")
	}
	if tr.ForceAttemptHTTP2 || tr.DialContext == nil {
		t.Error("the transport is not HTTP/1.1 with its own bounded dialer")
	}
}

func TestFailureReasons(t *testing.T) {
	live := context.Background()
	expired, cancelExpired := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancelExpired()
	gone, cancelGone := context.WithCancel(live)
	cancelGone()
	goneChild, cancelChild := context.WithTimeout(gone, time.Hour)
	defer cancelChild()
	expiredChild, cancelExpiredChild := context.WithTimeout(expired, time.Hour)
	defer cancelExpiredChild()
	tests := []struct {
		name        string
		sub, parent context.Context
		want        string
	}{
		{"connection error", live, live, reasonUnavailable},
		{"subrequest timeout", expired, live, reasonTimeout},
		{"client gone", goneChild, gone, reasonCanceled},
		{"the request's own deadline", expiredChild, expired, reasonTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := failure(tt.sub, tt.parent)
			if d.Result != auth.Unavailable || d.Reason != tt.want {
				t.Fatalf("failure = %+v, want Unavailable %q", d, tt.want)
			}
		})
	}
}

// newMechanism builds a mechanism closed when the test ends.
func newMechanism(t testing.TB, cfg *config.ForwardAuth) *Mechanism {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// untouched is a ResponseWriter that records whether anything was written to it.
type untouched struct {
	header http.Header
	writes atomic.Int32
}

func (u *untouched) Header() http.Header {
	if u.header == nil {
		u.header = http.Header{}
	}
	return u.header
}
func (u *untouched) Write(b []byte) (int, error) { u.writes.Add(1); return len(b), nil }
func (u *untouched) WriteHeader(int)             { u.writes.Add(1) }

// check fails t when anything was written or a header was set.
func (u *untouched) check(t *testing.T) {
	t.Helper()
	if u.writes.Load() != 0 || len(u.header) != 0 {
		t.Errorf("the mechanism wrote to the client (%d writes, header %v) without answering", u.writes.Load(), u.header)
	}
}

// clientRequest is a request as the gateway's server hands it to the filter chain.
func clientRequest(target string) (*http.Request, *filter.Request) {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader("secret-body"))
	r.Host = "shop.example"
	r.Header.Set("Authorization", "Bearer t0ken")
	r.Header.Add("Cookie", "session=abc")
	r.Header.Add("Cookie", "theme=dark")
	r.Header.Set("X-Secret", "never-to-auth")
	return r, &filter.Request{ClientIP: "192.0.2.10", RequestID: "req-42", Route: "shop"}
}
