package main

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/redistest"
	"github.com/switchyard/switchyard/ratelimit"
)

func TestStartRedis(t *testing.T) {
	srv := redistest.Start(t)
	limit := &config.RateLimit{RPS: 1, Burst: 1, Store: config.RateLimitStoreRedis}
	for _, tc := range []struct {
		name     string
		redis    *config.Redis
		wantErr  string
		wantLog  string
		admitted int // of 3 requests, 0: no store
	}{
		{"no block", nil, "", "", 0},
		{"reachable", &config.Redis{Address: srv.Addr, Timeout: 50 * time.Millisecond, OnError: config.RedisOnErrorDeny}, "", "redis rate-limit store", 1},
		{"unreachable starts and applies on_error", &config.Redis{Address: "127.0.0.1:1", Timeout: 50 * time.Millisecond, OnError: config.RedisOnErrorAllow}, "", "redis unreachable at start", 3},
		{"bad tls", &config.Redis{Address: srv.Addr, Timeout: 50 * time.Millisecond, TLS: &config.TLS{CAFile: "/nonexistent/ca.pem"}}, "routes.yaml: redis: tls:", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			closeRedis, err := startRedis(&config.Config{Path: "routes.yaml", Redis: tc.redis}, log)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				closeRedis()
				if ratelimit.DefaultStore() != nil {
					t.Error("store still set after close")
				}
			}()
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q, want %q", logs.String(), tc.wantLog)
			}
			l, err := ratelimit.New("cmd-"+strings.ReplaceAll(tc.name, " ", "-"), limit, nil)
			if tc.redis == nil {
				if err == nil {
					t.Fatal("store: redis built with no redis block")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			admitted := 0
			for range 3 {
				if l.Allow(httptest.NewRequest("GET", "/", nil), "").Allowed {
					admitted++
				}
			}
			if admitted != tc.admitted {
				t.Errorf("admitted %d of 3, want %d", admitted, tc.admitted)
			}
		})
	}
}
