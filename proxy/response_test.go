package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeUpstream serves every route through an in-memory transport answering res().
func fakeUpstream(t *testing.T, res func(*http.Request) *http.Response) *Handler {
	t.Helper()
	rt := routeSpec{prefix: "/", backends: []string{"127.0.0.1:1"}, upgrades: []string{"websocket"}}.build(t)
	h := New(Options{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		out := res(r)
		out.Request = r
		if out.Header == nil {
			out.Header = http.Header{}
		}
		if out.Body == nil {
			out.Body = http.NoBody
		}
		return out, nil
	})})
	h.SetTable(NewTable([]*Route{rt}, nil))
	return h
}

func TestRefusedUpstreamAnswers(t *testing.T) {
	switching := func(up string) func(*http.Request) *http.Response {
		return func(*http.Request) *http.Response {
			return &http.Response{StatusCode: 101, Header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {up}}}
		}
	}
	status := func(code int) func(*http.Request) *http.Response {
		return func(*http.Request) *http.Response { return &http.Response{StatusCode: code} }
	}
	tests := []struct {
		name    string
		res     func(*http.Request) *http.Response
		upgrade string // the client's Upgrade, if any
	}{
		{"101 to a request without Upgrade", switching("websocket"), ""},
		{"101 to another protocol", switching("h2c"), "websocket"},
		{"status 600", status(600), ""},
		{"status 999", status(999), ""},
		{"status 0", status(0), ""},
		{"status 99", status(99), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeUpstream(t, tt.res)
			req := httptest.NewRequest("GET", "/x", nil)
			if tt.upgrade != "" {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", tt.upgrade)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusBadGateway {
				t.Errorf("status %d, want 502", w.Code)
			}
		})
	}
}

func TestUpgradeAllowList(t *testing.T) {
	var got http.Header
	h := fakeUpstream(t, func(r *http.Request) *http.Response {
		got = r.Header
		return &http.Response{StatusCode: 200}
	})
	for _, tt := range []struct {
		upgrade   string
		forwarded bool
	}{{"websocket", true}, {"h2c", false}, {"foo", false}} {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
		req.Header.Set("Upgrade", tt.upgrade)
		req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
		h.ServeHTTP(httptest.NewRecorder(), req)
		if (got.Get("Upgrade") != "") != tt.forwarded || got.Get("Http2-Settings") != "" {
			t.Errorf("Upgrade %s: upstream got Upgrade %q, HTTP2-Settings %q", tt.upgrade, got.Get("Upgrade"), got.Get("Http2-Settings"))
		}
		if !tt.forwarded && got.Get("Connection") != "" {
			t.Errorf("Upgrade %s: upstream got Connection %q", tt.upgrade, got.Get("Connection"))
		}
	}
}

func TestResponseWithoutContentTypeIsNotSniffed(t *testing.T) {
	h := fakeUpstream(t, func(*http.Request) *http.Response {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("<html><body>hi</body></html>")), ContentLength: 28}
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if ct, ok := w.Result().Header["Content-Type"]; ok && len(ct) > 0 {
		t.Errorf("Content-Type %q added", ct)
	}
}

func TestForwardingHeadersReplaced(t *testing.T) {
	var got http.Header
	h := fakeUpstream(t, func(r *http.Request) *http.Response {
		got = r.Header
		return &http.Response{StatusCode: 200, Header: http.Header{"Alt-Svc": {`h3=":443"`}}}
	})
	req := httptest.NewRequest("GET", "http://example.com:8443/x", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	for k, v := range map[string]string{"X-Real-Ip": "6.6.6.6", "X-Forwarded-Port": "1", "X_Forwarded_For": "6.6.6.6", "X-Forwarded_For": "6.6.6.6"} {
		req.Header[k] = []string{v}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	want := map[string]string{"X-Real-Ip": "192.0.2.7", "X-Forwarded-Port": "8443", "X-Forwarded-For": "192.0.2.7"}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Get(k), v)
		}
	}
	for _, k := range []string{"X_Forwarded_For", "X-Forwarded_For"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s forwarded", k)
		}
	}
	if w.Header().Get("Alt-Svc") != "" {
		t.Error("Alt-Svc relayed")
	}
}

func TestFragmentInTargetRefused(t *testing.T) {
	h := fakeUpstream(t, func(*http.Request) *http.Response {
		t.Error("request with a raw # forwarded")
		return &http.Response{StatusCode: 200}
	})
	req := httptest.NewRequest("GET", "/x", nil)
	req.RequestURI = "/x#frag"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", w.Code)
	}
}
