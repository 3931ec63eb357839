package forward

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

// connWatcher counts a server's connections that are open.
type connWatcher struct {
	mu     sync.Mutex
	open   int
	change chan struct{} // closed and replaced on every change
}

func watchConns(srv *httptest.Server) *connWatcher {
	cw := &connWatcher{change: make(chan struct{})}
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		cw.mu.Lock()
		defer cw.mu.Unlock()
		switch state {
		case http.StateNew:
			cw.open++
		case http.StateClosed, http.StateHijacked:
			cw.open--
		default:
			return
		}
		close(cw.change)
		cw.change = make(chan struct{})
	}
	return cw
}

// waitClosed fails t unless every connection is closed within 10 s.
func (cw *connWatcher) waitClosed(t *testing.T, what string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		cw.mu.Lock()
		open, change := cw.open, cw.change
		cw.mu.Unlock()
		if open == 0 {
			return
		}
		select {
		case <-change:
		case <-deadline:
			t.Fatalf("%s: %d connections still open after 10s", what, open)
		}
	}
}

func (cw *connWatcher) count() int {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.open
}

func TestCloseReleasesConnections(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer slow" {
			arrived <- struct{}{}
			<-release
		}
	}))
	conns := watchConns(srv)
	srv.Start()
	defer srv.Close()
	m, err := New(&config.ForwardAuth{URL: srv.URL, Timeout: 10 * time.Second, RequestHeaders: []string{"Authorization"}})
	if err != nil {
		t.Fatal(err)
	}

	r, q := clientRequest("/")
	if d := m.Authenticate(&untouched{}, r, q); d.Result != auth.Admitted {
		t.Fatalf("decision %+v", d)
	}
	if conns.count() != 1 {
		t.Fatalf("%d connections open after one exchange, want the pooled one", conns.count())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	conns.waitClosed(t, "after Close")

	// A request of a table a reload replaced: it runs after Close, then leaves nothing idle.
	r, q = clientRequest("/")
	if d := m.Authenticate(&untouched{}, r, q); d.Result != auth.Admitted {
		t.Fatalf("decision after Close %+v", d)
	}
	conns.waitClosed(t, "an exchange after Close")

	// A request running while Close runs releases its connection when it ends.
	m2, err := New(&config.ForwardAuth{URL: srv.URL, Timeout: 10 * time.Second, RequestHeaders: []string{"Authorization"}})
	if err != nil {
		t.Fatal(err)
	}
	r, q = clientRequest("/")
	r.Header.Set("Authorization", "Bearer slow")
	done := make(chan auth.Decision, 1)
	go func() { done <- m2.Authenticate(&untouched{}, r, q) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the subrequest did not arrive within 10s")
	}
	m2.Close()
	m2.Close() // idempotent
	close(release)
	if d := <-done; d.Result != auth.Admitted {
		t.Fatalf("decision of the request Close overtook: %+v", d)
	}
	conns.waitClosed(t, "a request that ran across Close")
}

func TestConnectionReuse(t *testing.T) {
	tests := []struct {
		name      string
		body      int  // bytes of the 2xx body
		chunked   bool // no Content-Length
		wantConns int  // connections three admits open
	}{
		{"no body", 0, false, 1},
		{"small body", 1 << 10, false, 1},
		{"small chunked body", 1 << 10, true, 1},
		{"body over the drain limit", drainLimit + 1<<10, false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			opened := 0
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tt.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(tt.body))
				}
				_, _ = w.Write(make([]byte, tt.body))
			}))
			srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
				if state == http.StateNew {
					mu.Lock()
					opened++
					mu.Unlock()
				}
			}
			srv.Start()
			defer srv.Close()
			m := newMechanism(t, &config.ForwardAuth{URL: srv.URL, Timeout: 10 * time.Second})
			for range 3 {
				r, q := clientRequest("/")
				if d := m.Authenticate(&untouched{}, r, q); d.Result != auth.Admitted {
					t.Fatalf("decision %+v", d)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if opened != tt.wantConns {
				t.Fatalf("three admits opened %d connections, want %d", opened, tt.wantConns)
			}
		})
	}
}
