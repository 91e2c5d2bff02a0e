#!/usr/bin/env bash
# Quick start: a control plane on its embedded store, a demo app and a sidecar, with
# deploy/examples/orders.yaml applied and an API key made; then requests that pass, some
# that are refused (no key, rate limited, no route), and a key revoked. Everything runs on 127.0.0.1 and stops on Ctrl-C.
#
#   deploy/quickstart.sh           run and keep it up for you to try things
#   deploy/quickstart.sh --check   run the requests, check their status codes, stop
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CHECK=${1:-}
WORK=$(mktemp -d /tmp/warden-quickstart.XXXXXX)
CP=127.0.0.1:7070 APP=127.0.0.1:8080 PROXY=127.0.0.1:15001 ADMIN=127.0.0.1:15000

cargo build --quiet --workspace --bins
BIN=$ROOT/target/debug
PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT

wait_for() {  # url: until it answers at all
  for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}

echo "==> control plane on $CP (store in $WORK/data)"
"$BIN/warden-control-plane" --listen "$CP" --data-dir "$WORK/data" 2>"$WORK/control-plane.log" & PIDS+=($!)
echo "==> demo app on $APP"
"$BIN/warden-demo-app" --listen "$APP" --name orders 2>"$WORK/app.log" & PIDS+=($!)
echo "==> sidecar for service 'orders' on $PROXY (admin $ADMIN)"
"$BIN/warden-sidecar" --service orders --control-plane "http://$CP" --listen "$PROXY" --admin "$ADMIN" \
  --upstream "$APP" --state-dir "$WORK/state" >"$WORK/access.log" 2>"$WORK/sidecar.log" & PIDS+=($!)
wait_for "http://$ADMIN/healthz"

export WARDEN_SERVER="http://$CP"
echo; echo "==> wardenctl apply -f deploy/examples/orders.yaml"
for _ in $(seq 50); do "$BIN/wardenctl" get >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/wardenctl" apply -f deploy/examples/orders.yaml -m "quick start" | tail -1
for _ in $(seq 50); do [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/readyz") == 200 ]] && break; sleep 0.1; done

FAILED=0
try() {  # want_status description curl-args...
  local want=$1 what=$2; shift 2
  echo; echo "==> $what"; echo "    curl $*"
  local out code
  out=$(curl -s -w '\n%{http_code}' "$@")
  code=${out##*$'\n'}
  echo "${out%$'\n'*}" | head -c 600; echo
  echo "    -> HTTP $code (expected $want)"
  [[ $code == "$want" ]] || FAILED=1
}
echo; echo "==> wardenctl keys create --service orders --client acme --plan pro"
KEY=$("$BIN/wardenctl" keys create --service orders --client acme --plan pro 2>/dev/null)
KEY_ID=$("$BIN/wardenctl" keys list --service orders -o json | sed -n 's/.*"id": "\(key_[a-z0-9]*\)".*/\1/p' | head -1)
echo "    key ${KEY:0:12}… (id $KEY_ID), shown once"
for _ in $(seq 50); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' -H "host: api.example.com" -H "x-api-key: $KEY" "http://$PROXY/api/v1/x") == 200 ]] && break
  sleep 0.1
done

try 200 "A request that passes: the app answers" "http://$PROXY/orders/42"
try 401 "The partner API without a key: refused at the edge, with the reason" -H "host: api.example.com" "http://$PROXY/api/v1/orders/7"
try 200 "With the key: path rewritten /api/v1 -> /v2, cookie and key removed, the app told x-warden-client: acme" \
  -H "host: api.example.com" -H "x-api-key: $KEY" -H "cookie: s=1" "http://$PROXY/api/v1//orders/./7"
for _ in 1 2 3; do curl -s -o /dev/null -X POST "http://$PROXY/login"; done
try 429 "The fourth login attempt in a minute from one address: rate limited, with retry-after" -i -X POST "http://$PROXY/login"
try 404 "A request Warden refuses: no route matches" "http://$PROXY/nope"
try 502 "Warden says which layer failed: the admin upstream is not running" "http://$PROXY/admin"

echo; echo "==> wardenctl keys revoke $KEY_ID"; "$BIN/wardenctl" keys revoke "$KEY_ID"
for _ in $(seq 50); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' -H "host: api.example.com" -H "x-api-key: $KEY" "http://$PROXY/api/v1/x") == 401 ]] && break
  sleep 0.02
done
try 401 "The revoked key: refused by every sidecar within moments" -H "host: api.example.com" -H "x-api-key: $KEY" "http://$PROXY/api/v1/orders/7"

echo; echo "==> wardenctl status"; "$BIN/wardenctl" status
for _ in $(seq 50); do [[ $("$BIN/wardenctl" denials -o json | grep -c request_id) -ge 3 ]] && break; sleep 0.1; done
echo; echo "==> wardenctl denials --group   (the review queue: what was refused, and why)"; "$BIN/wardenctl" denials --group
echo; echo "==> wardenctl explain GET http://api.example.com/api/v1/orders -H 'x-api-key: <the revoked key>'"
"$BIN/wardenctl" explain --service orders GET http://api.example.com/api/v1/orders -H "x-api-key: $KEY"

if [[ $CHECK == --check ]]; then
  ((FAILED == 0)) && echo "quick start: all requests behaved" || { echo "quick start: a request misbehaved (logs in $WORK)"; exit 1; }
  exit 0
fi
echo; echo "Running. Try: curl -i http://$PROXY/orders/1   |  WARDEN_SERVER=http://$CP target/debug/wardenctl history orders"
echo "Logs in $WORK (the sidecar's access log: $WORK/access.log). Ctrl-C stops everything."
wait
