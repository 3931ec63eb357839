#!/usr/bin/env bash
# bench/run.sh: CPU per proxied request and req/s of Switchyard against nginx and a bare
# httputil.ReverseProxy, measured in one run on this machine.
#
# Layout (as in the README's Performance section): the proxy under test and the backend share
# core 0; wrk runs on core 1 with 64 connections. The proxy's CPU time (utime+stime from
# /proc/PID/stat) divided by the requests wrk completed is its CPU cost per request. Only
# loopback addresses are used; every process started here is stopped by PID.
#
#   bench/run.sh [seconds-per-proxy]      (default 10; needs wrk; nginx, haproxy and caddy
#                                          from Debian are measured when installed)
#
# With redis-server installed it also measures a never-biting per-client-IP rate limit with its
# buckets in the process (rl-local) and in Redis (rl-redis, Redis's CPU counted) and prints
# the CPU ratio. BENCH_ONLY=NAME measures only the proxies whose name starts with NAME
# (e.g. BENCH_ONLY=rl bench/run.sh 5).
#
# filters-off and filters-on measure the same route without and with every per-route filter
# (a match condition, header edits, ip_allow, CORS, max_body_bytes, compression that finds the
# 64-byte body too small) and print the CPU ratio. BENCH_BASELINE=REV also builds that git
# revision and measures it as "baseline" on the no-filter config, against filters-off: the
# same-run check that the no-filter path did not get slower (BENCH_ONLY=filters too).
#
# auth-apikey, auth-basic and auth-jwt measure the no-filter route behind one auth mechanism,
# every request carrying a valid credential (bench/authfixture writes them and serves the
# JWKS): an API key, basic auth (bcrypt once, then the cache of successful checks) and an
# RS256 JWT with a cached key; each prints its CPU per request against filters-off's
# (BENCH_ONLY=filters measures filters-off without them, BENCH_ONLY=auth them alone).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
secs=${1:-10}
conns=64
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
go build -o "$tmp/switchyard" ./cmd/switchyard
go build -o "$tmp/backend" ./bench/backend
go build -o "$tmp/httputilproxy" ./bench/httputilproxy
go build -o "$tmp/authfixture" ./bench/authfixture
if [ -n "${BENCH_BASELINE:-}" ]; then
  git worktree add -q --detach "$tmp/baseline-src" "$BENCH_BASELINE"
  (cd "$tmp/baseline-src" && go build -o "$tmp/switchyard-baseline" ./cmd/switchyard)
  git worktree remove --force "$tmp/baseline-src"
fi

taskset -c 0 "$tmp/backend" -listen 127.0.0.1:9101 & pids+=($!)

cat >"$tmp/routes.yaml" <<YAML
listen: "127.0.0.1:9103"
admin: "127.0.0.1:9104"
discovery: {}
defaults: { timeout: 30s, retries: 1 }
routes:
  - prefix: /
    upstreams: ["http://127.0.0.1:9101"]
YAML

# Every feature on: passive health, breaker, retries (defaults), plus a rate limit per client
# IP that never bites, active health checks and a per-request access log.
cat >"$tmp/routes-full.yaml" <<YAML
listen: "127.0.0.1:9108"
admin: "127.0.0.1:9109"
discovery: {}
defaults: { timeout: 30s, retries: 1, access_log: true }
routes:
  - prefix: /
    upstreams: ["http://127.0.0.1:9101"]
    rate_limit: { rps: 1000000, burst: 1000000, key: client_ip }
    health_check: { path: /healthz, interval: 1s }
YAML

# A per-client-IP rate limit that never bites, its buckets kept in this process (store: local)
# or in a redis-server on loopback (store: redis, one round trip per request): the cost of
# sharing limits across replicas. Redis runs on the proxy's core and its CPU is counted.
for store in local redis; do
  port=$([ "$store" = local ] && echo 9110 || echo 9112)
  cat >"$tmp/routes-rl-$store.yaml" <<YAML
listen: "127.0.0.1:$port"
admin: "127.0.0.1:$((port + 1))"
discovery: {}
redis: { address: "127.0.0.1:9114" }
defaults: { timeout: 30s, retries: 1 }
routes:
  - prefix: /
    upstreams: ["http://127.0.0.1:9101"]
    rate_limit: { rps: 1000000, burst: 1000000, key: client_ip, store: $store }
YAML
done

