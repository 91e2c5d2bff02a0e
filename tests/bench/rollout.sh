#!/usr/bin/env bash
# Safe policy changes: what decision sampling adds to a request, what a candidate in
# shadow adds beside the live decision, how long a preview of 100,000 samples against a
# 1,000-route policy takes, and how soon a bad canary is rolled back by itself (the time
# from its abort condition holding to the canary sidecar back on the live version, RUNS
# runs at RATE req/s to each of two sidecars).
#
#   tests/bench/run.sh rollout              # ~2 min
#
# Writes tests/bench/results/rollout-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=${RUNS:-5} RATE=${RATE:-100}
bench_init rollout
build warden-sidecar warden-control-plane warden-e2e
bench() { (cd "$ROOT" && cargo bench --quiet -p "$1" --bench "$2" 2>/dev/null | grep -v '^$'); }
{
  echo "# Safe policy changes $(date -Is): release build, $(nproc)-core machine"
  echo "## sampling"
  bench warden-sidecar sampling
  echo "## shadow"
  bench warden-policy shadow
  echo "## preview"
  bench warden-policy preview
  echo "## abort"
  WARDEN_LOG=warn "$BIN/warden-rollout-bench" --runs "$RUNS" --rate "$RATE"
} | tee "$RUN/table.txt"
finish_txt
