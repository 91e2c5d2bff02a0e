#!/usr/bin/env bash
# The WebSocket benchmark: echo messages through nginx and Warden side by side in one run,
# to an echo upstream written in Rust (tests/bench/ws-bench: tokio-tungstenite), with a
# load generator from the same project, so neither end is what limits a shared core.
#
# Targets, in this order:
#   direct   no proxy: the upstream itself
#   nginx    one worker, proxy_pass with Upgrade/Connection passed (conf/nginx-ws.conf)
#   warden   a route with upgrades: true, --threads 1 --access-log off
#
# The proxy runs pinned to CPU 1 beside the upstream; the load generator on CPU 0 keeps
# CONNS connections each with WINDOW binary messages of SIZE bytes in flight for DUR s,
# ROUNDS rounds interleaved across targets. Reported: echoes per second (median), the
# proxy's CPU µs per echo (a message through it and back), and echoes per core of the
# proxy (1e6 / µs). Target: Warden at least nginx's echoes per core.
#
#   tests/bench/run.sh websocket       # ROUNDS=3 DUR=5 CONNS=50 WINDOW=8 SIZES=128, ~1 min
#   PERF=warden ROUNDS=1 tests/bench/run.sh websocket   # + a perf profile of that target
#
# Writes tests/bench/results/websocket-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-3} DUR=${DUR:-5} CONNS=${CONNS:-50} WINDOW=${WINDOW:-8} SIZES=${SIZES:-128} WARMUP=${WARMUP:-2}
TARGETS="direct nginx warden"
bench_init websocket
build warden-sidecar
if [[ ${SKIP_BUILD:-} != 1 ]]; then
  log "cargo build --release (tests/bench/ws-bench)"
  (cd "$ROOT" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target} cargo build --quiet --release \
    --manifest-path tests/bench/ws-bench/Cargo.toml)
fi
WS=$BIN/ws-bench

declare -A PORT MPID WORKER
alloc_ports UP NGINX WARDEN WARDEN_ADMIN
start upstream "${PIN_PROXY[@]}" "$WS" echo "127.0.0.1:$UP"
PORT[direct]=$UP MPID[direct]=${PID[upstream]}
render "$CONF/nginx-ws.conf" "$RUN/nginx.conf" "PORT=$NGINX" "UP_PORT=$UP"
start_nginx nginx "$RUN/nginx.conf"
PORT[nginx]=$NGINX MPID[nginx]=${WORKER[nginx]}
printf 'service: ws\nroutes:\n  - { name: ws, match: { path_prefix: / }, upgrades: true }\n' >"$RUN/policy.yaml"
start warden "${PIN_PROXY[@]}" env WARDEN_LOG=warn "$BIN/warden-sidecar" --policy-file "$RUN/policy.yaml" \
  --listen "127.0.0.1:$WARDEN" --upstream "127.0.0.1:$UP" --admin "127.0.0.1:$WARDEN_ADMIN" --threads 1 --access-log off
PORT[warden]=$WARDEN MPID[warden]=${PID[warden]}
for t in $TARGETS; do
  for _ in $(seq 100); do "$WS" load "ws://127.0.0.1:${PORT[$t]}/" 1 1 16 0 >/dev/null 2>&1 && break; sleep 0.1; done
  "$WS" load "ws://127.0.0.1:${PORT[$t]}/" 1 1 16 1 | grep -q '"messages": [1-9]' || die "$t does not echo (logs: $RUN/$t.log)"
done

declare -A EPS CPU
mkdir -p "$RUN/out"
for size in $SIZES; do
  log "$size-byte messages: $ROUNDS round(s) of ${DUR}s per target, $CONNS connections x $WINDOW in flight"
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in $TARGETS; do
      ((r == 1)) && "${PIN_LOAD[@]}" "$WS" load "ws://127.0.0.1:${PORT[$t]}/" "$CONNS" "$WINDOW" "$size" "$WARMUP" >/dev/null
      before=$(ticks "${MPID[$t]}")
      # PERF=target: a call-graph profile of that target's first round, for `perf report -i`.
      if [[ ${PERF:-} == "$t" && $r == 1 ]]; then
        perf record -F 2999 --call-graph dwarf,16384 -p "${MPID[$t]}" -o "$RUN/perf.data" -- sleep "$DUR" >/dev/null 2>&1 &
        record $! perf
      fi
      out=$RUN/out/$t-$size-r$r.json
      "${PIN_LOAD[@]}" "$WS" load "ws://127.0.0.1:${PORT[$t]}/" "$CONNS" "$WINDOW" "$size" "$DUR" >"$out"
      after=$(ticks "${MPID[$t]}")
      n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' "$out")
      ((n > 0)) || die "$t: no echoes (see $out)"
      EPS[$t-$size]+=" $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["per_s"])' "$out")"
      CPU[$t-$size]+=" $(awk -v t=$((after - before)) -v n="$n" -v c="$CLK" 'BEGIN{printf "%.2f", t/c*1e6/n}')"
    done
  done
done
{
  echo "# WebSocket benchmark $(date -Is): echoes over $CONNS connections x $WINDOW in flight, ${DUR}s x $ROUNDS rounds (median); proxy and upstream on CPU 1, load on CPU 0; $(nginx -v 2>&1 | sed 's/nginx version: //')"
  printf '%-8s %6s %10s %12s %14s %10s\n' target size echoes/s cpu_us/echo echoes/s/core vs_nginx
  for size in $SIZES; do
    # shellcheck disable=SC2086
    nginx_cpu=$(med ${CPU[nginx-$size]})
    for t in $TARGETS; do
      # shellcheck disable=SC2086
      cpu=$(med ${CPU[$t-$size]})
      per_core=$([[ $t == direct ]] && echo - || awk -v c="$cpu" 'BEGIN{printf "%.0f", 1e6 / c}')
      ratio=$([[ $t == direct ]] && echo - || awk -v c="$cpu" -v n="$nginx_cpu" 'BEGIN{printf "%.2f", n / c}')
      # shellcheck disable=SC2086
      printf '%-8s %6s %10s %12s %14s %10s\n' "$t" "$size" "$(med ${EPS[$t-$size]})" "$cpu" "$per_core" "$ratio"
    done
  done
} | tee "$RUN/table.txt"
finish_txt
