package register

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Registrar that records what it is asked; Register blocks until ctx ends
// when block is set, as a registration still on its way to a slow registry does.
type recorder struct {
	block bool

	mu           sync.Mutex
	inst         Instance
	opts         Options
	registered   bool
	deregistered int
}

func (r *recorder) Register(ctx context.Context) error {
	if r.block {
		<-ctx.Done()
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.registered = true
	return nil
}

func (r *recorder) Deregister(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deregistered++
	return nil
}

// addTestScheme registers a scheme whose OpenFunc records what Open passed it; the scheme
// table is process-wide, so each test takes a name of its own.
func addTestScheme(t *testing.T, scheme string) *recorder {
	rec := &recorder{}
	AddScheme(scheme, func(u *url.URL, inst Instance, opts Options) (Registrar, error) {
		if u.Scheme != scheme {
			t.Errorf("OpenFunc for %s got %s", scheme, u)
		}
		rec.inst, rec.opts = inst, opts
		return rec, nil
	})
	return rec
}

func TestOpenChecksAndDefaults(t *testing.T) {
	rec := addTestScheme(t, "test-open")
	if !slices.Contains(Schemes(), "test-open://") {
		t.Fatalf("Schemes() = %v, want test-open:// listed", Schemes())
	}
	if _, err := Open("test-open://x", Instance{Service: "users", Address: "[::1]:9001"}, Options{}); err != nil {
		t.Fatal(err)
	}
	if rec.inst.ID != "[::1]:9001" || rec.inst.Weight != 1 || rec.opts.TTL != 10*time.Second || rec.opts.Logger == nil {
		t.Errorf("OpenFunc got %+v, %+v; want ID = address, weight 1, TTL 10s and a logger", rec.inst, rec.opts)
	}

	tests := []struct {
		name, registry string
		inst           Instance
		want           string
	}{
		{"unknown scheme", "gopher://x", Instance{Service: "s", Address: "127.0.0.1:1"}, `unknown scheme "gopher"`},
		{"no service", "test-open://x", Instance{Address: "127.0.0.1:1"}, "needs a service name"},
		{"no port", "test-open://x", Instance{Service: "s", Address: "127.0.0.1"}, "missing port"},
		{"port 0", "test-open://x", Instance{Service: "s", Address: "127.0.0.1:0"}, "bad port"},
		{"bad scheme", "test-open://x", Instance{Service: "s", Address: "127.0.0.1:1", Scheme: "ftp"}, "not http or https"},
		{"bad URL", "test-open://x\x7f", Instance{Service: "s", Address: "127.0.0.1:1"}, "invalid control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.registry, tt.inst, Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v, want an error containing %q", tt.registry, err, tt.want)
			}
		})
	}
}

func TestAddSchemeTwicePanics(t *testing.T) {
	addTestScheme(t, "test-twice")
	defer func() {
		if recover() == nil {
			t.Fatal("a second AddScheme for the same scheme did not panic")
		}
	}()
	addTestScheme(t, "test-twice")
}

// TestEntryRoundTrip checks the wire format both sides share: what EncodeEntry writes, and
// the host alias readers accept.
func TestEntryRoundTrip(t *testing.T) {
	got, err := EncodeEntry(Instance{Address: "[::1]:9443", Scheme: "https", Weight: 2, Meta: map[string]string{"zone": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"address":"::1","port":9443,"weight":2,"scheme":"https","meta":{"zone":"a"}}`; string(got) != want {
		t.Errorf("EncodeEntry = %s, want %s", got, want)
	}
	got, err = EncodeEntry(Instance{Address: "10.0.0.1:80", Scheme: "http", Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"address":"10.0.0.1","port":80,"weight":1}`; string(got) != want {
		t.Errorf("EncodeEntry = %s, want %s (http is the default and not written)", got, want)
	}
	var e Entry
	if err := json.Unmarshal([]byte(`{"host":"svc.internal","port":8080}`), &e); err != nil {
		t.Fatal(err)
	}
	if e.AddressOrHost() != "svc.internal" || e.Port != 8080 {
		t.Errorf("host alias decoded to %+v", e)
	}
	if _, err := EncodeEntry(Instance{Address: "10.0.0.1:80", Scheme: "gopher"}); err == nil {
		t.Error("EncodeEntry accepted scheme gopher")
	}
}

// TestServeAndRegisterStopDuringRegistration: a stop that arrives while Register is still
// waiting for the registry is a clean shutdown, and the registration is removed.
func TestServeAndRegisterStopDuringRegistration(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := &recorder{block: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		srv := &http.Server{ReadHeaderTimeout: time.Second}
		done <- ServeAndRegister(ctx, srv, ln, reg, ShutdownOptions{PropagationDelay: -1})
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeAndRegister = %v, want nil: a stop is not a failure", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ServeAndRegister did not return after the stop")
	}
	if reg.deregistered != 1 {
		t.Fatalf("Deregister called %d times, want 1", reg.deregistered)
	}
}

// TestServeAndRegisterRegisterFails: a registry that refuses is an error, still cleaned up.
func TestServeAndRegisterRegisterFails(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	reg := refusingRegistrar{err: refused, recorder: &recorder{}}
	srv := &http.Server{ReadHeaderTimeout: time.Second}
	err = ServeAndRegister(context.Background(), srv, ln, reg, ShutdownOptions{PropagationDelay: -1})
	if !errors.Is(err, refused) {
		t.Fatalf("ServeAndRegister = %v, want the register error", err)
	}
	if reg.deregistered != 1 {
		t.Fatalf("Deregister called %d times, want 1", reg.deregistered)
	}
}

// refusingRegistrar fails every Register with err.
type refusingRegistrar struct {
	err error
	*recorder
}

func (r refusingRegistrar) Register(context.Context) error { return r.err }
