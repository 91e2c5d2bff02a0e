#!/usr/bin/env bash
# Rate limit benchmark (standalone sidecar, one thread, CPU 1 with the upstream; wrk on
# CPU 0):
#  1. what a limit costs per request: the same route without a limit, with a per-address
#     limit (one client, always admitted), and with two limits;
#  2. memory under a flood of random client addresses against a per-address limit
#     (`--limit-keys` bounds it): sidecar RSS before and after, and the keys tracked.
#
#   tests/bench/run.sh limits      # ROUNDS=2 DUR=5 FLOOD=30 by default (~2 min)
#
# Writes tests/bench/results/limits-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50} FLOOD=${FLOOD:-30} LIMIT_KEYS=${LIMIT_KEYS:-100000}
bench_init limits
build warden-sidecar
export REPORT_LUA=$BENCH/wrk-report.lua
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
alloc_ports PORT ADMIN
start sidecar "${PIN_PROXY[@]}" env WARDEN_LOG=warn "$BIN/warden-sidecar" --policy-file "$RUN/policy.yaml" \
  --listen "127.0.0.1:$PORT" --upstream "127.0.0.1:$UP_PORT" --admin "127.0.0.1:$ADMIN" --threads 1 --access-log off \
  --limit-keys "$LIMIT_KEYS"
wait_http "http://127.0.0.1:$PORT/plain" 10 || die "the sidecar is not answering (see $RUN/sidecar.log)"
SPID=${PID[sidecar]}
declare -A RPS CPU
TARGETS="plain one two"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in $TARGETS; do
    url=http://127.0.0.1:$PORT/$t
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null
    measure "$t" "$SPID" "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH/wrk-report.lua" "$url"
    grep -q 'err_status=0 ' <<<"$OUT" || { echo "$t: non-2xx answers: $OUT"; exit 1; }
  done
done

rss_before=$(rss_mib "$SPID")
flood=$("${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${FLOOD}s" -s "$BENCH/flood.lua" "http://127.0.0.1:$PORT/flood")
rss_after=$(rss_mib "$SPID")
flood_n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$flood")
state=$(curl -s "http://127.0.0.1:$ADMIN/config" | python3 -c 'import json,sys; l=[x for x in json.load(sys.stdin)["limits"] if x["name"]=="login-per-ip"][0]; print(l["keys"], l["evicted"])')

{
  echo "# Limits benchmark $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median); sidecar (1 thread) + upstream on CPU 1"
  printf '%-22s %10s %12s %14s\n' route req/s cpu_us/req added_us/req
  # shellcheck disable=SC2086
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
} | tee "$RUN/table.txt"
finish_txt
