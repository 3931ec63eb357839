package forward

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

func TestLoggedCauses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	tests := []struct {
		name    string
		service func(t *testing.T) string
		level   slog.Level
		want    []string // in the log; none: nothing logged
	}{
		{
			name:    "connection refused",
			service: func(*testing.T) string { return down },
			level:   slog.LevelDebug,
			want:    []string{"forward auth could not decide", "route=shop", "request_id=req-42", "reason=unavailable", "connection refused"},
		},
		{
			name: "a bad answer names its check",
			service: func(t *testing.T) string {
				return rawService(t, "HTTP/1.1 200 OK\r\nX-User-Id: a\r\nX-User-Id: b\r\nContent-Length: 0\r\n\r\n")
			},
			level: slog.LevelDebug,
			want:  []string{"reason=unavailable", "identity header sent more than once"},
		},
		{
			name: "an oversized body",
			service: func(t *testing.T) string {
				return rawService(t, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 70000\r\n\r\n")
			},
			level: slog.LevelDebug,
			want:  []string{"answer body longer than the relay cap"},
		},
		{
			name:    "admitted: nothing to say",
			service: func(t *testing.T) string { return rawService(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") },
			level:   slog.LevelDebug,
		},
		{
			name: "denied: the answer is the client's, nothing to say",
			service: func(t *testing.T) string {
				return rawService(t, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
			},
			level: slog.LevelDebug,
		},
		{
			name:    "debug off",
			service: func(*testing.T) string { return down },
			level:   slog.LevelInfo,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMechanism(t, &config.ForwardAuth{URL: tt.service(t), Timeout: 10 * time.Second,
				ResponseHeaders: []string{"X-User-Id"}, IdentityHeader: "X-User-Id"})
			var buf bytes.Buffer
			m.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level})))
			r, q := clientRequest("/")
			d := m.Authenticate(&discardWriter{header: http.Header{}}, r, q)
			if len(tt.want) == 0 {
				if buf.Len() != 0 {
					t.Fatalf("decision %+v logged %q", d, buf.String())
				}
				return
			}
			if d.Result != auth.Unavailable {
				t.Fatalf("decision %+v", d)
			}
			for _, want := range tt.want {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("log %q does not hold %q", buf.String(), want)
				}
			}
		})
	}
}
