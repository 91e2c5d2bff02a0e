#!/usr/bin/env bash
# The global quota benchmark: a control plane, 10 sidecars, one client sending 10x its
# quota spread unevenly across them for 60 s; how close the admitted total is to the
# quota. Run twice, with two different spreads.
#
#   tests/bench/run.sh quota                      # ~2.5 min
#   SECONDS_=20 tests/bench/run.sh quota          # a quick look
#   SPREADS="50,50,1,1,1,1,1,1,1,1" tests/bench/run.sh quota
#
# Writes tests/bench/results/quota-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION=${SECONDS_:-60}
SPREADS=${SPREADS:-"40,20,10,8,6,5,4,3,2,2 70,10,5,5,2,2,2,2,1,1"}
bench_init quota
build warden-sidecar warden-control-plane warden-e2e
{
  echo "# Global quota benchmark $(date -Is): 10 sidecars, quota 1200/min burst 10, 10x offered, ${DURATION} s"
  for spread in $SPREADS; do
    echo
    echo "## spread $spread"
    WARDEN_LOG=warn "$BIN/warden-quota-bench" --sidecars 10 --seconds "$DURATION" \
      --rate 1200/min --burst 10 --times 10 --spread "$spread"
  done
} | tee "$RUN/table.txt"
finish_txt
