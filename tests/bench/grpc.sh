#!/usr/bin/env bash
# The gRPC benchmark: unary calls through Envoy and Warden side by side in one run, to a
# gRPC upstream written in Rust (tests/src/bin/warden-grpc-upstream.rs: echoes the
# message, trailers grpc-status 0), so the upstream is not what limits a shared core.
#
# Targets, in this order:
#   direct       no proxy: the upstream itself
#   envoy        Envoy, --concurrency 1, HTTP/2 both sides (tests/bench/conf/envoy-grpc.yaml)
#   warden       the app upstream with protocol: http2, one route, --threads 1 --access-log off
#   warden-full  tests/bench/policy-grpc.yaml from a running control plane: API key, two
#                rate limits, header edits, a capped deadline, tracing at 1 % to a real
#                OTLP receiver; --threads 1 --access-log off
#
# Every proxy runs pinned to CPU 1 beside the upstream; h2load on CPU 0 sends a
# pre-encoded gRPC frame (content-type application/grpc, te: trailers, a grpc-timeout).
#   - max throughput: h2load -c5 -m10 for DUR s, ROUNDS rounds interleaved across targets
#     (median req/s), the proxy's CPU µs per call, and calls per core (1e6 / µs);
#   - latency at RATE calls/s over 10 connections for DUR_LAT s: p50 / p99 (median over
#     rounds) and the p99 added over direct.
#
#   tests/bench/run.sh grpc            # ROUNDS=3 DUR=5 DUR_LAT=5 RATE=2000, ~2 min
#   PERF=warden-full ROUNDS=1 tests/bench/run.sh grpc   # + a perf profile of that target
#
# Writes tests/bench/results/grpc-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-3} DUR=${DUR:-5} DUR_LAT=${DUR_LAT:-5} RATE=${RATE:-2000} WARMUP=${WARMUP:-2}
TARGETS="direct envoy warden warden-full"
bench_init grpc
build warden-sidecar warden-control-plane warden-e2e
find_envoy
[[ -n $ENVOY_BIN ]] || { log "WARNING: no Envoy binary (tests/bench/setup.sh): its row is skipped"; TARGETS=${TARGETS/envoy /}; }

declare -A PORT MPID
alloc_ports UP ENVOY ENVOY_ADMIN WARDEN WARDEN_ADMIN FULL FULL_ADMIN SINK
start upstream "${PIN_PROXY[@]}" "$BIN/warden-grpc-upstream" "127.0.0.1:$UP"
PORT[direct]=$UP MPID[direct]=${PID[upstream]}

if [[ -n $ENVOY_BIN ]]; then
  render "$CONF/envoy-grpc.yaml" "$RUN/envoy.yaml" "H1_PORT=$ENVOY" "ADMIN_PORT=$ENVOY_ADMIN" "UP_PORT=$UP"
  start envoy "${PIN_PROXY[@]}" "$ENVOY_BIN" -c "$RUN/envoy.yaml" --concurrency 1 --disable-hot-restart --log-level warn
  PORT[envoy]=$ENVOY MPID[envoy]=${PID[envoy]}
fi

printf 'service: plain\nupstreams:\n  app: { protocol: http2 }\nroutes:\n  - name: echo\n    match: { path_prefix: /bench.Echo }\n' \
  >"$RUN/policy-plain.yaml"
start warden "${PIN_PROXY[@]}" env WARDEN_LOG=warn "$BIN/warden-sidecar" --policy-file "$RUN/policy-plain.yaml" \
  --listen "127.0.0.1:$WARDEN" --upstream "127.0.0.1:$UP" --admin "127.0.0.1:$WARDEN_ADMIN" --threads 1 --access-log off
PORT[warden]=$WARDEN MPID[warden]=${PID[warden]}

mkdir -p "$RUN/cp"
KEY=$("$BIN/warden-seed-keys" --data-dir "$RUN/cp" --service grpc --keys 1)
cp_args "$RUN/cp"
start control-plane "${PIN_LOAD[@]}" env WARDEN_LOG=warn "$BIN/warden-control-plane" "${CP_ARGS[@]}"
for _ in $(seq 100); do "$BIN/wardenctl" --server "http://$CP_ADDR" status >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/wardenctl" --server "http://$CP_ADDR" apply -f "$BENCH/policy-grpc.yaml" -m bench >/dev/null
start otlp-sink "${PIN_LOAD[@]}" "$BIN/warden-otlp-sink" "127.0.0.1:$SINK"
start warden-full "${PIN_PROXY[@]}" env WARDEN_LOG=warn OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK" \
  OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 "$BIN/warden-sidecar" --service grpc \
  --control-plane "http://$CP_ADDR" --state-dir "$RUN/full-state" --listen "127.0.0.1:$FULL" --upstream "127.0.0.1:$UP" \
  --admin "127.0.0.1:$FULL_ADMIN" --threads 1 --access-log off
PORT[warden-full]=$FULL MPID[warden-full]=${PID[warden-full]}

