#!/usr/bin/env bash
# Swap under load: closed-loop traffic through a sidecar, first quiet, then while the
# control plane takes 100 applies a second; failed requests and p50/p99 of both phases.
#
#   tests/bench/swap.sh              # ~30 s
#
# Writes the results to tests/bench/results/swap-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
(cd "$ROOT" && cargo build --quiet --release -p warden-sidecar -p warden-control-plane -p warden-e2e --bins)
mkdir -p "$ROOT/tests/bench/results"
{
  echo "# Swap under load $(date -Is): 16 closed-loop clients, 10 s per phase, release build, same 2-core machine"
  WARDEN_LOG=warn "$ROOT/target/release/warden-swap-load" --seconds "${SECONDS_:-10}" --clients 16 --applies-per-sec 100
} | tee "$ROOT/tests/bench/results/swap-latest.txt"
