#!/usr/bin/env bash
# TLS benchmark: requests/s and proxy CPU per request for nginx and Warden, each with and
# without TLS, on one pinned core (CPU 1, shared with the upstream nginx), wrk on CPU 0,
# keep-alive connections (so this measures TLS record overhead, not handshakes).
#
#   tests/bench/tls.sh                 # ROUNDS=2 DUR=5 by default (~2 min)
#
# Writes the table to tests/bench/results/tls-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${BENCH_LAB:-$ROOT/../shared/bench}
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50}
RUN=$(mktemp -d /tmp/warden-tls-bench.XXXXXX)
"$LAB/setup.sh" >/dev/null
(cd "$ROOT" && cargo build --quiet --release -p warden-sidecar)

# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.local \
  -addext subjectAltName=DNS:bench.local -keyout "$RUN/tls.key" -out "$RUN/tls.crt" 2>/dev/null

start_nginx() {  # name conf
  mkdir -p "$RUN/$1/tmp"
  taskset -c 1 nginx -p "$RUN/$1/" -e "$RUN/$1/error.log" -c "$2" >/dev/null 2>&1 &
  PIDS+=($!)
}
start_nginx upstream "$LAB/conf/upstream-nginx.conf"
start_nginx nginx "$LAB/conf/proxy-nginx.conf"
sed -e "s|CERT|$RUN/tls.crt|" -e "s|KEY|$RUN/tls.key|" "$ROOT/tests/bench/conf/nginx-tls.conf" > "$RUN/nginx-tls.conf"
start_nginx nginx-tls "$RUN/nginx-tls.conf"

sed -e '/^routes:/i tls:\n  certificates:\n    - { cert: '"$RUN/tls.crt"', key: '"$RUN/tls.key"' }' \
  "$ROOT/tests/bench/policy-10-routes.yaml" > "$RUN/policy-tls.yaml"
sidecar() {  # policy listen admin
  taskset -c 1 env WARDEN_LOG=warn "$ROOT/target/release/warden-sidecar" --policy-file "$1" --listen "$2" \
    --upstream 127.0.0.1:18080 --admin "$3" --threads 1 --access-log off >"$RUN/sidecar-${2##*:}.log" 2>&1 &
  PIDS+=($!)
}
sidecar "$ROOT/tests/bench/policy-10-routes.yaml" 127.0.0.1:18084 127.0.0.1:18085
sidecar "$RUN/policy-tls.yaml" 127.0.0.1:18094 127.0.0.1:18095

declare -A URL=([nginx]=http://127.0.0.1:18081/ [nginx-tls]=https://127.0.0.1:18091/
                [warden]=http://127.0.0.1:18084/ [warden-tls]=https://127.0.0.1:18094/)
TARGETS="nginx nginx-tls warden warden-tls"
for t in $TARGETS; do
  for _ in $(seq 100); do curl -ks -o /dev/null "${URL[$t]}" && break; sleep 0.1; done
  [[ $(curl -ks "${URL[$t]}") == "hello from upstream" ]] || { echo "$t is not answering"; exit 1; }
done
# The process that handles the traffic: nginx's worker, or the sidecar.
pid_of() {
  case $1 in
    warden) pgrep -f "listen 127.0.0.1:18084" ;;
    warden-tls) pgrep -f "listen 127.0.0.1:18094" ;;
    nginx) pgrep -P "$(pgrep -f "nginx -p $RUN/nginx/ " | head -1)" ;;
    nginx-tls) pgrep -P "$(pgrep -f "nginx -p $RUN/nginx-tls/ " | head -1)" ;;
  esac
}
declare -A RPS CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for t in $TARGETS; do
    pid=$(pid_of "$t")
    taskset -c 0 wrk -t1 -c"$CONNS" -d2s "${URL[$t]}" >/dev/null
    measure "$t" "$pid" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$LAB/wrk-report.lua" "${URL[$t]}"
  done
done
mkdir -p "$ROOT/tests/bench/results"
{
  echo "# TLS benchmark $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median), keep-alive; proxy and upstream on CPU 1, wrk on CPU 0"
  printf '%-11s %10s %16s\n' target req/s proxy_cpu_us/req
  for t in $TARGETS; do
    # shellcheck disable=SC2086
    printf '%-11s %10s %16s\n' "$t" "$(med ${RPS[$t]})" "$(med ${CPU[$t]})"
  done
} | tee "$ROOT/tests/bench/results/tls-latest.txt"
