#!/usr/bin/env bash
# Soak: an hour (or DURATION) of everything at once against the release binaries: legitimate
# load at 200 req/s whose every answer is checked, policy applies every 20 s, API key
# rotations every 10 s, a control-plane restart every 5 min, and an attack every 15-30 s
# (HTTP/2 rapid reset, CONTINUATION, SETTINGS and HPACK floods, slow readers, stalled
# protocol detection, many streams to a stalled upstream, webhook bodies that never come,
# hostile spellings), with the sidecar's and control plane's RSS and descriptors sampled
# every second. Not for CI: it takes the machine for the whole duration.
#
#   tests/bench/run.sh soak                    # 1 h
#   SOAK_DURATION=5m tests/bench/run.sh soak   # a short look
#   tests/bench/soak.sh 5m [warden-soak flags]  # the same, with flags
#
# Writes tests/bench/results/soak-latest.{csv,svg,txt}; exits non-zero if a legitimate
# request failed or an operation did not take effect (the logs are kept then, and named).
# warden-soak allocates its own ports (port 0) and tracks its own processes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${1:-${SOAK_DURATION:-1h}}
shift || true
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ ${SKIP_BUILD:-} == 1 ]] || (cd "$ROOT" && cargo build --quiet --release --workspace)
mkdir -p "$ROOT/tests/bench/results"
"$TARGET/release/warden-soak" --duration "$DURATION" \
  --out-dir "$ROOT/tests/bench/results" --name soak-latest "$@"
