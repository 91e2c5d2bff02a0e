#!/usr/bin/env bash
# Swap under load: traffic through a sidecar, first quiet, then while the control plane
# takes 100 applies a second; failed requests and p50/p99 of both phases. Twice: 16
# closed-loop clients (the machine saturated: what the applies' CPU costs the traffic),
# then RATE req/s on a fixed schedule (latency from when each request was due).
#
#   tests/bench/swap.sh              # ~1 min
#
# Writes the results to tests/bench/results/swap-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RATE=${RATE:-2000}
(cd "$ROOT" && cargo build --quiet --release -p warden-sidecar -p warden-control-plane -p warden-e2e --bins)
mkdir -p "$ROOT/tests/bench/results"
{
  echo "# Swap under load $(date -Is): 10 s per phase, release build, same 2-core machine"
  echo "## 16 closed-loop clients"
  WARDEN_LOG=warn "$ROOT/target/release/warden-swap-load" --seconds "${SECONDS_:-10}" --clients 16 --applies-per-sec 100
  echo "## $RATE req/s on a fixed schedule over 16 clients"
  WARDEN_LOG=warn "$ROOT/target/release/warden-swap-load" --seconds "${SECONDS_:-10}" --clients 16 --applies-per-sec 100 --rate "$RATE"
} | tee "$ROOT/tests/bench/results/swap-latest.txt"
