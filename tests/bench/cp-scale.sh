#!/usr/bin/env bash
# Control-plane scale: N simulated sidecar streams (all for one service, the worst
# fan-out) that ACK like real ones; apply -> all-ACKed latency over 20 applies, RSS and
# CPU, and a reconnect storm after a restart. N = 1,000 and 10,000 by default, then
# 1,000 again with a 1,000-route policy (a ~100 KB snapshot to every stream).
#
#   tests/bench/cp-scale.sh                 # ~2 min
#   SIZES="1000" APPLIES=5 tests/bench/cp-scale.sh
#
# Writes the results to tests/bench/results/cp-scale-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIZES=${SIZES:-"1000 10000"} APPLIES=${APPLIES:-20}
(cd "$ROOT" && cargo build --quiet --release -p warden-control-plane -p warden-e2e --bins)
mkdir -p "$ROOT/tests/bench/results"
{
  echo "# Control-plane scale $(date -Is): one service, $APPLIES applies; streams share connections (as many per connection as a 2-core box allows)"
  for n in $SIZES; do
    conns=$(( n / 10 > 1000 ? 1000 : (n / 10 < 1 ? 1 : n / 10) ))
    echo
    echo "## $n sidecars"
    WARDEN_LOG=warn "$ROOT/target/release/warden-cp-load" --sidecars "$n" --applies "$APPLIES" --connections "$conns"
  done
  echo
  echo "## 1000 sidecars, a 1000-route policy"
  WARDEN_LOG=warn "$ROOT/target/release/warden-cp-load" --sidecars 1000 --applies "$APPLIES" --connections 100 --routes 1000
} | tee "$ROOT/tests/bench/results/cp-scale-latest.txt"
