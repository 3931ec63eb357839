#!/usr/bin/env bash
# install-zookeeper.sh installs Debian's ZooKeeper server (3.8) so internal/zktest can run a
# real server in integration tests. Idempotent and quiet when the jar is already there.
set -euo pipefail

jar=/usr/share/java/zookeeper.jar

if [[ -f "$jar" ]] && command -v java >/dev/null 2>&1; then
	exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo -n)
else
	echo "install-zookeeper: $jar is missing and this is not root (and no sudo): run as root" >&2
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1 ||
	! "${as_root[@]}" apt-get install -y -qq --no-install-recommends zookeeper >>"$log" 2>&1; then
	cat "$log" >&2
	echo "install-zookeeper: apt-get install zookeeper failed (output above)" >&2
	exit 1
fi

if [[ ! -f "$jar" ]]; then
	echo "install-zookeeper: the zookeeper package installed but $jar is not there" >&2
	exit 1
fi
if ! command -v java >/dev/null 2>&1; then
	echo "install-zookeeper: java is not on PATH (install a JRE, e.g. default-jre-headless)" >&2
	exit 1
fi
