package forward

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

// FuzzAnswer sends arbitrary bytes as the auth service's answer and checks what holds for
// every answer: the decision is one of the three forward auth makes; the client is written
// to only when the answer is relayed, and then with a length that matches the body and no
// hop-by-hop or framing field; the request is edited only when admitted, and the identity
// is bounded.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nX-User-Id: alice\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer\r\nContent-Length: 2\r\n\r\nno",
		"HTTP/1.1 302 Found\r\nLocation: /login\r\nConnection: X-A, close\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nno\r\n0\r\nX-T: v\r\n\r\n",
		"HTTP/1.0 500 Oops\r\nKeep-Alive: timeout=5\r\n\r\nbody until close",
		"HTTP/1.1 204 No Content\r\nX-User-Id: a\r\nX-User-Id: b\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"HTTP/1.1 200 OK\r\nX-User-Id: ali\x01ce\r\n\r\n",
		"garbage",
	} {
		f.Add(seed)
	}
	var answer atomic.Pointer[string]
	service := rawServiceFunc(f, func() string { return *answer.Load() })
	m := newMechanism(f, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second,
		RequestHeaders: []string{"Authorization"}, ResponseHeaders: []string{"X-User-Id", "Location"}, IdentityHeader: "X-User-Id"})
	f.Fuzz(func(t *testing.T, raw string) {
		answer.Store(&raw)
		r, q := clientRequest("/")
		before := r.Header.Clone()
		w := httptest.NewRecorder()
		w.Header().Set("X-Request-Id", "req-42")
		d := m.Authenticate(w, r, q)
		if d.Result != auth.Answered && (len(w.Header()) != 1 || w.Body.Len() != 0 || w.Code != http.StatusOK) {
			t.Fatalf("decision %+v but the client got %d %v %q", d, w.Code, w.Header(), w.Body.Bytes())
		}
		if d.Result != auth.Admitted && !reflect.DeepEqual(r.Header, before) {
			t.Fatalf("decision %+v but the request was edited: %v", d, r.Header)
		}
		switch d.Result {
		case auth.Admitted:
			if d.Reason != "ok" || len(d.Identity) > MaxIdentityLength || d.Identity != r.Header.Get("X-User-Id") {
				t.Fatalf("admitted %+v with forwarded X-User-Id %q", d, r.Header.Get("X-User-Id"))
			}
		case auth.Answered:
			if d.Reason != "denied" || d.Status != w.Code || d.Status < 300 {
				t.Fatalf("answered %+v, client got %d", d, w.Code)
			}
			if w.Body.Len() > MaxRelayedBody {
				t.Fatalf("relayed %d bytes", w.Body.Len())
			}
			if bodyAllowed(d.Status) && w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Fatalf("Content-Length %q for %d bytes", w.Header().Get("Content-Length"), w.Body.Len())
			}
			for name := range w.Header() {
				if isHopByHop(name) || name == "Alt-Svc" {
					t.Fatalf("relayed %s", name)
				}
			}
			if w.Header().Get("X-Request-Id") != "req-42" {
				t.Fatalf("X-Request-Id %q", w.Header().Get("X-Request-Id"))
			}
		case auth.Unavailable:
			if d.Reason != "unavailable" {
				t.Fatalf("unavailable for %q", d.Reason)
			}
		default:
			t.Fatalf("decision %+v", d)
		}
	})
}
