#!/usr/bin/env bash
# install-consul.sh builds the Consul agent used by the integration tests, once.
#
# There is no Consul package or Docker on these machines, so the agent is built from its
# published Go module (see /work/shared/notes/real-services.md). Consul v1.14.11 is the last
# MPL-2.0 line whose module zip builds without sub-modules the proxy lacks. The binary is
# cached under ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/consul-1.14.11/consul and never
# placed inside the repository. Progress goes to stderr; the binary's path is the only thing
# printed on stdout, so callers can write:
#
#   export SWITCHYARD_CONSUL_BIN="$(scripts/install-consul.sh)"
set -euo pipefail

version=1.14.11
cache="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/consul-${version}"
bin="${cache}/consul"
export GOTOOLCHAIN=local

log() { printf 'install-consul: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# has_version reports whether $1 runs and says it is Consul v$version. The output is captured
# first: `consul version | grep -q` would fail under pipefail when grep exits early (SIGPIPE).
has_version() {
	local out
	out="$("$1" version 2>/dev/null)" || return 1
	[[ "$out" == "Consul v${version}"* ]]
}

# Idempotent: an existing binary that reports the right version is reused.
if [[ -x "$bin" ]] && has_version "$bin"; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "$cache" || die "cannot create $cache"

work="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-consul-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

log "downloading github.com/hashicorp/consul@v${version} module"
# Run outside any module so the repo's go.mod is neither read nor changed.
json="$(cd "$work" && GOFLAGS= GO111MODULE=on go mod download -json "github.com/hashicorp/consul@v${version}")" ||
	die "go mod download failed: $json"
dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
[[ -n "$dir" && -d "$dir" ]] || die "module directory not found in go mod download output"

src="$work/consul"
cp -r "$dir" "$src"
chmod -R u+w "$src"
# The module's go.mod replaces api/sdk/proto-public with sub-folders the zip does not carry;
# without those lines go uses the published versions the same go.mod requires.
sed -i '/^replace github.com\/hashicorp\/consul/d' "$src/go.mod"

log "building consul v${version} (several minutes on 2 cores)"
start=$SECONDS
(cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$work/consul.bin" .) >&2 ||
	die "go build failed (see output above)"
log "built in $((SECONDS - start)) s"

# Install atomically so a concurrent run never sees a half-written binary.
mv -f "$work/consul.bin" "$bin.tmp.$$"
mv -f "$bin.tmp.$$" "$bin"
has_version "$bin" || die "built binary does not report v${version}"
echo "$bin"
