package jwt

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPruneForgetsMetrics: the keys gauge follows the sets in use.
func TestPruneForgetsMetrics(t *testing.T) {
	js := newJWKSServer(t, jwksJSON(t, rsaSigner(t), ecSigner(t)))
	reg := prometheus.NewRegistry()
	sets := NewKeySets(context.Background(), nil, reg)
	defer sets.Close()
	set := sets.Get(testConfig(js.URL))
	waitLoaded(t, set)
	if n := testutil.CollectAndCount(sets.metrics.loaded); n != 1 {
		t.Fatalf("%d gauges, want 1", n)
	}
	if v := testutil.ToFloat64(sets.metrics.loaded.WithLabelValues(redactURL(js.URL))); v != 2 {
		t.Fatalf("keys %v, want 2", v)
	}
	sets.Prune(nil)
	if n := testutil.CollectAndCount(sets.metrics.loaded); n != 0 {
		t.Fatalf("%d gauges after Prune, want 0", n)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://issuer.test/.well-known/jwks.json":           "https://issuer.test/.well-known/jwks.json",
		"https://user:secret@issuer.test/jwks?token=s3cr3t#x": "https://issuer.test/jwks",
		"http://127.0.0.1:8080/keys?":                         "http://127.0.0.1:8080/keys",
		"://bad":                                              "invalid-url",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLogsRedactTheURL: a failing fetch is logged without the URL's credentials.
func TestLogsRedactTheURL(t *testing.T) {
	js := newJWKSServer(t, nil)
	js.Close() // connection refused: the client's error names the URL
	var logs bytes.Buffer
	var mu sync.Mutex
	sets := NewKeySets(context.Background(), slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)), nil)
	set := sets.Get(testConfig(strings.Replace(js.URL, "http://", "http://user:pw-secret@", 1) + "/jwks?token=q-secret"))
	waitLoaded(t, set)
	sets.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "jwks refresh failed") || strings.Contains(logs.String(), "secret") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
