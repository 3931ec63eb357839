package config

import (
	"testing"
	"time"
)

func TestRedisErrors(t *testing.T) {
	t.Setenv("SY_REDIS_PASSWORD", "secret")
	const redisRoute = "routes:\n  - prefix: /a\n    upstreams: [\"http://127.0.0.1:9001\"]\n    rate_limit: { rps: 10, store: redis }\n"
	checkErrors(t, []errorCase{
		{"store redis without a redis block", redisRoute, []string{
			"routes.yaml:4: routes[0].rate_limit.store: store: redis needs the top-level redis block (redis: {address: host:port})"}},
		{"defaults store redis without a redis block reported once", "defaults:\n  rate_limit: { rps: 10, store: redis }\n" + okRoute + "  - prefix: /b\n    upstreams: [\"http://127.0.0.1:9002\"]\n", []string{
			"routes.yaml:2: defaults.rate_limit.store: store: redis needs the top-level redis block (redis: {address: host:port})"}},
		{"unknown store", "routes:\n  - prefix: /a\n    upstreams: [\"http://127.0.0.1:9001\"]\n    rate_limit: { rps: 10, store: redsi }\n", []string{
			`routes.yaml:4: routes[0].rate_limit.store: unknown value "redsi" (did you mean "redis"? want local or redis)`}},
		{"bad address", "redis:\n  address: localhost\n" + okRoute, []string{
			`routes.yaml:2: redis.address: invalid address "localhost": want host:port, e.g. 127.0.0.1:8080`}},
		{"address without host", "redis:\n  address: \":6379\"\n" + okRoute, []string{
			`routes.yaml:2: redis.address: invalid address ":6379": missing host`}},
		{"negative db", "redis:\n  db: -1\n" + okRoute, []string{
			"routes.yaml:2: redis.db: must not be negative, got -1"}},
		{"zero timeout", "redis:\n  timeout: 0s\n" + okRoute, []string{
			"routes.yaml:2: redis.timeout: must be positive and at most 1s (each rate-limited request may wait this long while Redis is down), got 0s"}},
		{"timeout in seconds", "redis:\n  timeout: 5s\n" + okRoute, []string{
			"routes.yaml:2: redis.timeout: must be positive and at most 1s (each rate-limited request may wait this long while Redis is down), got 5s"}},
		{"unknown on_error", "redis:\n  on_error: open\n" + okRoute, []string{
			`routes.yaml:2: redis.on_error: unknown value "open" (want local or allow or deny)`}},
		{"username without password", "redis:\n  username: gw\n" + okRoute, []string{
			"routes.yaml:2: redis.username: needs password (an ACL login; e.g. password: ${REDIS_PASSWORD})"}},
		{"tls half a client certificate", "redis:\n  tls: { cert_file: c.pem }\n" + okRoute, []string{
			"routes.yaml:2: redis.tls: cert_file and key_file go together (client certificate)"}},
		{"unknown redis key", "redis:\n  adress: x:1\n" + okRoute, []string{
			`routes.yaml:2: redis: unknown key "adress" (did you mean "address"?)`}},
	})
}

func TestRedisDefaults(t *testing.T) {
	t.Setenv("SY_REDIS_PASSWORD", "secret")
	c, err := Parse("routes.yaml", []byte("redis:\n  password: ${SY_REDIS_PASSWORD}\nroutes:\n  - prefix: /a\n    upstreams: [\"http://127.0.0.1:9001\"]\n    rate_limit: { rps: 10, store: redis }\n  - prefix: /b\n    upstreams: [\"http://127.0.0.1:9001\"]\n    rate_limit: { rps: 10 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Redis{Address: DefaultRedisAddress, Password: "secret", Timeout: DefaultRedisTimeout, OnError: RedisOnErrorLocal}
	if r := c.Redis; r == nil || *r != want {
		t.Errorf("redis = %+v, want %+v", r, want)
	}
	if s := c.Routes[0].RateLimit.Store; s != RateLimitStoreRedis {
		t.Errorf("routes[0] store %q", s)
	}
	if s := c.Routes[1].RateLimit.Store; s != RateLimitStoreLocal {
		t.Errorf("routes[1] store %q, want the default local", s)
	}
	if DefaultRedisTimeout != 50*time.Millisecond {
		t.Errorf("README documents a 50ms default timeout")
	}
}
