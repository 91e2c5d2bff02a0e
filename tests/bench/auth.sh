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
#   tests/bench/auth.sh          # ROUNDS=2 DUR=5 KEYS=1000 REVOKES=50 by default (~5 min)
#
# Writes the tables to tests/bench/results/auth-latest.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${BENCH_LAB:-$ROOT/../shared/bench}
ROUNDS=${ROUNDS:-2} DUR=${DUR:-5} CONNS=${CONNS:-50} KEYS=${KEYS:-1000} REVOKES=${REVOKES:-50}
UNCACHED=${UNCACHED:-20000}
RUN=$(mktemp -d /tmp/warden-auth-bench.XXXXXX)
"$LAB/setup.sh" >/dev/null
(cd "$ROOT" && cargo build --quiet --release -p warden-sidecar -p warden-control-plane)
BIN=$ROOT/target/release
CP=http://127.0.0.1:17070
ctl() { "$BIN/wardenctl" --server "$CP" "$@"; }

# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

start_upstream
taskset -c 0 env WARDEN_LOG=warn "$BIN/warden-control-plane" --listen 127.0.0.1:17070 --data-dir "$RUN/data" \
  >"$RUN/cp.log" 2>&1 &
PIDS+=($!)
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

sidecar() {  # cpu listen admin instance
  taskset -c "$1" env WARDEN_LOG=warn "$BIN/warden-sidecar" --service bench --control-plane "$CP" --listen "$2" \
    --upstream 127.0.0.1:18080 --admin "$3" --state-dir "$RUN/state-$4" --instance "$4" --threads 1 --access-log off \
    >"$RUN/sidecar-$4.log" 2>&1 &
  PIDS+=($!)
}
sidecar 1 127.0.0.1:18084 127.0.0.1:18085 bench-1
sidecar 0 127.0.0.1:18094 127.0.0.1:18095 bench-2
for port in 18084 18094; do
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $KEY" "http://127.0.0.1:$port/key") == 200 ]] && break
    sleep 0.1
  done
done

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
export REPORT_LUA=$LAB/wrk-report.lua
for t in $TARGETS; do
  hdr=${HDR[$t]}
  [[ -n ${TOKEN_FILE[$t]:-} ]] && hdr="authorization: Bearer $(head -1 "${TOKEN_FILE[$t]}")"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$hdr" "http://127.0.0.1:18084${PATHS[$t]}")
  [[ $code == 200 ]] || { echo "$t answers $code"; exit 1; }
done
load() {  # target duration [extra wrk args]
  local t=$1 d=$2; shift 2
  if [[ -n ${TOKEN_FILE[$t]:-} ]]; then
    TOKENS=${TOKEN_FILE[$t]} taskset -c 0 wrk -t1 -c"$CONNS" -d"$d" -s "$ROOT/tests/bench/tokens.lua" "$@" "http://127.0.0.1:18084${PATHS[$t]}"
  else
    taskset -c 0 wrk -t1 -c"$CONNS" -d"$d" -H "${HDR[$t]}" -s "$LAB/wrk-report.lua" "$@" "http://127.0.0.1:18084${PATHS[$t]}"
  fi
}

PID=$(pgrep -f "listen 127.0.0.1:18084")
declare -A RPS CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for t in $TARGETS; do
    load "$t" 2s >/dev/null
    measure "$t" "$PID" load "$t" "${DUR}s"
    grep -q 'err_status=0 ' <<<"$OUT" || { echo "$t: non-2xx answers: $OUT"; exit 1; }
  done
done

REVOKE=$(python3 - "$BIN/wardenctl" "$CP" "$REVOKES" <<'PY'
import http.client, json, subprocess, sys, time
ctl, server, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
conns = [http.client.HTTPConnection("127.0.0.1", p) for p in (18084, 18094)]
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

mkdir -p "$ROOT/tests/bench/results"
{
  echo "# Auth benchmark $(date -Is): wrk -t1 -c$CONNS -d${DUR}s x $ROUNDS rounds (median), keep-alive;"
  echo "# sidecar (1 thread) and upstream on CPU 1, wrk on CPU 0; $((KEYS + 1)) API keys loaded"
  echo "# jwt-ALG: one token, verified once then remembered; jwt-ALG-new: $UNCACHED distinct tokens, every one verified"
  printf '%-16s %10s %16s %18s\n' target req/s cpu_us/req added_us/req
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
} | tee "$ROOT/tests/bench/results/auth-latest.txt"
