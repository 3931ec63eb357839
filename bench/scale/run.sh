#!/usr/bin/env bash
# bench/scale/run.sh: the registry and gateway scale runs of issue 21, one after another, at
# their large sizes (10,000 services x 10 endpoints = 100,000 endpoints). docs/scale.md
# records what they printed. Everything runs in process or on loopback: an embedded etcd, a
# ZooKeeper server (skipped without java and the ZooKeeper jar; scripts/install-zookeeper.sh
# installs them), a gateway fed by an in-process registry or by the embedded etcd.
#
#   bench/scale/run.sh            (about 2 minutes on 2 cores; needs 2 GB of memory)
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
run() { go test -run '^$' -v "$@" 2>&1 | grep -E '^(Benchmark|    [a-z_]+\.go:[0-9]+:)|FAIL|panic' || true; }
echo "== etcd: 10,000 services x 10 endpoints, one client, burst of 1,000 changes"
run -bench 'Scale$' -benchtime=1x ./upstream/etcd/
echo "== ZooKeeper: 10,000 services x 10 endpoints, one session, burst of 1,000 changes"
run -bench 'Scale$' -benchtime=1x ./upstream/zookeeper/
echo "== gateway: 10,000 routes over 10,000 services x 10 endpoints, in process"
run -bench 'GatewayScale' -benchtime=1x ./bench/scale/
echo "== gateway: 10,000 routes over an embedded etcd with 10,000 services x 10 endpoints"
run -bench 'GatewayEtcdScale' -benchtime=1x ./bench/scale/
echo "== one endpoint change with 10 and with 10,000 pools"
run -bench 'EndpointChange' -benchtime=200ms -count=3 ./bench/scale/
echo "== route metrics at 10,000 routes"
run -bench 'RouteMetricsMemory' -benchtime=1x ./proxy/
