#!/usr/bin/env bash
# install-zookeeper.sh installs Debian's ZooKeeper server (3.8) so internal/zktest can run a
# real server in integration tests. Idempotent and quiet when the jar is already there.
set -euo pipefail

jar=/usr/share/java/zookeeper.jar

if [[ -f "$jar" ]] && command -v java >/dev/null 2>&1; then
	exit 0
fi

"$(dirname "$0")/apt-install.sh" install-zookeeper zookeeper

if [[ ! -f "$jar" ]]; then
	echo "install-zookeeper: the zookeeper package installed but $jar is not there" >&2
	exit 1
fi
if ! command -v java >/dev/null 2>&1; then
	echo "install-zookeeper: java is not on PATH (install a JRE, e.g. default-jre-headless)" >&2
	exit 1
fi
