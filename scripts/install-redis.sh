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

if [[ $(id -u) -eq 0 ]]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo -n)
else
	echo "install-redis: redis-server is missing and this is not root (and no sudo): run as root" >&2
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1 ||
	! "${as_root[@]}" apt-get install -y -qq --no-install-recommends redis-server >>"$log" 2>&1; then
	cat "$log" >&2
	echo "install-redis: apt-get install redis-server failed (output above)" >&2
	exit 1
fi

# The package starts a system redis on 6379 only where an init system runs; the tests start
# their own on free ports with no persistence and need nothing else from the package.
if ! have_redis; then
	echo "install-redis: the redis-server package installed but redis-server is neither on PATH nor /usr/bin/redis-server" >&2
	exit 1
fi
