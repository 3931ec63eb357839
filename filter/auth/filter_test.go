package auth

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/filter"
)

// fake is a Mechanism that answers a fixed decision and records what it saw.
type fake struct {
	name      string
	decision  Decision
	challenge string   // returned by Challenge when non-empty
	headers   []string // IdentityHeaders
	calls     int
	seen      []Decision                  // decisions passed to Challenge
	sawHeader http.Header                 // the request's headers when Authenticate ran
	answer    func(w http.ResponseWriter) // writes the response when the result is Answered
}

func (f *fake) Name() string { return f.name }

func (f *fake) Authenticate(w http.ResponseWriter, r *http.Request, _ *filter.Request) Decision {
	f.calls++
	f.sawHeader = r.Header.Clone()
	if f.answer != nil {
		f.answer(w)
	}
	return f.decision
}

func (f *fake) Challenge(d Decision) string {
	f.seen = append(f.seen, d)
	return f.challenge
}

func (f *fake) IdentityHeaders() []string { return f.headers }

func TestNewEmpty(t *testing.T) {
	if f := New("r", nil, nil, nil); f != nil {
		t.Fatalf("New(no mechanisms) = %v, want nil", f)
	}
	var f *Filter
	if !f.ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{}) {
		t.Fatal("a nil Filter refused a request")
	}
}

