#!/usr/bin/env bash
# apt-install.sh NAME PACKAGE...: installs Debian packages for a test dependency, as root or
# through passwordless sudo, quietly unless apt-get fails (then its output is shown). NAME
# prefixes the messages. The install-*.sh scripts call it after finding their tool missing.
set -euo pipefail

name=$1
shift

if [[ $(id -u) -eq 0 ]]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo -n)
else
	echo "$name: $* missing and this is not root (and no sudo): run as root" >&2
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1 ||
	! "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@" >>"$log" 2>&1; then
	cat "$log" >&2
	echo "$name: apt-get install $* failed (output above)" >&2
	exit 1
fi
