package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/ratelimit"
)

// startRedis creates the process's one Redis client from cfg's redis block and makes it the
// store of rate limits with store: redis. No block: nothing to do. The block is read once: a
// reload that changes it is logged and takes effect on restart (as discovery is). An
// unreachable Redis does not stop the start: each request then gets redis.on_error.
func startRedis(cfg *config.Config, log *slog.Logger) (func(), error) {
	rc := cfg.Redis
	if rc == nil {
		ratelimit.SetDefaultStore(nil)
		return func() {}, nil
	}
	// go-redis logs every failed dial; during an outage that is every request. The errors are
	// counted (switchyard_ratelimit_redis_errors_total); the log keeps them at debug level.
	redis.SetLogger(redisLog{log})
	client, err := newRedisClient(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: redis: %w", cfg.Path, err)
	}
	ratelimit.SetDefaultStore(ratelimit.NewStore(client, rc))
	ctx, cancel := context.WithTimeout(context.Background(), rc.Timeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		log.Warn("redis unreachable at start; rate limits with store: redis apply redis.on_error until it answers",
			"address", rc.Address, "on_error", rc.OnError, "error", err)
	} else {
		log.Info("redis rate-limit store", "address", rc.Address, "db", rc.DB, "timeout", rc.Timeout, "on_error", rc.OnError)
	}
	return func() {
		ratelimit.SetDefaultStore(nil)
		_ = client.Close()
	}, nil
}

// newRedisClient builds the client so that no call waits past rc.Timeout: dial, read,
// write and pool waits all take it, retries are off (a retry could only run past the
// deadline), and the context's deadline is honoured on the socket.
func newRedisClient(rc *config.Redis) (*redis.Client, error) {
	opts := &redis.Options{
		Addr:                  rc.Address,
		Username:              rc.Username,
		Password:              rc.Password,
		DB:                    rc.DB,
		DialTimeout:           rc.Timeout,
		ReadTimeout:           rc.Timeout,
		WriteTimeout:          rc.Timeout,
		PoolTimeout:           rc.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,    // one dial per attempt: a refused connection fails at once
		DisableIdentity:       true, // no CLIENT SETINFO round trip on each new connection
	}
	if rc.TLS != nil {
		tc, err := proxy.ClientTLS(rc.TLS)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts.TLSConfig = tc
	}
	return redis.NewClient(opts), nil
}

// redisLog sends go-redis's internal messages to the gateway's log at debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
