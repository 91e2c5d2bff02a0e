#!/usr/bin/env bash
# Swap under load: traffic through a sidecar following a control plane in three phases:
# no applies; 100 applies a second to another service (the control plane busy, nothing
# for this sidecar to swap); 100 applies a second to this sidecar's service (each a new
# version it swaps in and ACKs). ROUNDS interleaved rounds of SECS s per phase; failed
# requests, p50/p99 over all rounds, swaps and the sidecar's CPU per request.
# Twice: RATE req/s on a fixed schedule (latency from the send: the target's figure),
# then 16 closed-loop clients (the machine saturated: what the swaps' CPU costs).
#
# The sidecar (one worker) has CPU 1 to itself; this tool (the clients, the app, the
# applier) and the control plane share CPU 0, the control plane and the applier at the
# lowest priority: they stand in for a control plane on another node, so what moves the
# numbers is what swapping costs the sidecar.
#
#   tests/bench/run.sh swap              # ~2 min
#
# Writes tests/bench/results/swap-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RATE=${RATE:-2000} ROUNDS=${ROUNDS:-4} SECS=${SECS:-5}
bench_init swap
build warden-sidecar warden-control-plane warden-e2e
load() {
  WARDEN_LOG=warn "${PIN_LOAD[@]}" "$BIN/warden-swap-load" --sidecar-cpu "$PROXY_CPU" --cp-nice 19 \
    --rounds "$ROUNDS" --seconds "$SECS" --clients 16 --applies-per-sec 100 "$@"
}
{
  echo "# Swap under load $(date -Is): release build, $(nproc)-core machine; sidecar alone on CPU 1"
  echo "## $RATE req/s on a fixed schedule over 16 clients"
  load --rate "$RATE"
  echo "## 16 closed-loop clients"
  load
} | tee "$RUN/table.txt"
finish_txt
