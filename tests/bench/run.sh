#!/usr/bin/env bash
# The data-plane benchmark: direct vs warden-sidecar vs nginx, HAProxy and Envoy, in one
# run, each proxy with one worker pinned to CPU 1 and the load generator on CPU 0, using
# the shared peer lab (../shared/bench/peers.sh).
#
#   tests/bench/run.sh                 # ROUNDS=3 DUR_TPUT=5 by default (~4 min)
#   ROUNDS=1 DUR_TPUT=3 tests/bench/run.sh   # a quick look
#
# Builds the release sidecar, runs it standalone (--policy-file) with a 10-route policy
# where the catch-all matches last, and writes the table to tests/bench/results/latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${BENCH_LAB:-$ROOT/../shared/bench}
[[ -x $LAB/peers.sh ]] || { echo "peer lab not found at $LAB (set BENCH_LAB)"; exit 1; }

"$LAB/setup.sh"
(cd "$ROOT" && cargo build --release -p warden-sidecar)

export ROUNDS=${ROUNDS:-3} DUR_TPUT=${DUR_TPUT:-5}
export SIDECAR_NAME=warden SIDECAR_PORT=18084
export SIDECAR_CMD="env WARDEN_LOG=warn $ROOT/target/release/warden-sidecar --policy-file $ROOT/tests/bench/policy-10-routes.yaml --listen 127.0.0.1:18084 --upstream 127.0.0.1:18080 --admin 127.0.0.1:18085 --threads 1 --access-log off"
"$LAB/peers.sh"

mkdir -p "$ROOT/tests/bench/results"
cp "${BENCH_DIR:-/tmp/warden-bench}/run/latest/table.txt" "$ROOT/tests/bench/results/latest.txt"
echo "table written to tests/bench/results/latest.txt"
