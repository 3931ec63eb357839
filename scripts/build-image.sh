#!/usr/bin/env bash
# build-image.sh builds the Dockerfile's final stage with podman and checks the image.
#
# Base images cannot be pulled everywhere the tests run (CI machines without registry
# access), so the `build` stage is replaced by the same layout made on this machine: a static
# binary from `go build` and the host's CA bundle, handed to
#   podman build --target final --build-context build=DIR
# The final stage is the Dockerfile's own, unchanged. The image is then inspected, not run
# (user, entrypoint, ports, labels; the files in it: a static binary that reports the baked-in
# version, the CA bundle, the state directory owned by 65532, a valid default config), and
# removed again.
#
# podman comes from apt-get when missing (as root or with passwordless sudo). Without podman
# and no way to install it, the script skips with a message, unless CI is set: CI must build
# the image, so there it fails. VERSION, REVISION and CREATED override the values baked in.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

uid=65532
want_user="$uid:$uid"
want_entrypoint='["/switchyard"]'
want_cmd='["-config","/etc/switchyard/routes.yaml"]'
want_ports='["8080/tcp","9901/tcp"]'

fail() {
	echo "build-image: $*" >&2
	exit 1
}

# skip_or_fail: podman cannot be had or cannot work here. Fatal on CI, a notice elsewhere.
skip_or_fail() {
	if [[ -n "${CI:-}" ]]; then
		fail "$* (CI is set: the image must be built)"
	fi
	echo "build-image: SKIPPED: $* (set CI=true to make this an error)" >&2
	exit 0
}

install_podman() {
	local as_root log
	if [[ $(id -u) -eq 0 ]]; then
		as_root=()
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		as_root=(sudo -n)
	else
		skip_or_fail "podman is not installed and this is not root (and no passwordless sudo): apt-get install podman"
	fi
	echo "build-image: installing podman with apt-get" >&2
	log=$(mktemp)
	export DEBIAN_FRONTEND=noninteractive
	if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1 ||
		! "${as_root[@]}" apt-get install -y -qq --no-install-recommends podman >>"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		skip_or_fail "apt-get install podman failed (output above)"
	fi
	rm -f "$log"
}

if ! command -v podman >/dev/null 2>&1; then
	install_podman
fi
if ! info=$(podman info 2>&1); then
	echo "$info" >&2
	skip_or_fail "podman is installed but does not work here (podman info failed, output above)"
fi
# --build-context came with podman 4.1 (Debian 12 has 4.3; Ubuntu 22.04's 3.4 is too old).
podman_version=$(podman version --format '{{.Client.Version}}')
IFS=. read -r major minor _ <<<"$podman_version"
if ((major < 4 || (major == 4 && minor < 1))); then
	skip_or_fail "podman $podman_version is too old: --build-context needs 4.1 or later"
fi

start=$SECONDS
tmp=$(mktemp -d)
tag="localhost/switchyard-build-image:$$-$RANDOM"
image_built=false
container=""
cleanup() {
	if [[ -n "$container" ]]; then
		podman rm --force "$container" >/dev/null 2>&1 || true
	fi
	if $image_built; then
		podman rmi --force "$tag" >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null || true)}
created=${CREATED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}

# The `build` stage's output, made here: /out/switchyard, /out/ca-certificates.crt, /out/state/.
out="$tmp/build/out"
mkdir -p "$out/state"
echo "== build-image: go build ./cmd/switchyard (static, $version)"
CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X main.version=$version -X main.commit=$revision -X main.date=$created" \
	-o "$out/switchyard" ./cmd/switchyard ||
	fail "go build ./cmd/switchyard failed (output above)"
ca=/etc/ssl/certs/ca-certificates.crt
[[ -s "$ca" ]] || fail "$ca is missing: install the ca-certificates package"
cp "$ca" "$out/ca-certificates.crt"

echo "== build-image: podman build --target final ($tag)"
image_built=true # from here on a partly built image is removed too
if ! podman build --quiet --layers=false --format docker --target final \
	--build-context build="$tmp/build" \
	--build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
	--tag "$tag" --file Dockerfile . >"$tmp/build.log" 2>&1; then
	cat "$tmp/build.log" >&2
	fail "podman build failed (output above)"
fi