# The same route with no filter, and with every filter on (none of them refusing wrk).
for variant in off on baseline; do
  port=$(case $variant in off) echo 9115;; on) echo 9117;; baseline) echo 9119;; esac)
  filters=""
  if [ "$variant" = on ]; then
    filters='
    match: { methods: [GET, HEAD] }
    headers: { request: { set: { X-Env: bench }, remove: [Cookie] }, response: { set: { X-Gateway: switchyard }, remove: [Server] } }
    ip_allow: [127.0.0.0/8]
    max_body_bytes: 1048576
    cors: { allow_origins: ["https://app.example.com"] }
    compress: { enabled: true }'
  fi
  cat >"$tmp/routes-filters-$variant.yaml" <<YAML
listen: "127.0.0.1:$port"
admin: "127.0.0.1:$((port + 1))"
discovery: {}
defaults: { timeout: 30s, retries: 1 }
routes:
  - prefix: /
    upstreams: ["http://127.0.0.1:9101"]$filters
YAML
done

# The no-filter route behind each auth mechanism (bench/authfixture's files and JWKS).
for mech in apikey basic jwt; do
  port=$(case $mech in apikey) echo 9121;; basic) echo 9123;; jwt) echo 9125;; esac)
  auth=$(case $mech in
    apikey) echo "{ api_key: { keys_file: $tmp/keys.yaml } }";;
    basic) echo "{ basic: { users_file: $tmp/htpasswd } }";;
    jwt) echo "{ jwt: { jwks_url: http://127.0.0.1:9130/jwks, issuer: bench, audiences: [bench], algorithms: [RS256] } }";;
  esac)
  cat >"$tmp/routes-auth-$mech.yaml" <<YAML
listen: "127.0.0.1:$port"
admin: "127.0.0.1:$((port + 1))"
discovery: {}
defaults: { timeout: 30s, retries: 1 }
routes:
  - prefix: /
    upstreams: ["http://127.0.0.1:9101"]
    auth: $auth
YAML
done

cat >"$tmp/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
error_log $tmp/nginx-error.log warn;
pid $tmp/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:9101; keepalive 256; }
  server {
    listen 127.0.0.1:9105;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX

cat >"$tmp/Caddyfile" <<CADDY
{
	admin off
	auto_https off
}
http://127.0.0.1:9106 {
	reverse_proxy 127.0.0.1:9101
}
CADDY

cat >"$tmp/haproxy.cfg" <<HAPROXY
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:9107
  default_backend be
backend be
  http-reuse always
  server b1 127.0.0.1:9101
HAPROXY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# hdr: a request header wait_http and measure send ("Name: value"); empty for none.
hdr=""
wait_http() {
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null ${hdr:+-H "$hdr"} "$1" && return 0
    sleep 0.1
  done
  echo "bench: $1 never answered" >&2; return 1
}

# measure NAME PID URL [PID2]: wrk for $secs seconds, prints "NAME req/s us_cpu_per_req p99"
# (the CPU of PID, plus PID2's when given: a helper process such as redis-server).
measure() {
  local name=$1 pid=$2 url=$3 pid2=${4:-}
  wait_http "$url"
  wrk -t1 -c"$conns" -d2s ${hdr:+-H "$hdr"} "$url" >/dev/null 2>&1   # warm-up: pools filled, JIT-free but caches warm
  local before after out reqs rps p99
  before=$(( $(cpu_ticks "$pid") + ${pid2:+$(cpu_ticks "$pid2")}+0 ))
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency ${hdr:+-H "$hdr"} "$url")
  after=$(( $(cpu_ticks "$pid") + ${pid2:+$(cpu_ticks "$pid2")}+0 ))
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local tck; tck=$(getconf CLK_TCK)
  awk -v n="$name" -v r="$rps" -v q="$reqs" -v c=$((after - before)) -v t="$tck" -v p="$p99" \
    'BEGIN { printf "%-16s %10.0f req/s %8.1f us CPU/req  p99 %s\n", n, r, (c / t) * 1e6 / q, p }'
}

# want NAME: whether to measure NAME (BENCH_ONLY=prefix measures only names starting with it).
want() { [[ -z "${BENCH_ONLY:-}" || "$1" == "${BENCH_ONLY}"* ]]; }

results=()
if want nginx && command -v nginx >/dev/null; then
  taskset -c 0 nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!)
  results+=("$(measure nginx "${pids[-1]}" http://127.0.0.1:9105/)")
fi
if want haproxy && command -v haproxy >/dev/null; then
  taskset -c 0 haproxy -db -f "$tmp/haproxy.cfg" & pids+=($!)
  results+=("$(measure haproxy "${pids[-1]}" http://127.0.0.1:9107/)")
fi
if want caddy && command -v caddy >/dev/null; then
  XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp" taskset -c 0 caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 & pids+=($!)
  results+=("$(measure caddy "${pids[-1]}" http://127.0.0.1:9106/)")
