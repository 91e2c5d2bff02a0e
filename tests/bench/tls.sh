#!/usr/bin/env bash
# TLS benchmark: requests/s and proxy CPU per request for nginx and Warden, each with and
# without TLS, on one pinned core (CPU 1, shared with the upstream nginx), wrk on CPU 0,
# keep-alive connections (so this measures TLS record overhead, not handshakes).
#
#   tests/bench/run.sh tls             # ROUNDS=2 DUR=5 by default (~2 min)
#
# Writes tests/bench/results/tls-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50}
bench_init tls
build warden-sidecar

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.local \
  -addext subjectAltName=DNS:bench.local -keyout "$RUN/tls.key" -out "$RUN/tls.crt" 2>/dev/null

start_upstream
alloc_ports NGINX_H1 NGINX_H2 NGINX_TLS WARDEN WARDEN_ADMIN WARDEN_TLS WARDEN_TLS_ADMIN
render "$CONF/nginx.conf" "$RUN/nginx.conf" "H1_PORT=$NGINX_H1" "H2_PORT=$NGINX_H2" "UP_PORT=$UP_PORT" "ACCESS_LOG=access_log off;"
start_nginx nginx "$RUN/nginx.conf"
render "$CONF/nginx-tls.conf" "$RUN/nginx-tls.conf" "TLS_PORT=$NGINX_TLS" "UP_PORT=$UP_PORT" "CERT=$RUN/tls.crt" "KEY=$RUN/tls.key"
start_nginx nginx-tls "$RUN/nginx-tls.conf"

sed -e '/^routes:/i tls:\n  certificates:\n    - { cert: '"$RUN/tls.crt"', key: '"$RUN/tls.key"' }' \
  "$BENCH/policy-10-routes.yaml" >"$RUN/policy-tls.yaml"
sidecar() {  # name policy port admin-port
  start "$1" "${PIN_PROXY[@]}" env WARDEN_LOG=warn "$BIN/warden-sidecar" --policy-file "$2" --listen "127.0.0.1:$3" \
    --upstream "127.0.0.1:$UP_PORT" --admin "127.0.0.1:$4" --threads 1 --access-log off
}
sidecar warden "$BENCH/policy-10-routes.yaml" "$WARDEN" "$WARDEN_ADMIN"
sidecar warden-tls "$RUN/policy-tls.yaml" "$WARDEN_TLS" "$WARDEN_TLS_ADMIN"

declare -A URL=([nginx]=http://127.0.0.1:$NGINX_H1/ [nginx-tls]=https://127.0.0.1:$NGINX_TLS/
  [warden]=http://127.0.0.1:$WARDEN/ [warden-tls]=https://127.0.0.1:$WARDEN_TLS/)
# The process that handles the traffic: nginx's worker, or the sidecar.
declare -A MPID=([nginx]=${WORKER[nginx]} [nginx-tls]=${WORKER[nginx-tls]} [warden]=${PID[warden]} [warden-tls]=${PID[warden-tls]})
TARGETS="nginx nginx-tls warden warden-tls"
wrk_compare "TLS benchmark" "keep-alive; proxy and upstream on CPU 1, wrk on CPU 0" 11
