# Shared by the benchmark scripts here (source it after setting LAB and RUN): process
# cleanup, the lab's upstream nginx on CPU 1, and the measurement of one wrk run.
# shellcheck shell=bash

PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT

# The lab's upstream (a fixed 200 on 127.0.0.1:18080), pinned to CPU 1.
start_upstream() {
  mkdir -p "$RUN/upstream/tmp"
  taskset -c 1 nginx -p "$RUN/upstream/" -e "$RUN/upstream/error.log" -c "$LAB/conf/upstream-nginx.conf" >/dev/null 2>&1 &
  PIDS+=($!)
}

# CPU ticks (user + system) a process has used.
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}'; }
CLK=$(getconf CLK_TCK)

# The median of the arguments.
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

# measure TARGET PID COMMAND...: runs COMMAND (a wrk run ending in the lab's RESULT line)
# and appends its requests/s to RPS[TARGET] and PID's CPU µs per request to CPU[TARGET]
# (associative arrays the caller declared). The wrk output is left in $OUT.
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