fi
if want httputil; then
  taskset -c 0 "$tmp/httputilproxy" -listen 127.0.0.1:9102 -upstream http://127.0.0.1:9101 & pids+=($!)
  results+=("$(measure httputil "${pids[-1]}" http://127.0.0.1:9102/)")
fi
if want switchyard; then
  taskset -c 0 "$tmp/switchyard" -config "$tmp/routes.yaml" -log-level warn & pids+=($!)
  results+=("$(measure switchyard "${pids[-1]}" http://127.0.0.1:9103/)")
  taskset -c 0 "$tmp/switchyard" -config "$tmp/routes-full.yaml" -log-format json 2>"$tmp/access.log" & pids+=($!)
  results+=("$(measure switchyard-full "${pids[-1]}" http://127.0.0.1:9108/)")
fi
if want filters; then
  taskset -c 0 "$tmp/switchyard" -config "$tmp/routes-filters-off.yaml" -log-level warn & pids+=($!)
  results+=("$(measure filters-off "${pids[-1]}" http://127.0.0.1:9115/)")
  taskset -c 0 "$tmp/switchyard" -config "$tmp/routes-filters-on.yaml" -log-level warn & pids+=($!)
  results+=("$(measure filters-on "${pids[-1]}" http://127.0.0.1:9117/)")
  if [ -x "$tmp/switchyard-baseline" ]; then
    taskset -c 0 "$tmp/switchyard-baseline" -config "$tmp/routes-filters-baseline.yaml" -log-level warn & pids+=($!)
    results+=("$(measure baseline "${pids[-1]}" http://127.0.0.1:9119/)")
  fi
fi
if want filters || want auth; then
  if ! want filters; then # the reference the auth variants are compared with
    taskset -c 0 "$tmp/switchyard" -config "$tmp/routes-filters-off.yaml" -log-level warn & pids+=($!)
    results+=("$(measure filters-off "${pids[-1]}" http://127.0.0.1:9115/)")
  fi
  "$tmp/authfixture" -listen 127.0.0.1:9130 -dir "$tmp" & pids+=($!)
  wait_http http://127.0.0.1:9130/jwks
  for mech in apikey basic jwt; do
    port=$(case $mech in apikey) echo 9121;; basic) echo 9123;; jwt) echo 9125;; esac)
    hdr=$(case $mech in apikey) echo "X-Api-Key: $(cat "$tmp/apikey")";; *) echo "Authorization: $(cat "$tmp/$( [ $mech = basic ] && echo basic || echo token)")";; esac)
    taskset -c 0 "$tmp/switchyard" -config "$tmp/routes-auth-$mech.yaml" -log-level warn & pids+=($!)
    results+=("$(measure "auth-$mech" "${pids[-1]}" "http://127.0.0.1:$port/")")
    hdr=""
  done
fi
redis=$(command -v redis-server || true)
if want rl && [ -n "$redis" ]; then
  taskset -c 0 "$redis" --port 9114 --bind 127.0.0.1 --save '' --appendonly no --loglevel warning & redis_pid=$!; pids+=($redis_pid)
  taskset -c 0 "$tmp/switchyard" -config "$tmp/routes-rl-local.yaml" -log-level warn & pids+=($!)
  results+=("$(measure rl-local "${pids[-1]}" http://127.0.0.1:9110/ "$redis_pid")")
  taskset -c 0 "$tmp/switchyard" -config "$tmp/routes-rl-redis.yaml" -log-level warn & pids+=($!)
  results+=("$(measure rl-redis "${pids[-1]}" http://127.0.0.1:9112/ "$redis_pid")")
fi

printf '%s\n' "${results[@]}"
base=$(printf '%s\n' "${results[@]}" | awk '$1=="nginx" {print $2}')
local_rl=$(printf '%s\n' "${results[@]}" | awk '$1=="rl-local" {print $4}')
if [ -n "$local_rl" ]; then
  printf '%s\n' "${results[@]}" | awk -v b="$local_rl" '$1=="rl-redis" { printf "rl-redis         %.2fx the CPU per request of rl-local\n", $4 / b }'
fi
off=$(printf '%s\n' "${results[@]}" | awk '$1=="filters-off" {print $4}')
if [ -n "$off" ]; then
  printf '%s\n' "${results[@]}" | awk -v b="$off" '$1=="filters-on" || $1=="baseline" || $1 ~ /^auth-/ { printf "%-16s %.2fx the CPU per request of filters-off\n", $1, $4 / b }'
fi
if [ -n "$base" ]; then
  printf '%s\n' "${results[@]}" | awk -v b="$base" '{ printf "%-16s %.2fx nginx req/s\n", $1, $2 / b }'
fi
