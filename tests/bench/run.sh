#!/usr/bin/env bash
# The benchmarks' one entry point. From a fresh clone:
#
#   tests/bench/setup.sh               # once per machine: the peers and load generators
#   tests/bench/run.sh                 # the data-plane benchmark (~17 min)
#   tests/bench/run.sh tls auth        # named benchmarks, in turn
#   tests/bench/run.sh all             # every benchmark with a table (~30 min)
#   tests/bench/run.sh --list          # what there is, and roughly how long each takes
#
# Builds the release binaries once, runs each named benchmark (tests/bench/NAME.sh), which
# writes tests/bench/results/NAME-latest.json (and .txt), then regenerates the tables in
# docs/performance.md from the result files (tests/bench/tables.py). Knobs are environment
# variables read by each script (ROUNDS, DUR, MODES, TARGETS, ...; see the script's head);
# the ones set are recorded in the results' `command` (lib.sh). --no-tables leaves the doc alone;
# SKIP_BUILD=1 uses target/release as it is; RESULTS_DIR=dir writes the result files there
# instead (a trial run that leaves the committed results and the doc alone).
#
# Run the benchmarks on a machine otherwise idle: they pin the load generator to CPU 0 and
# the proxies to CPU 1 (LOAD_CPU, PROXY_CPU), and anything else running moves the numbers.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)

declare -A ABOUT=(
  [dataplane]="direct, nginx, HAProxy, Envoy and Warden three ways; HTTP/1.1 and HTTP/2, 20 B and 64 KiB (~17 min)"
  [grpc]="gRPC unary calls: Envoy and Warden, plain and full policy (~2 min)"
  [retries]="what a retry-enabled route costs when nothing fails (~1.5 min)"
  [websocket]="WebSocket echoes: nginx and Warden (~1.5 min)"
  [tls]="nginx and Warden with and without TLS (~2 min)"
  [tracing]="Warden with tracing off, 100 %, 1 %, collector down (~2 min)"
  [auth]="what API keys and JWTs cost per request; revocation latency (~5 min)"
  [limits]="what rate limits cost per request; a flood of addresses (~2 min)"
  [quota]="a global quota across 10 sidecars (~2.5 min)"
  [cp-scale]="control plane with 1,000 and 10,000 sidecar streams (~2 min)"
  [swap]="policy swaps under load (~2.5 min)"
  [rollout]="sampling, shadow and preview cost; how soon a bad canary aborts itself (~2 min)"
  [soak]="an hour of everything at once, attacks included (1 h; SOAK_DURATION=5m for a look)"
)
ORDER="dataplane grpc retries websocket tls tracing auth limits quota cp-scale swap rollout soak"

tables=1 names=()
for a in "$@"; do
  case $a in
    --list)
      for n in $ORDER; do printf '%-10s %s\n' "$n" "${ABOUT[$n]}"; done
      exit 0 ;;
    --no-tables) tables=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    all) for n in $ORDER; do [[ $n != soak ]] && names+=("$n"); done ;;
    -*) echo "run.sh: unknown option $a" >&2; exit 2 ;;
    *) [[ -n ${ABOUT[$a]:-} ]] || { echo "run.sh: no benchmark '$a' (see --list)" >&2; exit 2; }
       names+=("$a") ;;
  esac
done
((${#names[@]})) || names=(dataplane)

missing=()
for b in nginx haproxy wrk h2load curl taskset; do command -v "$b" >/dev/null || missing+=("$b"); done
((${#missing[@]} == 0)) || { echo "run.sh: missing ${missing[*]}: run tests/bench/setup.sh first" >&2; exit 1; }

if [[ ${SKIP_BUILD:-} != 1 ]]; then
  echo "run.sh: cargo build --release (sidecar, control plane, benchmark tools)"
  (cd "$ROOT" && cargo build --quiet --release -p warden-sidecar -p warden-control-plane -p warden-e2e --bins)
fi
export SKIP_BUILD=1

for n in "${names[@]}"; do
  echo "run.sh: $n: ${ABOUT[$n]}"
  start=$SECONDS
  "$BENCH/$n.sh"
  echo "run.sh: $n done in $((SECONDS - start)) s"
done
if ((tables)) && [[ -z ${RESULTS_DIR:-} ]]; then
  python3 "$BENCH/tables.py"
elif ((tables)); then
  echo "run.sh: results went to RESULTS_DIR=$RESULTS_DIR; docs/performance.md left alone" \
    "(python3 tests/bench/tables.py --results $RESULTS_DIR --doc COPY.md renders them)"
fi
