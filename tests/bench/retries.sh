#!/usr/bin/env bash
# What a retry-enabled route costs when nothing fails: the data-plane benchmark's 10-route
# policy, and the same with `retries: { attempts: 3, on: [connect-failure, reset, 5xx] }`
# on its catch-all route, side by side (one sidecar each, --threads 1 --access-log off,
# pinned beside the upstream nginx on CPU 1, wrk on CPU 0, small HTTP/1.1 GETs, ROUNDS
# interleaved rounds). Target: at most 0.3 µs of CPU per request more.
#
#   tests/bench/run.sh retries         # ROUNDS=5 DUR=5 by default (~1.5 min)
#
# Writes tests/bench/results/retries-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-5} DUR=${DUR:-5} CONNS=${CONNS:-50}
bench_init retries
build warden-sidecar
start_upstream
alloc_ports PLAIN PLAIN_ADMIN RETRIES RETRIES_ADMIN
sed -e '/^  - name: app$/,$ s/^    response_headers:.*/&\n    retries: { attempts: 3, on: [connect-failure, reset, 5xx] }/' \
  "$BENCH/policy-10-routes.yaml" >"$RUN/policy-retries.yaml"
grep -q 'retries:' "$RUN/policy-retries.yaml" || die "the retries policy was not written"
sidecar() {  # name policy port admin-port
  start "$1" "${PIN_PROXY[@]}" env WARDEN_LOG=warn "$BIN/warden-sidecar" --policy-file "$2" --listen "127.0.0.1:$3" \
    --upstream "127.0.0.1:$UP_PORT" --admin "127.0.0.1:$4" --threads 1 --access-log off
}
sidecar plain "$BENCH/policy-10-routes.yaml" "$PLAIN" "$PLAIN_ADMIN"
sidecar retries "$RUN/policy-retries.yaml" "$RETRIES" "$RETRIES_ADMIN"
declare -A URL=([plain]=http://127.0.0.1:$PLAIN/ [retries]=http://127.0.0.1:$RETRIES/)
declare -A MPID=([plain]=${PID[plain]} [retries]=${PID[retries]})
TARGETS="plain retries"
wrk_compare "Retries benchmark" "small HTTP/1.1 GETs; sidecar and upstream on CPU 1, wrk on CPU 0" 9
