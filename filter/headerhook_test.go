package filter

import (
	"errors"
	"net/http"
	"testing"
)

// failingFlusher is a ResponseWriter whose flush fails, as a write timeout or a client
// gone makes the connection's flush fail; its Flush (http.Flusher) cannot report that.
type failingFlusher struct {
	header   http.Header
	statuses []int
	flushes  int
}

var errFlush = errors.New("flush: client gone")

func (f *failingFlusher) Header() http.Header         { return f.header }
func (f *failingFlusher) WriteHeader(status int)      { f.statuses = append(f.statuses, status) }
func (f *failingFlusher) Write(p []byte) (int, error) { return len(p), nil }
func (f *failingFlusher) Flush()                      { f.flushes++ }
func (f *failingFlusher) FlushError() error           { f.flushes++; return errFlush }

// TestHeaderHookFlush: a flush before the status line sends a 200 through the hook, and
// the client writer's flush error reaches FlushError and http.ResponseController callers.
func TestHeaderHookFlush(t *testing.T) {
	cases := []struct {
		name  string
		flush func(w http.ResponseWriter) error
	}{
		{"FlushError", func(w http.ResponseWriter) error { return w.(interface{ FlushError() error }).FlushError() }},
		{"ResponseController", func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() }},
		{"http.Flusher", func(w http.ResponseWriter) error { w.(http.Flusher).Flush(); return errFlush }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := &failingFlusher{header: http.Header{}}
			hooked := 0
			w := HeaderHook(client, func(h http.Header, status int) {
				hooked++
				h.Set("X-Hooked", "yes")
			})
			if err := tc.flush(w); !errors.Is(err, errFlush) {
				t.Errorf("flush: %v, want %v", err, errFlush)
			}
			if err := tc.flush(w); !errors.Is(err, errFlush) {
				t.Errorf("second flush: %v, want %v", err, errFlush)
			}
			if hooked != 1 || client.header.Get("X-Hooked") != "yes" || len(client.statuses) != 1 || client.statuses[0] != http.StatusOK {
				t.Errorf("hook ran %d times, statuses %v, header %v", hooked, client.statuses, client.header)
			}
			if client.flushes != 2 {
				t.Errorf("%d flushes reached the client writer, want 2", client.flushes)
			}
		})
	}
}
