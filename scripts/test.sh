#!/usr/bin/env bash
# Switchyard's one test command, for a newcomer's machine and for CI alike:
#   1. installs what the integration tests need (a Consul agent built once and cached under
#      ~/.cache/switchyard, Debian's ZooKeeper, HAProxy and redis-server packages),
#   2. checks formatting (gofmt -l must print nothing) and go vet,
#   3. runs every test with the race detector,
#   4. builds the container image's final stage with podman and checks it (scripts/build-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

echo "== installing test dependencies"
SWITCHYARD_CONSUL_BIN=$(scripts/install-consul.sh)
export SWITCHYARD_CONSUL_BIN
scripts/install-zookeeper.sh
scripts/install-haproxy.sh  # Debian haproxy, the load balancer of conformance/TestRollingRestart
scripts/install-redis.sh    # Debian redis-server, the shared store of rate limits with store: redis (internal/redistest)

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 40m ./...
scripts/fuzz.sh  # every fuzz target briefly; FUZZTIME=10m scripts/fuzz.sh for a longer local run

echo "== container image"
scripts/build-image.sh
