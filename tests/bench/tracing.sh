#!/usr/bin/env bash
# Tracing overhead: the sidecar (one thread, CPU 1 with the upstream; wrk on CPU 0) with
# tracing off, on at 100 %, on at 1 %, and exporting to a collector that is not there.
# The collector is `warden-otlp-sink` (a real OTLP/gRPC receiver, on CPU 0).
#
#   tests/bench/run.sh tracing      # ROUNDS=2 DUR=5 by default (~2 min)
#
# Writes tests/bench/results/tracing-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50}
bench_init tracing
build warden-sidecar warden-e2e

start_upstream
alloc_ports SINK DOWN
start otlp-sink "${PIN_LOAD[@]}" "$BIN/warden-otlp-sink" "127.0.0.1:$SINK"
wait_port "$SINK" 10 || die "the OTLP sink did not start (see $RUN/otlp-sink.log)"

declare -A ENVS=(
  [off]=""
  [100%]="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK OTEL_TRACES_SAMPLER=always_on"
  [1%]="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01"
  [collector-down]="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$DOWN OTEL_TRACES_SAMPLER=always_on"
)
TARGETS="off 100% 1% collector-down"
declare -A RPS CPU P99
for t in $TARGETS; do
  alloc_ports port admin
  # shellcheck disable=SC2086
  start "sidecar-$t" "${PIN_PROXY[@]}" env ${ENVS[$t]} WARDEN_LOG=warn "$BIN/warden-sidecar" \
    --policy-file "$BENCH/policy-10-routes.yaml" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$UP_PORT" \
    --admin "127.0.0.1:$admin" --threads 1 --access-log off
  pid=${PID[sidecar-$t]}
  wait_http "http://127.0.0.1:$port/" 10 || die "the sidecar ($t) is not answering (see $RUN/sidecar-$t.log)"
  for ((r = 1; r <= ROUNDS; r++)); do
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null
    measure "$t" "$pid" "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH/wrk-report.lua" "http://127.0.0.1:$port/"
    P99[$t]+=" $(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$OUT")"
  done
  stop "sidecar-$t"
done
{
  echo "# Tracing benchmark $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median); sidecar (1 thread) + upstream on CPU 1"
  echo "# spans received by the sink: $(grep '^spans' "$RUN/otlp-sink.log" | tail -1)"
  printf '%-16s %10s %12s %14s %10s\n' tracing req/s cpu_us/req added_us/req p99_us
  # shellcheck disable=SC2086
  base=$(med ${CPU[off]})
  for t in $TARGETS; do
    # shellcheck disable=SC2086
    c=$(med ${CPU[$t]})
    # shellcheck disable=SC2086
    printf '%-16s %10s %12s %14s %10s\n' "$t" "$(med ${RPS[$t]})" "$c" "$(awk -v a="$c" -v b="$base" 'BEGIN{printf "%+.2f", a-b}')" "$(med ${P99[$t]})"
  done
} | tee "$RUN/table.txt"
finish_txt
