#!/usr/bin/env bash
# The auth benchmark, against a real control plane and sidecars:
#  1. What auth costs per request: requests/s and sidecar CPU µs/request on a route with no
#     auth, an API key route, and a JWT route for each algorithm (tokens signed by PyJWT):
#     once with one token sent again and again (verified once, then remembered), once
#     cycling through UNCACHED distinct tokens (more than the cache holds: every request
#     pays the signature check). The sidecar (one thread) and the upstream nginx share
#     CPU 1; wrk runs on CPU 0.
#  2. How fast a revocation reaches every sidecar: REVOKES times, `wardenctl keys revoke`
#     is run and two sidecars are polled (keep-alive, every 1 ms) until both refuse the
#     key. Measured from just before wardenctl starts, so it includes the CLI's own start.
#
#   tests/bench/run.sh auth      # ROUNDS=2 DUR=5 KEYS=1000 REVOKES=50 by default (~5 min)
#
# Writes tests/bench/results/auth-latest.{txt,json}.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50} KEYS=${KEYS:-1000} REVOKES=${REVOKES:-50}
UNCACHED=${UNCACHED:-20000}
bench_init auth
build warden-sidecar warden-control-plane
python3 -c 'import jwt, cryptography' 2>/dev/null || die "auth needs PyJWT: pip install 'pyjwt[crypto]'"

start_upstream
cp_args "$RUN/data"
CP=http://$CP_ADDR
ctl() { "$BIN/wardenctl" --server "$CP" "$@"; }
start control-plane "${PIN_LOAD[@]}" env WARDEN_LOG=warn "$BIN/warden-control-plane" "${CP_ARGS[@]}"
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done

python3 "$ROOT/tests/tools/sign.py" keys "$RUN/keys"
cat >"$RUN/policy.yaml" <<POLICY
service: bench
routes:
  - name: plain
    match: { path_prefix: /plain }
  - name: key
    match: { path_prefix: /key }
    auth: keys
  - name: jwt
    match: { path_prefix: /jwt }
    auth: users
