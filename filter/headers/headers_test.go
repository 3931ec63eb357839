package headers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
)

func TestNewOff(t *testing.T) {
	off := false
	tests := []struct {
		name  string
		rules *config.HeaderRules
	}{
		{"nil", nil},
		{"no sides", &config.HeaderRules{}},
		{"empty sides", &config.HeaderRules{Request: &config.HeaderEdits{}, Response: &config.HeaderEdits{Set: map[string]string{}}}},
		{"disabled", &config.HeaderRules{Enabled: &off, Request: &config.HeaderEdits{Remove: []string{"Cookie"}}}},
		{"only protected fields", &config.HeaderRules{Request: &config.HeaderEdits{Remove: []string{"host", "Connection"}, Set: map[string]string{"Content-Length": "0"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f := New(tt.rules); f != nil {
				t.Fatalf("New = %+v, want nil", f)
			}
		})
	}
}

func TestSides(t *testing.T) {
	req := New(&config.HeaderRules{Request: &config.HeaderEdits{Remove: []string{"Cookie"}}})
	if !req.EditsRequest() || req.EditsResponse() {
		t.Fatalf("request-only filter: EditsRequest %v, EditsResponse %v", req.EditsRequest(), req.EditsResponse())
	}
	w := httptest.NewRecorder()
	if got, done := req.WrapResponse(w, nil, nil); got != w || done != nil {
		t.Fatal("a filter without response edits wrapped the writer")
	}
	resp := New(&config.HeaderRules{Response: &config.HeaderEdits{Remove: []string{"Server"}}})
	if resp.EditsRequest() || !resp.EditsResponse() {
		t.Fatalf("response-only filter: EditsRequest %v, EditsResponse %v", resp.EditsRequest(), resp.EditsResponse())
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Server", "kept")
	if !resp.ServeRequest(w, r, &filter.Request{}) || r.Header.Get("Server") != "kept" {
		t.Fatal("a filter without request edits changed the request")
	}
	var nilFilter *Filter
	if nilFilter.EditsRequest() || nilFilter.EditsResponse() {
		t.Fatal("a nil filter edits something")
	}
	if !nilFilter.ServeRequest(w, r, &filter.Request{}) || r.Header.Get("Server") != "kept" {
		t.Fatal("a nil filter changed the request")
	}
	if got, done := nilFilter.WrapResponse(w, r, &filter.Request{}); got != w || done != nil {
		t.Fatal("a nil filter wrapped the writer")
	}
}

// editCases run on both sides: before is the header block, want what the edits leave.
var editCases = []struct {
	name   string
	edits  config.HeaderEdits
	before http.Header
	want   http.Header
}{
	{
		name:   "remove set add order",
		edits:  config.HeaderEdits{Remove: []string{"x-a"}, Set: map[string]string{"X-A": "set"}, Add: map[string]string{"x-a": "added"}},
		before: http.Header{"X-A": {"old1", "old2"}},
		want:   http.Header{"X-A": {"set", "added"}},
	},
	{
		name:   "add appends to existing values",
		edits:  config.HeaderEdits{Add: map[string]string{"Cache-Control": "no-transform"}},
		before: http.Header{"Cache-Control": {"private"}, "Other": {"1"}},
		want:   http.Header{"Cache-Control": {"private", "no-transform"}, "Other": {"1"}},
	},
	{
		name:   "add creates a missing field",
		edits:  config.HeaderEdits{Add: map[string]string{"x-env": "prod"}},
		before: http.Header{},
		want:   http.Header{"X-Env": {"prod"}},
	},
	{
		name:   "set replaces every value",
		edits:  config.HeaderEdits{Set: map[string]string{"x-env": "prod", "X-Empty": ""}},
		before: http.Header{"X-Env": {"a", "b"}},
		want:   http.Header{"X-Env": {"prod"}, "X-Empty": {""}},
	},
	{
		name:   "remove is case-insensitive and tolerates absent fields",
		edits:  config.HeaderEdits{Remove: []string{"COOKIE", "x-absent", "cookie"}},
		before: http.Header{"Cookie": {"a=b"}, "Accept": {"*/*"}},
		want:   http.Header{"Accept": {"*/*"}},
	},
	{
		name: "names differing in case: set keeps one, add adds both, in a fixed order",
		edits: config.HeaderEdits{
			Set: map[string]string{"x-v": "lower", "X-V": "upper"},
			Add: map[string]string{"x-w": "b", "X-W": "a"},
		},
		before: http.Header{},
		want:   http.Header{"X-V": {"upper"}, "X-W": {"a", "b"}},
	},
	{
		name: "host, framing and hop-by-hop fields are never touched",
		edits: config.HeaderEdits{
			Remove: []string{"Host", "Content-Length", "transfer-encoding", "Connection", "Te", "Trailer", "Upgrade", "Keep-Alive", "Proxy-Connection"},
			Set:    map[string]string{"Host": "evil", "content-length": "0", "Proxy-Authorization": "x", "Http2-Settings": "x", "Proxy-Authenticate": "x"},
			Add:    map[string]string{"Transfer-Encoding": "chunked", "X-Ok": "1"},
		},
		before: http.Header{"Host": {"h"}, "Content-Length": {"5"}, "Connection": {"keep-alive"}, "Te": {"trailers"}},
		want:   http.Header{"Host": {"h"}, "Content-Length": {"5"}, "Connection": {"keep-alive"}, "Te": {"trailers"}, "X-Ok": {"1"}},
	},
	{
		name: "names that are not tokens and values with control characters are skipped",
		edits: config.HeaderEdits{
			Remove: []string{"Bad Name"},
			Set:    map[string]string{"X-Split": "a\r\nInjected: 1", "Bad:Name": "v", "X-Nul": "a\x00b"},
			Add:    map[string]string{"X-Good": "v\tw"},
		},
		before: http.Header{"Bad Name": {"stays"}},
		want:   http.Header{"Bad Name": {"stays"}, "X-Good": {"v\tw"}},
	},
}

func TestRequestEdits(t *testing.T) {
	for _, tt := range editCases {
		t.Run(tt.name, func(t *testing.T) {
			f := New(&config.HeaderRules{Request: &tt.edits})
			r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
			r.Header = tt.before.Clone()
			q := &filter.Request{}
			w := httptest.NewRecorder()
			if !f.ServeRequest(w, r, q) || q.Status != 0 || w.Code != http.StatusOK || len(w.Header()) != 0 {
				t.Fatal("the request filter answered the request")
			}
			if !reflect.DeepEqual(r.Header, tt.want) {
				t.Fatalf("request header\n got %v\nwant %v", r.Header, tt.want)
			}
		})
	}
}

func TestResponseEdits(t *testing.T) {
	for _, tt := range editCases {
		t.Run(tt.name, func(t *testing.T) {
			f := New(&config.HeaderRules{Response: &tt.edits})
			rec := httptest.NewRecorder()
			chain := &filter.Chain{Response: []filter.ResponseFilter{f}}
			w, done := chain.WrapResponse(rec, httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{})
			// The proxy copies the upstream's fields into w.Header() before writing the status.
			for k, vv := range tt.before.Clone() {
				w.Header()[k] = vv
			}
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("body"))
			done()
			if rec.Code != http.StatusAccepted || rec.Body.String() != "body" {
				t.Fatalf("status %d body %q", rec.Code, rec.Body)
			}
			if got := rec.Result().Header; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("response header\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestResponseRemovalsApplyToTrailers: a removed field set as a trailer after the body, in
// either form net/http takes, is gone when the chain finishes; other trailers stay.
func TestResponseRemovalsApplyToTrailers(t *testing.T) {
	f := New(&config.HeaderRules{Response: &config.HeaderEdits{Remove: []string{"Server"}}})
	rec := httptest.NewRecorder()
	chain := &filter.Chain{Response: []filter.ResponseFilter{f}}
	w, done := chain.WrapResponse(rec, httptest.NewRequest(http.MethodGet, "/", nil), &filter.Request{})
	w.Header().Set("Trailer", "Server")
	w.WriteHeader(http.StatusOK)
	w.Header().Set("Server", "announced")
	w.Header().Set(http.TrailerPrefix+"Server", "unannounced")
	w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	done()
	h := rec.Header()
	if _, ok := h["Server"]; ok {
		t.Errorf("announced trailer kept: %v", h)
	}
	if _, ok := h[http.TrailerPrefix+"Server"]; ok {
		t.Errorf("unannounced trailer kept: %v", h)
	}
	if h.Get(http.TrailerPrefix+"Grpc-Status") != "0" {
		t.Errorf("a trailer not removed was dropped: %v", h)
	}
}

// TestResponseEditsSkipInformational: a 103 Early Hints goes out as the upstream sent it;
// the edits apply once, to the final response, also when the first Write sends the status.
func TestResponseEditsSkipInformational(t *testing.T) {
	f := New(&config.HeaderRules{Response: &config.HeaderEdits{
		Remove: []string{"Link"},
		Add:    map[string]string{"X-Once": "1"},
	}})
	rec := &informationalRecorder{ResponseRecorder: httptest.NewRecorder()}
	w, _ := f.WrapResponse(rec, nil, nil)
	w.Header().Set("Link", "</style.css>; rel=preload")
	w.WriteHeader(http.StatusEarlyHints)
	if len(rec.informational) != 1 || rec.informational[0].Get("Link") == "" || rec.informational[0].Get("X-Once") != "" {
		t.Fatalf("the 103 was edited: %v", rec.informational)
	}
	_, _ = w.Write([]byte("x"))
	w.WriteHeader(http.StatusOK) // superfluous; must not run the edits again
	h := rec.Result().Header
	if h.Get("Link") != "" || !reflect.DeepEqual(h["X-Once"], []string{"1"}) || rec.Code != http.StatusOK {
		t.Fatalf("final header %v, status %d", h, rec.Code)
	}
}

// informationalRecorder records the header blocks of 1xx responses, which
// httptest.ResponseRecorder ignores.
type informationalRecorder struct {
	*httptest.ResponseRecorder
	informational []http.Header
}

func (r *informationalRecorder) WriteHeader(status int) {
	if status >= 100 && status < 200 {
		r.informational = append(r.informational, r.Header().Clone())
		return
	}
	r.ResponseRecorder.WriteHeader(status)
}

// TestValuesNotAliased: the compiled values are shared by every request, so neither a later
// append to an edited field nor an add onto a slice with spare capacity may write into memory
// someone else holds.
func TestValuesNotAliased(t *testing.T) {
	f := New(&config.HeaderRules{Request: &config.HeaderEdits{
		Set: map[string]string{"X-Set": "shared"},
		Add: map[string]string{"X-Add": "added", "X-New": "new"},
	}})
	backing := []string{"mine", "untouched", "spare"}
	h := http.Header{"X-Add": backing[:1]} // len 1, cap 3
	f.request.apply(h, 0)
	if backing[1] != "untouched" {
		t.Fatalf("add wrote into the caller's backing array: %v", backing)
	}
	if !reflect.DeepEqual(h["X-Add"], []string{"mine", "added"}) {
		t.Fatalf("X-Add = %v", h["X-Add"])
	}
	h.Add("X-Set", "later")
	h.Add("X-New", "later")
	h["X-Set"][0] = "overwritten by a careless caller"
	second := http.Header{}
	f.request.apply(second, 0)
	if second.Get("X-Set") != "shared" || !reflect.DeepEqual(second["X-New"], []string{"new"}) {
		t.Fatalf("a request's appends leaked into the next one: %v", second)
	}
}

// TestAllocs pins the per-request cost: removing and setting allocate nothing, adding onto a
// present field allocates its new value slice, and the response side allocates its wrapper.
func TestAllocs(t *testing.T) {
	f := New(&config.HeaderRules{
		Request:  &config.HeaderEdits{Remove: []string{"Cookie"}, Set: map[string]string{"X-Env": "prod"}, Add: map[string]string{"X-Via": "switchyard"}},
		Response: &config.HeaderEdits{Remove: []string{"Server"}, Set: map[string]string{"X-Frame-Options": "DENY"}},
	})
	cookie, via := []string{"a=b"}, []string{"edge"}
	// The map already has every key the edits touch, so map growth is not counted.
	h := http.Header{"Cookie": cookie, "X-Env": {"x"}, "X-Via": nil, "Accept": {"*/*"}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header = h
	w := httptest.NewRecorder()
	q := &filter.Request{}
	tests := []struct {
		name string
		via  []string // X-Via before the edits
		want float64
	}{
		{"add creates the field", nil, 0},
		{"add appends to a present field", via, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testing.AllocsPerRun(200, func() {
				h["Cookie"], h["X-Via"] = cookie, tt.via
				f.ServeRequest(w, r, q)
			})
			if got != tt.want {
				t.Errorf("%v allocs per request, want %v", got, tt.want)
			}
		})
	}
	t.Run("response wrapper", func(t *testing.T) {
		got := testing.AllocsPerRun(200, func() { wrapped, _ = f.WrapResponse(w, r, q) })
		if got != 1 {
			t.Errorf("%v allocs per response, want 1 (filter.HeaderHook's wrapper)", got)
		}
	})
}

// wrapped keeps the wrapper reachable so escape analysis cannot put it on the stack, as the
// proxy's use of it cannot.
var wrapped http.ResponseWriter

var backingOne = []string{"edge"}

// BenchmarkRequest runs n removes, n sets and n adds on a request carrying the removed
// fields and, when appending, the added ones (each of which then costs one value slice).
func BenchmarkRequest(b *testing.B) {
	for _, n := range []int{1, 4} {
		for _, appending := range []bool{false, true} {
			edits := &config.HeaderEdits{Set: map[string]string{}, Add: map[string]string{}}
			var removed, added []string
			for i := 0; i < n; i++ {
				removed = append(removed, fmt.Sprintf("X-Remove-%d", i))
				added = append(added, fmt.Sprintf("X-Add-%d", i))
				edits.Set[fmt.Sprintf("X-Set-%d", i)] = "value"
				edits.Add[added[i]] = "value"
			}
			edits.Remove = removed
			f := New(&config.HeaderRules{Request: edits})
			b.Run(fmt.Sprintf("edits=%dx3/appending=%v", n, appending), func(b *testing.B) {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				w := httptest.NewRecorder()
				q := &filter.Request{}
				present := []string{"client"}
				b.ReportAllocs()
				for b.Loop() {
					for i := range removed {
						r.Header[removed[i]] = present
						r.Header[added[i]] = nil
						if appending {
							r.Header[added[i]] = present
						}
					}
					f.ServeRequest(w, r, q)
				}
			})
		}
	}
}

func BenchmarkResponse(b *testing.B) {
	f := New(&config.HeaderRules{Response: &config.HeaderEdits{
		Remove: []string{"Server", "X-Powered-By"},
		Set:    map[string]string{"X-Frame-Options": "DENY", "Strict-Transport-Security": "max-age=63072000"},
	}})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	q := &filter.Request{}
	sink := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		sink.header["Server"] = backingOne
		w, _ := f.WrapResponse(sink, r, q)
		w.WriteHeader(http.StatusOK)
	}
}

// discardWriter is a ResponseWriter that keeps one header map and writes nowhere.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// TestConcurrentRequests: the shared compiled values are only read, so requests on many
// goroutines (each appending to its own map afterwards, as later code may) do not race;
// run with -race.
func TestConcurrentRequests(t *testing.T) {
	f := New(&config.HeaderRules{
		Request:  &config.HeaderEdits{Set: map[string]string{"X-Env": "prod"}, Add: map[string]string{"X-Via": "gw"}},
		Response: &config.HeaderEdits{Set: map[string]string{"X-Frame-Options": "DENY"}},
	})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.Header["X-Via"] = []string{"edge"}
				f.ServeRequest(nil, r, &filter.Request{})
				r.Header.Add("X-Env", "mine")
				rec := httptest.NewRecorder()
				w, _ := f.WrapResponse(rec, r, &filter.Request{})
				w.WriteHeader(http.StatusOK)
				rec.Header().Add("X-Frame-Options", "mine")
				if got := r.Header["X-Via"]; len(got) != 2 || got[1] != "gw" {
					t.Errorf("X-Via = %v", got)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := f.request.set[0].value; !reflect.DeepEqual(got, []string{"prod"}) || cap(got) != 1 {
		t.Fatalf("the shared value changed: %v (cap %d)", got, cap(got))
	}
}
