package ratelimit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
)

// countingFilter records that the chain reached it.
type countingFilter struct{ calls int }

func (c *countingFilter) ServeRequest(http.ResponseWriter, *http.Request, *filter.Request) bool {
	c.calls++
	return true
}

func TestServeRequestThroughChain(t *testing.T) {
	type step struct {
		clientIP string
		header   string // X-Key value
		allowed  bool
	}
	cases := []struct {
		name  string
		cfg   config.RateLimit
		steps []step
	}{
		{"per client IP", config.RateLimit{RPS: 1, Burst: 2, Key: config.RateLimitKeyClientIP}, []step{
			{"10.0.0.1", "", true}, {"10.0.0.1", "", true}, {"10.0.0.1", "", false},
			{"10.0.0.2", "", true}, // another client has its own bucket
		}},
		{"per route", config.RateLimit{RPS: 1, Burst: 1, Key: config.RateLimitKeyRoute}, []step{
			{"10.0.0.1", "", true}, {"10.0.0.2", "", false},
		}},
		{"per header", config.RateLimit{RPS: 1, Burst: 1, Key: config.RateLimitKeyHeaderPrefix + "X-Key"}, []step{
			{"10.0.0.1", "a", true}, {"10.0.0.1", "b", true}, {"10.0.0.2", "a", false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			l := newAt(t, tc.cfg, nil, &now)
			after := &countingFilter{}
			chain := &filter.Chain{Request: []filter.RequestFilter{l, after}}
			for i, s := range tc.steps {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				if s.header != "" {
					r.Header.Set("X-Key", s.header)
				}
				w := httptest.NewRecorder()
				q := &filter.Request{ClientIP: s.clientIP, RequestID: "rid-1", Route: "r"}
				callsBefore := after.calls
				got := chain.ServeRequest(w, r, q)
				if got != s.allowed {
					t.Fatalf("step %d: chain went on = %v, want %v", i, got, s.allowed)
				}
				if w.Header().Get("RateLimit-Limit") == "" {
					t.Errorf("step %d: no RateLimit-Limit header: %v", i, w.Header())
				}
				if s.allowed {
					if after.calls != callsBefore+1 || q.Status != 0 || w.Code != http.StatusOK || w.Body.Len() != 0 {
						t.Errorf("step %d: allowed request: next filter calls %d->%d, status %d, recorder %d %q",
							i, callsBefore, after.calls, q.Status, w.Code, w.Body.String())
					}
					continue
				}
				if after.calls != callsBefore {
					t.Errorf("step %d: the chain went on after a refusal", i)
				}
				if q.Status != http.StatusTooManyRequests || w.Code != http.StatusTooManyRequests {
					t.Errorf("step %d: refused with q.Status %d, response %d; want 429", i, q.Status, w.Code)
				}
				if w.Header().Get("Retry-After") == "" {
					t.Errorf("step %d: 429 without Retry-After: %v", i, w.Header())
				}
				var body struct {
					Error     string `json:"error"`
					Status    int    `json:"status"`
					RequestID string `json:"request_id"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Status != 429 || body.RequestID != "rid-1" {
					t.Errorf("step %d: body %q (%v)", i, w.Body.String(), err)
				}
			}
		})
	}
}

func TestServeRequestNilLimiter(t *testing.T) {
	var l *Limiter
	w := httptest.NewRecorder()
	q := &filter.Request{ClientIP: "10.0.0.1"}
	if !l.ServeRequest(w, httptest.NewRequest(http.MethodGet, "/", nil), q) || len(w.Header()) != 0 || q.Status != 0 {
		t.Fatalf("nil limiter: refused or wrote headers %v (status %d)", w.Header(), q.Status)
	}
}

// BenchmarkServeRequest is one allowed request through the filter on local buckets keyed
// by client IP, RateLimit-* headers included.
func BenchmarkServeRequest(b *testing.B) {
	l, err := New("r", &config.RateLimit{RPS: 1e9, Burst: 1 << 30, Key: config.RateLimitKeyClientIP}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	q := &filter.Request{ClientIP: "10.0.0.1"}
	b.ReportAllocs()
	for b.Loop() {
		if !l.ServeRequest(w, r, q) {
			b.Fatal("refused")
		}
	}
}

// TestServeRequestIdentityKey: a limit keyed on identity gives each identity auth admitted
// its own bucket, whatever address or header the request comes with; requests without an
// identity share one.
func TestServeRequestIdentityKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newAt(t, config.RateLimit{RPS: 1, Burst: 1, Key: config.RateLimitKeyIdentity}, nil, &now)
	steps := []struct {
		clientIP, identity string
		allowed            bool
	}{
		{"10.0.0.1", "api_key:billing", true},
		{"10.0.0.2", "api_key:billing", false}, // same identity from another address
		{"10.0.0.1", "jwt:alice", true},        // another identity from the same address
		{"10.0.0.3", "", true},
		{"10.0.0.4", "", false}, // no identity: the shared bucket
	}
	for i, s := range steps {
		w := httptest.NewRecorder()
		q := &filter.Request{ClientIP: s.clientIP, Identity: s.identity}
		if got := l.ServeRequest(w, httptest.NewRequest(http.MethodGet, "/", nil), q); got != s.allowed {
			t.Errorf("step %d (%s, %q): allowed = %v, want %v", i, s.clientIP, s.identity, got, s.allowed)
		}
	}
}