func TestServeRequest(t *testing.T) {
	skip := Decision{Result: Skipped, Reason: "missing"}
	invalid := Decision{Result: Invalid, Reason: "invalid"}
	tests := []struct {
		name      string
		mechs     []*fake
		wantPass  bool
		wantCode  int      // response status when refused (0: nothing written)
		wantID    string   // q.Identity
		wantCalls []int    // Authenticate calls per mechanism
		wantAuth  []string // WWW-Authenticate values
	}{
		{
			name: "first admits, the rest do not run",
			mechs: []*fake{
				{name: "a", decision: Decision{Result: Admitted, Identity: "billing", Reason: "ok"}},
				{name: "b", decision: Decision{Result: Admitted, Identity: "other", Reason: "ok"}},
			},
			wantPass: true, wantID: "a:billing", wantCalls: []int{1, 0},
		},
		{
			name: "skipped then admitted",
			mechs: []*fake{
				{name: "a", decision: skip, challenge: "A"},
				{name: "b", decision: Decision{Result: Admitted, Identity: "alice", Reason: "ok"}},
			},
			wantPass: true, wantID: "b:alice", wantCalls: []int{1, 1},
		},
		{
			name: "admitted after forbidden and invalid still admits",
			mechs: []*fake{
				{name: "a", decision: Decision{Result: Forbidden, Identity: "x", Reason: "forbidden"}},
				{name: "b", decision: invalid},
				{name: "c", decision: Decision{Result: Admitted, Reason: "ok"}},
			},
			wantPass: true, wantID: "", wantCalls: []int{1, 1, 1},
		},
		{
			name: "none present: 401 with every non-empty challenge in order",
			mechs: []*fake{
				{name: "a", decision: skip, challenge: `APIKey header="X-Api-Key"`},
				{name: "b", decision: skip},
				{name: "c", decision: skip, challenge: `Basic realm="r"`},
			},
			wantCode: 401, wantCalls: []int{1, 1, 1},
			wantAuth: []string{`APIKey header="X-Api-Key"`, `Basic realm="r"`},
		},
		{
			name: "invalid: 401",
			mechs: []*fake{
				{name: "a", decision: invalid, challenge: "A"},
				{name: "b", decision: skip, challenge: "B"},
			},
			wantCode: 401, wantCalls: []int{1, 1}, wantAuth: []string{"A", "B"},
		},
		{
			name: "forbidden wins over unavailable and invalid",
			mechs: []*fake{
				{name: "a", decision: Decision{Result: Unavailable, Reason: "timeout"}, challenge: "A"},
				{name: "b", decision: Decision{Result: Forbidden, Identity: "bob", Reason: "forbidden"}, challenge: "B"},
				{name: "c", decision: invalid, challenge: "C"},
			},
			wantCode: 403, wantCalls: []int{1, 1, 1},
		},
		{
			name: "unavailable wins over invalid",
			mechs: []*fake{
				{name: "a", decision: invalid, challenge: "A"},
				{name: "b", decision: Decision{Result: Unavailable, Reason: "unavailable"}, challenge: "B"},
			},
			wantCode: 503, wantCalls: []int{1, 1},
		},
		{
			name: "answered stops the chain and writes nothing more",
			mechs: []*fake{
				{name: "a", decision: Decision{Result: Answered, Status: 302, Reason: "denied"},
					answer: func(w http.ResponseWriter) { w.Header().Set("Location", "/login"); w.WriteHeader(302) }},
				{name: "b", decision: Decision{Result: Admitted, Reason: "ok"}},
			},
			wantCode: 302, wantCalls: []int{1, 0},
		},
		{
			name: "more mechanisms than the decisions kept on the stack",
			mechs: []*fake{
				{name: "a", decision: skip, challenge: "A"}, {name: "b", decision: invalid, challenge: "B"},
				{name: "c", decision: skip, challenge: "C"}, {name: "d", decision: skip},
				{name: "e", decision: invalid, challenge: "E"}, {name: "f", decision: skip, challenge: "F"},
			},
			wantCode: 401, wantCalls: []int{1, 1, 1, 1, 1, 1}, wantAuth: []string{"A", "B", "C", "E", "F"},
		},
		{
			name: "an unknown result never admits",
			mechs: []*fake{
				{name: "a", decision: Decision{Result: Result(42), Reason: "ok"}, challenge: "A"},
			},
			wantCode: 401, wantCalls: []int{1}, wantAuth: []string{"A"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mechs := make([]Mechanism, len(tt.mechs))
			for i, m := range tt.mechs {
				mechs[i] = m
			}
			f := New("route", mechs, nil, nil)
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			q := &filter.Request{RequestID: "req-1", Identity: "stale"}
			pass := f.ServeRequest(w, r, q)
			if pass != tt.wantPass {
				t.Fatalf("ServeRequest = %v, want %v", pass, tt.wantPass)
			}
			for i, m := range tt.mechs {
				if m.calls != tt.wantCalls[i] {
					t.Errorf("mechanism %s ran %d times, want %d", m.name, m.calls, tt.wantCalls[i])
				}
			}
			if pass {
				if q.Identity != tt.wantID {
					t.Errorf("q.Identity = %q, want %q", q.Identity, tt.wantID)
				}
				if q.Status != 0 || w.Code != 200 || w.Body.Len() != 0 {
					t.Errorf("admitted request was answered: status %d/%d body %q", q.Status, w.Code, w.Body)
				}
				return
			}
			if q.Status != tt.wantCode || w.Code != tt.wantCode {
				t.Errorf("status q=%d w=%d, want %d", q.Status, w.Code, tt.wantCode)
			}
			if got := w.Header().Values("WWW-Authenticate"); !slices.Equal(got, tt.wantAuth) {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantAuth)
			}
			if tt.wantCode == 302 {
				if w.Body.Len() != 0 {
					t.Errorf("the filter wrote a body after the mechanism answered: %q", w.Body)
				}
				return
			}
			var body struct {
				Error     string `json:"error"`
				Status    int    `json:"status"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if body.Status != tt.wantCode || body.RequestID != "req-1" {
				t.Errorf("body = %+v, want status %d and request id req-1", body, tt.wantCode)
			}
			// The client never learns which mechanism or check failed.
			for _, word := range []string{"missing", "invalid", "timeout", "expired", "bob"} {
				if strings.Contains(w.Body.String(), word) {
					t.Errorf("body %q reveals %q", w.Body, word)
				}
			}
		})
	}
}

func TestChallengeGetsOwnDecision(t *testing.T) {
	a := &fake{name: "a", decision: Decision{Result: Invalid, Reason: "expired"}, challenge: "A"}
	b := &fake{name: "b", decision: Decision{Result: Skipped, Reason: "missing"}, challenge: "B"}
	f := New("route", []Mechanism{a, b}, nil, nil)
	f.ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{})
	if len(a.seen) != 1 || a.seen[0] != a.decision {
		t.Errorf("a's Challenge saw %v, want [%v]", a.seen, a.decision)
	}
	if len(b.seen) != 1 || b.seen[0] != b.decision {
		t.Errorf("b's Challenge saw %v, want [%v]", b.seen, b.decision)
	}
}

func TestIdentityHeadersScrubbed(t *testing.T) {
	// The first mechanism admits, yet the second's identity headers are removed too, and
	// before the first runs: a client-sent copy never reaches a mechanism or the upstream.
	first := &fake{name: "a", decision: Decision{Result: Admitted, Identity: "k", Reason: "ok"}, headers: []string{"x-api-key-name"}}
	second := &fake{name: "b", headers: []string{"X-User-Id", "x-user-id"}}
	f := New("route", []Mechanism{first, second}, nil, nil)
	if want := []string{"X-Api-Key-Name", "X-User-Id"}; !slices.Equal(f.identityHeaders, want) {
		t.Fatalf("identity headers %q, want %q", f.identityHeaders, want)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Add("X-Api-Key-Name", "admin")
	r.Header.Add("x-user-id", "root")
	r.Header.Add("X-User-Id", "root2")
	r.Header["X_User_Id"] = []string{"root3"}
	r.Header["x_api_KEY-name"] = []string{"admin2"}
	r.Header["X_User_Idx"] = []string{"kept"}
	r.Header.Add("X-Api-Key", "secret")
	r.Header.Add("Authorization", "Basic Zm9vOmJhcg==")
	// Declared trailers (values arrive after the body) are forwarded too: the same names
	// go, other declared trailers stay.
	r.Trailer = http.Header{"X-Api-Key-Name": nil, "X_user_id": nil, "X-Checksum": nil}
	if !f.ServeRequest(httptest.NewRecorder(), r, &filter.Request{}) {
		t.Fatal("refused")
	}
	if len(r.Trailer) != 1 || r.Trailer["X-Checksum"] != nil || !slices.Contains(slices.Collect(maps.Keys(r.Trailer)), "X-Checksum") {
		t.Errorf("declared trailers after the filter: %v, want only X-Checksum", r.Trailer)
	}
	want := http.Header{
		"X-Api-Key":     {"secret"},
		"Authorization": {"Basic Zm9vOmJhcg=="},
		"X_User_Idx":    {"kept"},
	}
	for _, h := range []http.Header{first.sawHeader, r.Header} {
		if len(h) != len(want) {
			t.Errorf("headers %v, want %v", h, want)
		}
		for k, v := range want {
			if !slices.Equal(h[k], v) {
				t.Errorf("header %s = %q, want %q", k, h[k], v)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	admit := &fake{name: "api_key", decision: Decision{Result: Admitted, Identity: "k", Reason: "ok"}}
	f := New("users", []Mechanism{admit}, m, nil)
	skipThenRefuse := New("orders", []Mechanism{
		&fake{name: "api_key", decision: Decision{Result: Skipped, Reason: "missing"}},
		&fake{name: "basic", decision: Decision{Result: Unavailable, Reason: "busy"}},
		&fake{name: "jwt", decision: Decision{Result: Invalid, Reason: "made-up reason"}},
	}, m, nil)
	for range 3 {
		f.ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{})
	}
	skipThenRefuse.ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{})

	want := `
# HELP switchyard_auth_decisions_total Authentication decisions, by route, mechanism, result (skipped, admitted, invalid, forbidden, unavailable, answered) and reason.
# TYPE switchyard_auth_decisions_total counter
switchyard_auth_decisions_total{mechanism="api_key",reason="missing",result="skipped",route="orders"} 1
switchyard_auth_decisions_total{mechanism="api_key",reason="ok",result="admitted",route="orders"} 0
switchyard_auth_decisions_total{mechanism="api_key",reason="ok",result="admitted",route="users"} 3
switchyard_auth_decisions_total{mechanism="basic",reason="busy",result="unavailable",route="orders"} 1
switchyard_auth_decisions_total{mechanism="basic",reason="ok",result="admitted",route="orders"} 0
switchyard_auth_decisions_total{mechanism="jwt",reason="ok",result="admitted",route="orders"} 0
switchyard_auth_decisions_total{mechanism="jwt",reason="other",result="invalid",route="orders"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_auth_decisions_total"); err != nil {
		t.Error(err)
	}
	// A second filter for the same route (a config reload) counts into the same series.
	New("users", []Mechanism{admit}, m, nil).ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{})
	if got := testutil.ToFloat64(m.decisions.WithLabelValues("users", "api_key", "admitted", "ok")); got != 4 {
		t.Errorf("users admitted = %v after a rebuild, want 4", got)
	}
}

func TestDebugLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := New("users", []Mechanism{
		&fake{name: "basic", decision: Decision{Result: Forbidden, Identity: "mallory", Reason: "forbidden"}},
	}, nil, log)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Basic c2VjcmV0OnMzY3JldA==")
	f.ServeRequest(httptest.NewRecorder(), r, &filter.Request{RequestID: "req-9"})
	out := buf.String()
	for _, want := range []string{"route=users", "request_id=req-9", "mechanism=basic", "result=forbidden", "reason=forbidden", "identity=mallory", "status=403"} {
		if !strings.Contains(out, want) {
			t.Errorf("debug log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "c2VjcmV0") {
		t.Errorf("debug log %q holds the credential", out)
	}

	// Above debug, nothing is logged.
	buf.Reset()
	quiet := New("users", []Mechanism{&fake{name: "basic"}}, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	quiet.ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{})
	if buf.Len() != 0 {
		t.Errorf("info-level logger got %q", buf.String())
	}
}

// TestConcurrentRequests runs one filter from many goroutines (go test -race checks the
// lazily made counters and the identity cache) and checks that every decision is counted.
func TestConcurrentRequests(t *testing.T) {
	const goroutines, each = 8, 200
	m := NewMetrics(nil)
	f := New("route", []Mechanism{
		&staticMechanism{name: "a", decision: Decision{Result: Invalid, Reason: "expired"}},
		&staticMechanism{name: "b", decision: Decision{Result: Admitted, Identity: "alice", Reason: "ok"}},
	}, m, nil)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				q := &filter.Request{}
				if !f.ServeRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), q) || q.Identity != "b:alice" {
					t.Errorf("refused or wrong identity %q", q.Identity)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, c := range []struct{ mechanism, result, reason string }{{"a", "invalid", "expired"}, {"b", "admitted", "ok"}} {
		if got := testutil.ToFloat64(m.decisions.WithLabelValues("route", c.mechanism, c.result, c.reason)); got != goroutines*each {
			t.Errorf("%v counted %v, want %d", c, got, goroutines*each)
		}
	}
}