echo "== build-image: checking the image"
errors=0
check() { # check WHAT GOT WANT
	if [[ "$2" != "$3" ]]; then
		echo "build-image: $1 is $2, want $3" >&2
		errors=$((errors + 1))
	fi
}
inspect() { podman image inspect --format "$1" "$tag"; }
check "user" "$(inspect '{{.Config.User}}')" "$want_user"
check "entrypoint" "$(inspect '{{json .Config.Entrypoint}}')" "$want_entrypoint"
check "cmd" "$(inspect '{{json .Config.Cmd}}')" "$want_cmd"
# ExposedPorts is a map: its JSON keys come out sorted.
check "exposed ports" "$(inspect '{{json .Config.ExposedPorts}}' | grep -o '"[0-9]*/tcp"' | paste -sd, | sed 's/^/[/; s/$/]/')" "$want_ports"
check "healthcheck" "$(inspect '{{json .Config.Healthcheck}}')" "null"
label() { inspect "{{index .Config.Labels \"org.opencontainers.image.$1\"}}"; }
check "label title" "$(label title)" "switchyard"
check "label version" "$(label version)" "$version"
check "label revision" "$(label revision)" "$revision"
check "label created" "$(label created)" "$created"
for l in description source licenses; do
	[[ -n "$(label "$l")" ]] || {
		echo "build-image: label org.opencontainers.image.$l is empty" >&2
		errors=$((errors + 1))
	}
done

# The image's files: export a created (never started) container's filesystem. This works
# rootless, where `podman image mount` would need `podman unshare`.
container=$(podman create "$tag")
podman export --output "$tmp/rootfs.tar" "$container"
mkdir "$tmp/rootfs"
tar -xf "$tmp/rootfs.tar" -C "$tmp/rootfs" --no-same-owner
listing=$(tar -tvf "$tmp/rootfs.tar")
root="$tmp/rootfs"
for f in switchyard etc/ssl/certs/ca-certificates.crt etc/switchyard/routes.yaml etc/passwd etc/group; do
	[[ -s "$root/$f" ]] || {
		echo "build-image: /$f is missing or empty in the image" >&2
		errors=$((errors + 1))
	}
done
cmp -s "$root/switchyard" "$out/switchyard" || {
	echo "build-image: /switchyard is not the binary built for the image" >&2
	errors=$((errors + 1))
}
# tar -tv prints owner as uid/gid (no names for 65532 here) or name/name; the state
# directory must belong to the non-root user and its group.
state_owner=$(awk '$NF == "var/lib/switchyard/" || $NF == "./var/lib/switchyard/" { print $2 }' <<<"$listing")
case "$state_owner" in
"$uid/$uid" | nonroot/nonroot) ;;
*)
	echo "build-image: /var/lib/switchyard is owned by '${state_owner:-missing}', want $uid/$uid" >&2
	errors=$((errors + 1))
	;;
esac

# A static ELF has no PT_INTERP (2 = PT_DYNAMIC, 3 = PT_INTERP) program header.
elf_static() {
	local bin=$1 magic phoff phentsize phnum i type
	magic=$(od -An -tx1 -N5 "$bin" | tr -d ' \n')
	[[ "$magic" == 7f454c4602 ]] || {
		echo "not a 64-bit ELF file (magic $magic)"
		return 1
	}
	phoff=$(od -An -tu8 -j32 -N8 "$bin" | tr -d ' ')
	phentsize=$(od -An -tu2 -j54 -N2 "$bin" | tr -d ' ')
	phnum=$(od -An -tu2 -j56 -N2 "$bin" | tr -d ' ')
	for ((i = 0; i < phnum; i++)); do
		type=$(od -An -tu4 -j$((phoff + i * phentsize)) -N4 "$bin" | tr -d ' ')
		if [[ "$type" == 2 || "$type" == 3 ]]; then
			echo "dynamically linked (program header $i has type $type)"
			return 1
		fi
	done
}
if ! why=$(elf_static "$root/switchyard"); then
	echo "build-image: /switchyard is not static: $why" >&2
	errors=$((errors + 1))
fi
settings=$(go version -m "$root/switchyard")
for s in "CGO_ENABLED=0" "-trimpath=true"; do
	grep -q -- "build[[:space:]]*$s\$" <<<"$settings" || {
		echo "build-image: /switchyard was not built with $s" >&2
		errors=$((errors + 1))
	}
done

# The binary in the image runs on this (same-architecture) host: it reports the baked-in
# version and accepts the image's default config as the image's environment leaves it.
got_version=$("$root/switchyard" version)
check "switchyard version" "$got_version" "switchyard $version (commit ${revision:-unknown}, built $created, $(go env GOVERSION))"
if ! env -i XDG_STATE_HOME=/var/lib "$root/switchyard" validate -config "$root/etc/switchyard/routes.yaml" >"$tmp/validate.log" 2>&1; then
	cat "$tmp/validate.log" >&2
	echo "build-image: the image's /etc/switchyard/routes.yaml does not validate (output above)" >&2
	errors=$((errors + 1))
fi

size=$(inspect '{{.Size}}')
if ((errors > 0)); then
	fail "$errors check(s) failed for $tag"
fi
echo "build-image: ok: podman $podman_version, image $((size / 1024 / 1024)) MiB ($size bytes), $version, $((SECONDS - start)) s"
