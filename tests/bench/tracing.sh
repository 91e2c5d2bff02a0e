#!/usr/bin/env bash
# Tracing overhead: the sidecar (one thread, CPU 1 with the upstream; wrk on CPU 0) with
# tracing off, on at 100 %, on at 1 %, and exporting to a collector that is not there.
# The collector is `warden-otlp-sink` (a real OTLP/gRPC receiver, on CPU 0).
#
#   tests/bench/tracing.sh          # ROUNDS=2 DUR=5 by default (~2 min)
#
# Writes the table to tests/bench/results/tracing-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${BENCH_LAB:-$ROOT/../shared/bench}
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50}
RUN=$(mktemp -d /tmp/warden-tracing-bench.XXXXXX)
"$LAB/setup.sh" >/dev/null
(cd "$ROOT" && cargo build --quiet --release -p warden-sidecar -p warden-e2e --bins)

# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"
start_upstream
taskset -c 0 "$ROOT/target/release/warden-otlp-sink" 127.0.0.1:14317 >"$RUN/sink.log" 2>&1 &
PIDS+=($!)

declare -A ENVS=(
  [off]=""
  [100%]="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14317 OTEL_TRACES_SAMPLER=always_on"
  [1%]="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14317 OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01"
  [collector-down]="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14399 OTEL_TRACES_SAMPLER=always_on"
)
TARGETS="off 100% 1% collector-down"
declare -A RPS CPU P99
port=18100
for t in $TARGETS; do
  port=$((port + 2))
  # shellcheck disable=SC2086
  env ${ENVS[$t]} WARDEN_LOG=warn taskset -c 1 "$ROOT/target/release/warden-sidecar" \
    --policy-file "$ROOT/tests/bench/policy-10-routes.yaml" --listen "127.0.0.1:$port" --upstream 127.0.0.1:18080 \
    --admin "127.0.0.1:$((port + 1))" --threads 1 --access-log off >"$RUN/sidecar-$port.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  for ((r = 1; r <= ROUNDS; r++)); do
    taskset -c 0 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null
    measure "$t" "$pid" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$LAB/wrk-report.lua" "http://127.0.0.1:$port/"
    P99[$t]+=" $(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$OUT")"
  done
  kill "$pid"
done
mkdir -p "$ROOT/tests/bench/results"
{
  echo "# Tracing benchmark $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median); sidecar (1 thread) + upstream on CPU 1"
  echo "# spans received by the sink: $(tail -1 "$RUN/sink.log")"
  printf '%-16s %10s %12s %14s %10s\n' tracing req/s cpu_us/req added_us/req p99_us
  base=$(med ${CPU[off]})
  for t in $TARGETS; do
    # shellcheck disable=SC2086
    c=$(med ${CPU[$t]})
    printf '%-16s %10s %12s %14s %10s\n' "$t" "$(med ${RPS[$t]})" "$c" "$(awk -v a="$c" -v b="$base" 'BEGIN{printf "%+.2f", a-b}')" "$(med ${P99[$t]})"
  done
} | tee "$ROOT/tests/bench/results/tracing-latest.txt"