auth:
  keys: { type: api_key, header: x-api-key }
  users: { type: jwt, issuers: [https://id.example.com], audiences: [bench], jwks_file: $RUN/keys/jwks.json }
POLICY
ctl apply -f "$RUN/policy.yaml" -m bench >/dev/null
KEY=$(ctl keys create --service bench --client bench-client --plan pro 2>/dev/null)
# Other clients' keys, so the lookup is in a populated table.
seq "$KEYS" | xargs -P 4 -I{} "$BIN/wardenctl" --server "$CP" keys create --service bench --client "c{}" >/dev/null 2>&1

sidecar() {  # cpu instance -> PORT[instance]
  local port admin
  alloc_ports port admin
  start "$2" taskset -c "$1" env WARDEN_LOG=warn "$BIN/warden-sidecar" --service bench --control-plane "$CP" \
    --listen "127.0.0.1:$port" --upstream "127.0.0.1:$UP_PORT" --admin "127.0.0.1:$admin" --state-dir "$RUN/state-$2" \
    --instance "$2" --threads 1 --access-log off
  PORT[$2]=$port
}
declare -A PORT
sidecar "$PROXY_CPU" bench-1
sidecar "$LOAD_CPU" bench-2
for i in bench-1 bench-2; do
  wait_http "http://127.0.0.1:${PORT[$i]}/key" 10 -H "x-api-key: $KEY" || die "sidecar $i is not answering (see $RUN/$i.log)"
done
SIDECAR=http://127.0.0.1:${PORT[bench-1]}

EXP=$(($(date +%s) + 3600))
CLAIMS="{\"sub\": \"bench-user\", \"plan\": \"pro\", \"iss\": \"https://id.example.com\", \"aud\": \"bench\", \"exp\": $EXP}"
declare -A HDR=([plain]="x-none: 1" [api_key]="x-api-key: $KEY")
declare -A PATHS=([plain]=/plain [api_key]=/key)
declare -A TOKEN_FILE=()
TARGETS="plain api_key"
for pair in hs1:HS256 ec1:ES256 ed1:EdDSA rsa1:RS256; do
  kid=${pair%%:*} alg=${pair##*:}
  HDR[jwt-$alg]="authorization: Bearer $(python3 "$ROOT/tests/tools/sign.py" jwt "$RUN/keys" "$kid" "$alg" "$CLAIMS")"
  PATHS[jwt-$alg]=/jwt
  TARGETS+=" jwt-$alg"
done
for pair in hs1:HS256 ec1:ES256 ed1:EdDSA rsa1:RS256; do
  kid=${pair%%:*} alg=${pair##*:}
  python3 "$ROOT/tests/tools/sign.py" jwts "$RUN/keys" "$kid" "$alg" "$CLAIMS" "$UNCACHED" "$RUN/tokens-$alg.txt"
  HDR[jwt-$alg-new]="x-none: 1"
  PATHS[jwt-$alg-new]=/jwt
  TOKEN_FILE[jwt-$alg-new]=$RUN/tokens-$alg.txt
  TARGETS+=" jwt-$alg-new"
done
export REPORT_LUA=$BENCH/wrk-report.lua
for t in $TARGETS; do
  hdr=${HDR[$t]}
  [[ -n ${TOKEN_FILE[$t]:-} ]] && hdr="authorization: Bearer $(head -1 "${TOKEN_FILE[$t]}")"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$hdr" "$SIDECAR${PATHS[$t]}")
  [[ $code == 200 ]] || { echo "$t answers $code"; exit 1; }
done
load() {  # target duration [extra wrk args]
  local t=$1 d=$2; shift 2
  if [[ -n ${TOKEN_FILE[$t]:-} ]]; then
    TOKENS=${TOKEN_FILE[$t]} "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$d" -s "$BENCH/tokens.lua" "$@" "$SIDECAR${PATHS[$t]}"
  else
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$d" -H "${HDR[$t]}" -s "$BENCH/wrk-report.lua" "$@" "$SIDECAR${PATHS[$t]}"
  fi
}

SPID=${PID[bench-1]}
declare -A RPS CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for t in $TARGETS; do
    load "$t" 2s >/dev/null
    measure "$t" "$SPID" load "$t" "${DUR}s"
    grep -q 'err_status=0 ' <<<"$OUT" || { echo "$t: non-2xx answers: $OUT"; exit 1; }
  done
done

REVOKE=$(python3 - "$BIN/wardenctl" "$CP" "$REVOKES" "${PORT[bench-1]}" "${PORT[bench-2]}" <<'PY'
import http.client, json, subprocess, sys, time
ctl, server, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
conns = [http.client.HTTPConnection("127.0.0.1", int(p)) for p in sys.argv[4:6]]
def status(c, key):
    c.request("GET", "/key", headers={"x-api-key": key})
    r = c.getresponse(); r.read(); return r.status
def until(key, want):
    for c in conns:
        while status(c, key) != want:
            time.sleep(0.001)
lat = []
for _ in range(rounds):
    out = subprocess.run([ctl, "--server", server, "keys", "create", "--service", "bench", "--client", "r", "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    k = json.loads(out)
    until(k["key"], 200)
    t0 = time.perf_counter()
    subprocess.run([ctl, "--server", server, "keys", "revoke", k["id"]], check=True, capture_output=True)
    until(k["key"], 401)
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{len(lat)} {pick(0.5):.1f} {pick(0.99):.1f} {lat[-1]:.1f}")
PY
)

{
  echo "# Auth benchmark $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median), keep-alive;"
  echo "# sidecar (1 thread) and upstream on CPU 1, wrk on CPU 0; $((KEYS + 1)) API keys loaded"
  echo "# jwt-ALG: one token, verified once then remembered; jwt-ALG-new: $UNCACHED distinct tokens, every one verified"
  printf '%-16s %10s %16s %18s\n' target req/s cpu_us/req added_us/req
  # shellcheck disable=SC2086
  base=$(med ${CPU[plain]})
  for t in $TARGETS; do
    # shellcheck disable=SC2086
    c=$(med ${CPU[$t]})
    printf '%-16s %10s %16s %18s\n' "$t" "$(med ${RPS[$t]})" "$c" "$(awk -v a="$c" -v b="$base" 'BEGIN{printf "%+.2f", a-b}')"
  done
  read -r n p50 p99 max <<<"$REVOKE"
  echo
  echo "# Revocation reaching both sidecars ($n revocations, from wardenctl start to both answering 401)"
  echo "p50 ${p50} ms   p99 ${p99} ms   max ${max} ms"
} | tee "$RUN/table.txt"
finish_txt
