#!/usr/bin/env bash
# Quick start: builds and runs the gateway on ./routes.yaml (no discovery section, so it
# starts an embedded etcd on 127.0.0.1:2379), then two instances of examples/echo that
# register themselves as "users" in it. Try, from another terminal:
#   curl -s localhost:8080/api/users/42
# Ctrl-C stops everything (the terminal signals every process at once: the echo instances
# deregister while the gateway drains its requests in flight; routes.yaml sets no drain_delay).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
bin=$(mktemp -d)
pids=()
stop() {
  trap - EXIT INT TERM
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
  rm -rf "$bin"
}
trap stop EXIT INT TERM

echo "quickstart: building gateway and examples/echo..." >&2
go build -o "$bin/switchyard" ./cmd/switchyard
go build -o "$bin/echo" ./examples/echo

"$bin/switchyard" -config routes.yaml & pids+=($!)
for _ in $(seq 1 150); do
  curl -fs -o /dev/null localhost:9901/readyz && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "quickstart: the gateway exited" >&2; exit 1; }
  sleep 0.1
done
"$bin/echo" -listen 127.0.0.1:9001 -service users -registry etcd://127.0.0.1:2379 & pids+=($!)
"$bin/echo" -listen 127.0.0.1:9002 -service users -registry etcd://127.0.0.1:2379 & pids+=($!)
sleep 0.5
cat >&2 <<MSG

quickstart: gateway on :8080 (admin 127.0.0.1:9901), two "users" instances registered.
  curl -s localhost:8080/api/users/42        # alternates between 127.0.0.1:9001 and :9002
  curl -s localhost:9901/admin/upstreams     # pools and endpoint state
Ctrl-C to stop.
MSG
wait "${pids[0]}"