# One gRPC message: the 5-byte frame header (uncompressed, length 20) and 20 bytes.
printf '\x00\x00\x00\x00\x14%s' "aaaaaaaaaaaaaaaaaaaa" >"$RUN/call.bin"
call() {  # target curl-args...: one call with curl; prints the response head and trailers
  curl -s --http2-prior-knowledge -m 2 -o /dev/null -D - --data-binary @"$RUN/call.bin" -H 'content-type: application/grpc' \
    -H 'te: trailers' -H "x-api-key: $KEY" "http://127.0.0.1:${PORT[$1]}/bench.Echo/Unary"
}
for t in $TARGETS; do
  for _ in $(seq 100); do call "$t" | grep -qi '^grpc-status: 0' && break; sleep 0.1; done
  call "$t" | grep -qi '^grpc-status: 0' || die "$t does not answer the call with grpc-status 0 (logs: $RUN/$t.log)"
done
[[ $(curl -s --http2-prior-knowledge -D - -o /dev/null --data-binary @"$RUN/call.bin" -H 'content-type: application/grpc' \
  "http://127.0.0.1:$FULL/bench.Echo/Unary" | grep -i '^grpc-status' | tr -d '\r') == "grpc-status: 16" ]] \
  || die "warden-full lets a call without a key through"

h2l() {  # target h2load-args...
  local t=$1
  shift
  "${PIN_LOAD[@]}" h2load -t1 -d "$RUN/call.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    -H 'grpc-timeout: 10S' -H "x-api-key: $KEY" "$@" "http://127.0.0.1:${PORT[$t]}/bench.Echo/Unary"
}
declare -A RPS CPU P50 P99
mkdir -p "$RUN/out"
log "max throughput, $ROUNDS round(s) of ${DUR}s per target"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in $TARGETS; do
    ((r == 1)) && h2l "$t" -c5 -m10 -D "$WARMUP" >/dev/null
    before=$(ticks "${MPID[$t]}")
    # PERF=target: a call-graph profile of that target's first round, for `perf report -i`.
    if [[ ${PERF:-} == "$t" && $r == 1 ]]; then
      perf record -F 2999 --call-graph dwarf,16384 -p "${MPID[$t]}" -o "$RUN/perf.data" -- sleep "$DUR" >/dev/null 2>&1 &
      record $! perf
    fi
    out=$RUN/out/$t-r$r.txt
    h2l "$t" -c5 -m10 -D "$DUR" >"$out"
    after=$(ticks "${MPID[$t]}")
    n=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out")
    bad=$(awk '/^status codes:/{s = $5 + $7 + $9} /^requests:/{e = $12} END{print s + e}' "$out")
    ((bad == 0)) || die "$t: $bad calls failed (see $out)"
    RPS[$t]+=" $(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out")"
    CPU[$t]+=" $(awk -v t=$((after - before)) -v n="$n" -v c="$CLK" 'BEGIN{printf "%.2f", t/c*1e6/n}')"
  done
done
log "latency at $RATE calls/s, $ROUNDS round(s) of ${DUR_LAT}s per target"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in $TARGETS; do
    lat=$RUN/out/$t-lat-r$r.log
    rm -f "$lat"
    h2l "$t" -c10 -m1 --rps=$((RATE / 10)) -D "$DUR_LAT" --warm-up-time=1 --log-file="$lat" >/dev/null
    read -r a b < <(awk '{print $3}' "$lat" | sort -n | awk '{a[NR]=$1} END{
      split("50 99", q, " "); for (i = 1; i <= 2; i++) { k = int(q[i] / 100 * NR + 0.999999); printf "%s ", a[k < 1 ? 1 : k] }; print "" }')
    P50[$t]+=" $a" P99[$t]+=" $b"
  done
done
{
  echo "# gRPC benchmark $(date -Is): unary calls, h2load -c5 -m10 -D${DUR} x $ROUNDS rounds (median); latency at $RATE calls/s over 10 connections; proxy and upstream on CPU 1, h2load on CPU 0; $(versions | grep -o 'envoy [^|]*')"
  printf '%-12s %10s %10s %14s %8s %8s %14s\n' target calls/s cpu_us/call calls/s/core p50_us p99_us added_p99_us
  # shellcheck disable=SC2086
  direct_p99=$(med ${P99[direct]})
  for t in $TARGETS; do
    # shellcheck disable=SC2086
    cpu=$(med ${CPU[$t]}) p99=$(med ${P99[$t]})
    per_core=$([[ $t == direct ]] && echo - || awk -v c="$cpu" 'BEGIN{printf "%.0f", 1e6 / c}')
    added=$([[ $t == direct ]] && echo - || awk -v a="$p99" -v b="$direct_p99" 'BEGIN{printf "%.0f", a - b}')
    # shellcheck disable=SC2086
    printf '%-12s %10s %10s %14s %8s %8s %14s\n' "$t" "$(med ${RPS[$t]})" "$cpu" "$per_core" "$(med ${P50[$t]})" "$p99" "$added"
  done
} | tee "$RUN/table.txt"
finish_txt
