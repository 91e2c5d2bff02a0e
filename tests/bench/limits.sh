#!/usr/bin/env bash
# Rate limit benchmark (standalone sidecar, one thread, CPU 1 with the upstream; wrk on
# CPU 0):
#  1. what a limit costs per request: the same route without a limit, with a per-address
#     limit (one client, always admitted), and with two limits;
#  2. memory under a flood of random client addresses against a per-address limit
#     (`--limit-keys` bounds it): sidecar RSS before and after, and the keys tracked.
#
#   tests/bench/limits.sh          # ROUNDS=2 DUR=5 FLOOD=30 by default (~2 min)
#
# Writes the tables to tests/bench/results/limits-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${BENCH_LAB:-$ROOT/../shared/bench}
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50} FLOOD=${FLOOD:-30} LIMIT_KEYS=${LIMIT_KEYS:-100000}
RUN=$(mktemp -d /tmp/warden-limits-bench.XXXXXX)
"$LAB/setup.sh" >/dev/null
(cd "$ROOT" && cargo build --quiet --release -p warden-sidecar)
export REPORT_LUA=$LAB/wrk-report.lua

# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"
start_upstream
cat >"$RUN/policy.yaml" <<'POLICY'
service: bench
client_ip: { trusted_proxies: [127.0.0.1/32] }
routes:
  - name: plain
    match: { path_prefix: /plain }
  - name: one
    match: { path_prefix: /one }
    limits: [per-ip]
  - name: two
    match: { path_prefix: /two }
    limits: [per-ip, per-route]
  - name: flood
    match: { path_prefix: /flood }
    limits: [login-per-ip]
limits:
  per-ip: { key: client_ip, rate: 1000000/s }
  per-route: { key: route, rate: 1000000/s }
  login-per-ip: { key: client_ip, rate: 5/min }
POLICY
taskset -c 1 env WARDEN_LOG=warn "$ROOT/target/release/warden-sidecar" --policy-file "$RUN/policy.yaml" \
  --listen 127.0.0.1:18084 --upstream 127.0.0.1:18080 --admin 127.0.0.1:18085 --threads 1 --access-log off \
  --limit-keys "$LIMIT_KEYS" >"$RUN/sidecar.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18084/plain && break; sleep 0.1; done
PID=$(pgrep -f "listen 127.0.0.1:18084")
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
declare -A RPS CPU
TARGETS="plain one two"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in $TARGETS; do
    url=http://127.0.0.1:18084/$t
    taskset -c 0 wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null
    measure "$t" "$PID" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$LAB/wrk-report.lua" "$url"
    grep -q 'err_status=0 ' <<<"$OUT" || { echo "$t: non-2xx answers: $OUT"; exit 1; }
  done
done

rss_before=$(rss_mib "$PID")
flood=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${FLOOD}s" -s "$ROOT/tests/bench/flood.lua" http://127.0.0.1:18084/flood)
rss_after=$(rss_mib "$PID")
flood_n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$flood")
state=$(curl -s http://127.0.0.1:18085/config | python3 -c 'import json,sys; l=[x for x in json.load(sys.stdin)["limits"] if x["name"]=="login-per-ip"][0]; print(l["keys"], l["evicted"])')

mkdir -p "$ROOT/tests/bench/results"
{
  echo "# Limits benchmark $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median); sidecar (1 thread) + upstream on CPU 1"
  printf '%-22s %10s %12s %14s\n' route req/s cpu_us/req added_us/req
  base=$(med ${CPU[plain]})
  for t in $TARGETS; do
    # shellcheck disable=SC2086
    c=$(med ${CPU[$t]})
    name=$t; [[ $t == one ]] && name="one limit (per-ip)"; [[ $t == two ]] && name="two limits"
    printf '%-22s %10s %12s %14s\n' "$name" "$(med ${RPS[$t]})" "$c" "$(awk -v a="$c" -v b="$base" 'BEGIN{printf "%+.2f", a-b}')"
  done
  echo
  read -r keys evicted <<<"$state"
  echo "# Flood: ${flood_n} requests from random addresses in ${FLOOD} s against a 5/min per-address limit, --limit-keys $LIMIT_KEYS"
  echo "RSS before ${rss_before} MiB, after ${rss_after} MiB; keys tracked ${keys}, active keys evicted ${evicted}"
} | tee "$ROOT/tests/bench/results/limits-latest.txt"
