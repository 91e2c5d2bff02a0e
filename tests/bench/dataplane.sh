#!/usr/bin/env bash
# The data-plane benchmark, one command: direct, nginx, HAProxy, Envoy and Warden three ways
# side by side in one run, over HTTP/1.1 keep-alive and HTTP/2 (h2c), with small (20 B) and
# 64 KiB response bodies.
#
#   warden       plain routing: the 10-route policy, standalone (--policy-file)
#   warden-full  API key auth + two rate limits + request/response header rewrites + tracing
#                at 1 % to a real OTLP receiver, from a running control plane
#   warden-big   the same with 999 more routes in front (1,000) and 100,000 API keys loaded
#
# Every proxy gets one worker (Warden: --threads 1) pinned to CPU 1 beside the upstream
# nginx, as a sidecar shares its node with the app; the load generator (h2load) and the
# control plane run on CPU 0. Per mode and target:
#   - max throughput: h2load -c50 (HTTP/2: 5 connections x 10 streams) for DUR s, ROUNDS
#     rounds interleaved across targets (median req/s); the proxy's own CPU µs per request
#     over those rounds, and from it the requests/s one core of the proxy sustains
#     (1e6 / µs): the per-core figure, since the upstream shares the proxy's core;
#   - latency at a fixed rate: h2load --rps, RATE req/s over 10 connections for DUR_LAT s:
#     p50 / p99 / p99.9, and the p99 added over the direct row;
#   - RSS: idle (after start, before any load) and under load (sampled mid-run).
#
#   tests/bench/dataplane.sh                       # ROUNDS=2 DUR=5, ~12 min
#   ROUNDS=1 DUR=3 MODES=h1-small tests/bench/dataplane.sh   # a quick look
#   PERF=warden-full ...                                       # and profile one target
#
# Writes the tables to tests/bench/results/dataplane-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${BENCH_LAB:-$ROOT/../shared/bench}
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} DUR_LAT=${DUR_LAT:-5} RATE=${RATE:-5000} KEYS=${KEYS:-100000}
MODES=${MODES:-"h1-small h1-64k h2-small h2-64k"}
TARGETS=${TARGETS:-"direct nginx haproxy envoy warden warden-full warden-big"}
RUN=$(mktemp -d /tmp/warden-dataplane.XXXXXX)
chmod 755 "$RUN"  # nginx workers (user nobody when run as root) read the 64 KiB file
CONF=$ROOT/tests/bench/conf
"$LAB/setup.sh" >/dev/null
ENVOY_BIN=${ENVOY_BIN:-$(ls /tmp/warden-bench/venv/lib/python3*/site-packages/envoy/_bin/envoy | head -1)}
(cd "$ROOT" && cargo build --quiet --release -p warden-sidecar -p warden-control-plane -p warden-e2e --bins)
BIN=$ROOT/target/release
CP=http://127.0.0.1:17070
ctl() { "$BIN/wardenctl" --server "$CP" "$@"; }
ulimit -n 20000 2>/dev/null || true

# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"
declare -A WPID H1 H2 KEY

start_nginx() {  # name conf -> WPID[name] = its worker
  mkdir -p "$RUN/$1/tmp" "$RUN/$1/html"
  taskset -c 1 nginx -p "$RUN/$1/" -e "$RUN/$1/error.log" -c "$2" >/dev/null 2>&1 &
  PIDS+=($!)
  local w=""
  for _ in $(seq 50); do w=$(pgrep -P "${PIDS[-1]}" | head -1 || true); [[ -n $w ]] && break; sleep 0.1; done
  [[ -n $w ]] || { echo "$1: no nginx worker"; exit 1; }
  WPID[$1]=$w
}

# The upstream, with its 64 KiB body.
mkdir -p "$RUN/direct/html"
head -c 65536 /dev/urandom >"$RUN/direct/html/64k"
start_nginx direct "$CONF/dp-upstream-nginx.conf"
H1[direct]=18080 H2[direct]=18180

# The control plane (CPU 0) with its store seeded: one key for `full`, KEYS for `big`.
mkdir -p "$RUN/cp"
KEY[warden-full]=$("$BIN/warden-seed-keys" --data-dir "$RUN/cp" --service full --keys 1)
KEY[warden-big]=$("$BIN/warden-seed-keys" --data-dir "$RUN/cp" --service big --keys "$KEYS")
taskset -c 0 env WARDEN_LOG=warn "$BIN/warden-control-plane" --listen 127.0.0.1:17070 --data-dir "$RUN/cp" \
  >"$RUN/cp.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl apply -f "$ROOT/tests/bench/policy-full.yaml" -m bench >/dev/null
{
  sed -n '/^service:/,/^routes:/p' "$ROOT/tests/bench/policy-full.yaml" | sed 's/^service: full/service: big/'
  for i in $(seq 1 999); do printf '  - name: r%d\n    match: { path_prefix: /r%d }\n    auth: keys\n' "$i" "$i"; done
  sed -n '/^  - name: app/,$p' "$ROOT/tests/bench/policy-full.yaml"
} >"$RUN/policy-big.yaml"
ctl apply -f "$RUN/policy-big.yaml" -m bench >/dev/null

