#!/usr/bin/env bash
# install-redis.sh installs Debian's redis-server so the rate-limit tests (store: redis) can run
# a real Redis per test package (internal/redistest). Idempotent and quiet when redis-server is
# already installed: on PATH, or at /usr/bin/redis-server (internal/redistest's Binary looks in
# the same places, after $SWITCHYARD_REDIS_BIN).
set -euo pipefail

have_redis() {
	command -v redis-server >/dev/null 2>&1 || [[ -f /usr/bin/redis-server && -x /usr/bin/redis-server ]]
}

if have_redis; then
	exit 0
fi

"$(dirname "$0")/apt-install.sh" install-redis redis-server

# The package starts a system redis on 6379 only where an init system runs; the tests start
# their own on free ports with no persistence and need nothing else from the package.
if ! have_redis; then
	echo "install-redis: the redis-server package installed but redis-server is neither on PATH nor /usr/bin/redis-server" >&2
	exit 1
fi
