#!/usr/bin/env bash
# Install what agate needs on Debian 12, idempotent and quiet when everything is present.
#   deploy/install-deps.sh          build + run dependencies
#   deploy/install-deps.sh --test   also the test dependencies (node + the pinned openai SDK, and
#                                   PostgreSQL: the tables tests start a throwaway cluster)
#   deploy/install-deps.sh --bench  also the benchmark tools (nginx, wrk, valgrind)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(cmake make gcc pkg-config libuv1-dev libyajl-dev libcurl4-openssl-dev libpq-dev node-llhttp)
want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1; pkgs+=(libcriterion-dev postgresql libpq-dev) ;;
    --bench) pkgs+=(nginx-light wrk valgrind postgresql) ;;
    *) echo "install-deps: unknown option $arg" >&2; exit 2 ;;
  esac
done
if [ "$want_test" = 1 ] && ! command -v node >/dev/null 2>&1; then
  pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$want_test" = 1 ]; then
  it="$here/tests/integration"
  # The conformance client is the official SDK, pinned in package-lock.json.
  if [ ! -d "$it/node_modules/openai" ] || [ "$it/package-lock.json" -nt "$it/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/integration"
    (cd "$it" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