# A real OTLP/gRPC receiver for the 1 % of requests traced.
taskset -c 0 "$BIN/warden-otlp-sink" 127.0.0.1:14317 >"$RUN/sink.log" 2>&1 &
PIDS+=($!)
TRACING="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14317 OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01"

start_proxy() {  # name h1-port h2-port command...
  local name=$1
  H1[$name]=$2 H2[$name]=$3
  shift 3
  mkdir -p "$RUN/$name"
  taskset -c 1 "$@" >"$RUN/$name/stdout.log" 2>&1 &
  PIDS+=($!)
  WPID[$name]=$!
}
for t in $TARGETS; do
  case $t in
    direct) ;;
    nginx) start_nginx nginx "$CONF/dp-nginx.conf"; H1[nginx]=18081 H2[nginx]=18181 ;;
    haproxy) start_proxy haproxy 18082 18182 haproxy -db -f "$CONF/dp-haproxy.cfg" ;;
    envoy) start_proxy envoy 18083 18083 "$ENVOY_BIN" -c "$CONF/dp-envoy.yaml" --concurrency 1 --disable-hot-restart --log-level warn ;;
    warden) start_proxy warden 18084 18084 env WARDEN_LOG=warn "$BIN/warden-sidecar" --policy-file "$ROOT/tests/bench/policy-10-routes.yaml" \
      --listen 127.0.0.1:18084 --upstream 127.0.0.1:18080 --admin 127.0.0.1:18085 --threads 1 --access-log off ;;
    warden-full | warden-big)
      port=$([[ $t == warden-full ]] && echo 18086 || echo 18088)
      # shellcheck disable=SC2086
      start_proxy "$t" "$port" "$port" env $TRACING WARDEN_LOG=warn "$BIN/warden-sidecar" --service "${t#warden-}" \
        --control-plane "$CP" --listen "127.0.0.1:$port" --upstream 127.0.0.1:18080 --admin "127.0.0.1:$((port + 1))" \
        --state-dir "$RUN/$t/state" --threads 1 --access-log off ;;
    *) echo "unknown target $t"; exit 1 ;;
  esac
done
for t in $TARGETS; do
  KEY[$t]=${KEY[$t]:-${KEY[warden-full]}}
  for proto in h1 h2; do
    port=$([[ $proto == h1 ]] && echo "${H1[$t]}" || echo "${H2[$t]}")
    flag=$([[ $proto == h1 ]] && echo --http1.1 || echo --http2-prior-knowledge)
    for _ in $(seq 200); do
      [[ $(curl -s "$flag" -o /dev/null -w '%{http_code}' -H "x-api-key: ${KEY[$t]}" "http://127.0.0.1:$port/64k") == 200 ]] && break
      sleep 0.1
    done
    code=$(curl -s "$flag" -o "$RUN/body" -w '%{http_code}' -H "x-api-key: ${KEY[$t]}" "http://127.0.0.1:$port/64k")
    [[ $code == 200 ]] && cmp -s "$RUN/body" "$RUN/direct/html/64k" || { echo "$t ($proto) answers $code"; exit 1; }
  done
done
# Proof the full policy is on: no key, no entry.
for t in warden-full warden-big; do
  [[ " $TARGETS " != *" $t "* ]] && continue
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${H1[$t]}/")
  [[ $code == 401 ]] || { echo "$t answers $code without a key"; exit 1; }
