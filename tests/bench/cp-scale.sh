#!/usr/bin/env bash
# Control-plane scale: N simulated sidecar streams (all for one service, the worst
# fan-out) that ACK like real ones; apply -> all-ACKed latency over 20 applies, RSS and
# CPU, and a reconnect storm after a restart. N = 1,000 and 10,000 by default, then
# 1,000 again with a 1,000-route policy (a ~100 KB snapshot to every stream); then
# REPLICAS (3) replicas on one PostgreSQL (a throwaway cluster from the server binaries on
# the machine), 1,000 and 10,000 streams spread over them (REPLICA_SIZES): apply through
# one -> every stream ACKed, key revocation through one -> every stream holds it, each
# replica's RSS, and the last replica killed: how soon its streams are back on the others.
#
#   tests/bench/run.sh cp-scale                 # ~4 min
#   SIZES="1000" APPLIES=5 ROUTES_SIDECARS=0 REPLICA_SIZES=1000 tests/bench/run.sh cp-scale   # a quick look
#
# Writes tests/bench/results/cp-scale-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZES=${SIZES:-"1000 10000"} APPLIES=${APPLIES:-20} ROUTES_SIDECARS=${ROUTES_SIDECARS:-1000}
REPLICAS=${REPLICAS:-3} REPLICA_SIZES=${REPLICA_SIZES:-"1000 10000"}
bench_init cp-scale
build warden-control-plane warden-e2e
{
  echo "# Control-plane scale $(date -Is): one service, $APPLIES applies; streams share connections (as many per connection as a 2-core box allows)"
  for n in $SIZES; do
    conns=$(( n / 10 > 1000 ? 1000 : (n / 10 < 1 ? 1 : n / 10) ))
    echo
    echo "## $n sidecars"
    WARDEN_LOG=warn "$BIN/warden-cp-load" --sidecars "$n" --applies "$APPLIES" --connections "$conns"
  done
  if ((ROUTES_SIDECARS > 0)); then
    echo
    echo "## $ROUTES_SIDECARS sidecars, a 1000-route policy"
    WARDEN_LOG=warn "$BIN/warden-cp-load" --sidecars "$ROUTES_SIDECARS" --applies "$APPLIES" \
      --connections $((ROUTES_SIDECARS / 10 < 1 ? 1 : ROUTES_SIDECARS / 10)) --routes 1000
  fi
  for n in $REPLICA_SIZES; do
    conns=$(( n / 10 > 1000 ? 1000 : (n / 10 < REPLICAS ? REPLICAS : n / 10) ))
    echo
    echo "## $n sidecars over $REPLICAS replicas on PostgreSQL"
    WARDEN_LOG=warn "$BIN/warden-cp-load" --sidecars "$n" --applies "$APPLIES" --connections "$conns" --replicas "$REPLICAS"
  done
} | tee "$RUN/table.txt"
finish_txt
