#!/usr/bin/env bash
# install-haproxy.sh installs Debian's HAProxy (2.6) so the conformance rolling-restart test can
# put a real TCP load balancer, health-checking /readyz, in front of two gateways. Idempotent and
# quiet when haproxy is already installed: on PATH, or at /usr/sbin/haproxy, where Debian puts it
# and which a non-root user's PATH does not include (conformance/haproxy_test.go's haproxyBinary
# looks in the same two places).
set -euo pipefail

have_haproxy() {
	command -v haproxy >/dev/null 2>&1 || [[ -f /usr/sbin/haproxy && -x /usr/sbin/haproxy ]]
}

if have_haproxy; then
	exit 0
fi

"$(dirname "$0")/apt-install.sh" install-haproxy haproxy

# The package enables and starts a system haproxy on port 80 only where an init system runs;
# the test starts its own with a generated config and needs nothing else from the package.
if ! have_haproxy; then
	echo "install-haproxy: the haproxy package installed but haproxy is neither on PATH nor /usr/sbin/haproxy" >&2
	exit 1
fi