done
sleep 1
rss() { awk '/^VmRSS:/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
declare -A IDLE LOADED
for t in $TARGETS; do IDLE[$t]=$(rss "${WPID[$t]}"); done

h2l() {  # mode target h2load-args... : one h2load run at the target, in the mode
  local proto=${1%%-*} size=${1#*-} t=$2 port path=/ flags=()
  shift 2
  if [[ $proto == h1 ]]; then port=${H1[$t]} flags=(--h1); else port=${H2[$t]}; fi
  [[ $size == 64k ]] && path=/64k
  taskset -c 0 h2load "${flags[@]}" -t1 -H "x-api-key: ${KEY[$t]}" "$@" "http://127.0.0.1:$port$path"
}
conc() { [[ ${1%%-*} == h1 ]] && echo "-c50 -m1" || echo "-c5 -m10"; }
declare -A RPS CPU ERR P50 P99 P999
for mode in $MODES; do
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in $TARGETS; do
      # shellcheck disable=SC2046
      ((r == 1)) && h2l "$mode" "$t" $(conc "$mode") -D 2 >/dev/null
      before=$(ticks "${WPID[$t]}")
      # PERF=target: a call-graph profile of that target's first round, for `perf report -i`.
      if [[ ${PERF:-} == "$t" && $r == 1 ]]; then
        perf record -F 2999 --call-graph dwarf,16384 -p "${WPID[$t]}" -o "$RUN/perf-$mode.data" -- sleep "$DUR" >/dev/null 2>&1 &
      fi
      # shellcheck disable=SC2046
      h2l "$mode" "$t" $(conc "$mode") -D "$DUR" >"$RUN/out" &
      load=$!
      sleep "$((DUR / 2))"
      LOADED[$mode,$t]=$(printf '%s\n%s\n' "${LOADED[$mode,$t]:-0}" "$(rss "${WPID[$t]}")" | sort -g | tail -1)
      wait "$load"
      after=$(ticks "${WPID[$t]}")
      n=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$RUN/out")
      RPS[$mode,$t]+=" $(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$RUN/out")"
      CPU[$mode,$t]=$(awk -v t=$((after - before)) -v n="$n" -v c="$CLK" -v p="${CPU[$mode,$t]:-0 0}" \
        'BEGIN{split(p, a, " "); printf "%d %d", a[1] + t, a[2] + n}')
      # Anything but a 2xx, and requests that errored, count as errors.
      bad=$(awk '/^status codes:/{s = $5 + $7 + $9} /^requests:/{e = $12} END{print s + e}' "$RUN/out")
      ERR[$mode,$t]=$((${ERR[$mode,$t]:-0} + bad))
    done
  done
  # Latency at a fixed rate, also interleaved over ROUNDS rounds: the median of each quantile.
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in $TARGETS; do
      rm -f "$RUN/lat.log"  # h2load appends to its log file
      h2l "$mode" "$t" -c10 -m1 --rps=$((RATE / 10)) -D "$DUR_LAT" --warm-up-time=1 --log-file="$RUN/lat.log" >/dev/null
      read -r a b c < <(awk '{print $3}' "$RUN/lat.log" | sort -n | awk '{a[NR]=$1} END{
        split("50 99 99.9", q, " "); for (i = 1; i <= 3; i++) { k = int(q[i] / 100 * NR + 0.999999); printf "%s ", a[k < 1 ? 1 : k] }; print "" }')
      P50[$mode,$t]+=" $a" P99[$mode,$t]+=" $b" P999[$mode,$t]+=" $c"
    done
  done
done

mkdir -p "$ROOT/tests/bench/results"
{
  echo "# Data-plane benchmark $(date -Is), $(nproc) CPUs: each proxy one worker on CPU 1 with the upstream; h2load on CPU 0"
  echo "# $(nginx -v 2>&1 | sed 's/nginx version: //') | haproxy $(haproxy -v | awk 'NR==1{print $3}') | envoy $("$ENVOY_BIN" --version | grep -o 'version: [^ ]*' | cut -d/ -f2) | $(h2load --version)"
  echo "# max throughput: h2load -c50 (h2: -c5 -m10) -D${DUR} x ${ROUNDS} rounds (median req/s); cpu = the proxy's own CPU µs/req;"
  echo "# per_core = 1e6 / cpu: requests/s one core of the proxy sustains. Fixed rate: $RATE req/s over 10 connections, ${DUR_LAT}s x ${ROUNDS}"
  echo "# rounds (median of each quantile; h2load's rate mode, not corrected for coordinated omission; over HTTP/2 its own pacing dominates:"
  echo "# compare the direct row);"
  echo "# latency in µs, add_p99 = p99 minus the direct row's. RSS in MiB: idle (before any load), and under this mode's load (mid-run, highest of the rounds)."
  echo "# warden-big: 1,000 routes and $KEYS API keys. Spans the OTLP receiver got (1 % sampling): $(tail -1 "$RUN/sink.log")"
  for mode in $MODES; do
    echo
    echo "## $mode"
    printf '%-12s %9s %8s %9s %7s %7s %7s %8s %5s %8s %8s\n' target req/s cpu_us per_core p50 p99 p99.9 add_p99 errs rss_idle rss_load
    # shellcheck disable=SC2086
    dp99=$(med ${P99[$mode,direct]:-NA})
    for t in $TARGETS; do
      read -r ticks_ n <<<"${CPU[$mode,$t]}"
      cpu=$(awk -v t="$ticks_" -v n="$n" -v c="$CLK" 'BEGIN{printf "%.2f", n ? t/c*1e6/n : 0}')
      core=$([[ $t == direct ]] && echo - || awk -v c="$cpu" 'BEGIN{printf "%.0f", (c > 0) ? 1e6 / c : 0}')
      # shellcheck disable=SC2086
      read -r p50 p99 p999 <<<"$(med ${P50[$mode,$t]}) $(med ${P99[$mode,$t]}) $(med ${P999[$mode,$t]})"
      # shellcheck disable=SC2086
      printf '%-12s %9.0f %8s %9s %7.0f %7.0f %7.0f %8s %5s %8s %8s\n' "$t" "$(med ${RPS[$mode,$t]})" "$cpu" "$core" "$p50" "$p99" "$p999" \
        "$(awk -v a="$p99" -v b="$dp99" 'BEGIN{printf "%d", a - b}')" "${ERR[$mode,$t]}" "${IDLE[$t]}" "${LOADED[$mode,$t]}"
    done
  done
} | tee "$ROOT/tests/bench/results/dataplane-latest.txt"
echo "raw outputs: $RUN"
