#!/usr/bin/env bash
# Install what agate needs on Debian 12, idempotent and quiet when everything is present.
#   deploy/install-deps.sh          build + run dependencies, and curl (the README's examples)
#   deploy/install-deps.sh --test   also the test dependencies (node >= 20 + the pinned openai SDK,
#                                   PostgreSQL: the tables tests start a throwaway cluster,
#                                   redis-server: the fleet rate-limit tests start their own, and
#                                   clang with libFuzzer's runtime for tests/fuzz)
#   deploy/install-deps.sh --bench  also the benchmark tools (nginx, wrk, valgrind, perf, curl)
#   deploy/install-deps.sh --runtime  only what the built binary needs to run (the container
#                                   image's last stage, deploy/Dockerfile): shared libraries + curl
#
# --test also installs systemd for `systemd-analyze verify` of deploy/systemd/agate.service (the
# package only; nothing is started).
#
# Node: the tests need node >= 20; Debian 12 ships 18. A node >= 20 already on PATH is used as it
# is. Otherwise nodejs comes from apt only if apt's candidate is >= 20 (e.g. a NodeSource source is
# configured); Debian's 18 is never installed, and the script stops saying how to get 20.
# node-llhttp (llhttp's C sources) depends on Debian's nodejs through node-semver/node-ms. When no
# nodejs package is installed (node from nvm, a tarball, or none at all), installing it would pull
# nodejs 18 in beside the user's node, so its .deb is downloaded and only the C sources are
# extracted to /usr/local/share/{llhttp,include/llhttp} (CMake looks there too).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(cmake make gcc pkg-config libuv1-dev libyajl-dev libcurl4-openssl-dev libpq-dev libhiredis-dev libsqlite3-dev curl ca-certificates)
want_test=0
want_runtime=0
for arg in "$@"; do
  case "$arg" in
    --runtime) want_runtime=1; pkgs=(libuv1 libyajl2 libcurl4 libpq5 libhiredis0.14 libsqlite3-0 ca-certificates curl) ;;
    --test) want_test=1; pkgs+=(libcriterion-dev postgresql libpq-dev redis-server sqlite3 systemd clang libclang-rt-dev) ;;
    --bench) pkgs+=(nginx-light wrk valgrind linux-perf postgresql curl) ;;
    *) echo "install-deps: unknown option $arg" >&2; exit 2 ;;
  esac
done

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() {
  [ "$updated" = 1 ] && return 0
  local log
  log=$(mktemp)
  if ! apt-get update -q >"$log" 2>&1; then
    echo "install-deps: apt-get update failed:" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  updated=1
}
# apt's own output is kept and shown whole on failure (the reason is above "held broken packages").
apt_install() {
  local log
  log=$(mktemp)
  echo "install-deps: installing $*"
  apt_update
  if ! apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
    echo "install-deps: apt-get install $* failed; apt said:" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

if [ "$want_test" = 1 ] && [ "$(node_major)" -lt 20 ]; then
  have=$(command -v node >/dev/null && node --version || echo "none")
  apt_update
  cand=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')
  cand_major=$(echo "$cand" | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/')
  if [ -n "$cand" ] && [ "$cand" != "(none)" ] && [ "${cand_major:-0}" -ge 20 ] 2>/dev/null; then
    pkgs+=(nodejs)
    installed npm || dpkg -s nodejs 2>/dev/null | grep -q '^Provides:.*\bnpm\b' || pkgs+=(npm)
  else
    cat >&2 <<TXT
install-deps: the tests need node >= 20 (found: $have); apt offers nodejs ${cand:-none}, and
Debian 12's nodejs 18 is too old, so it is not installed. Install Node 20 or newer, then re-run:
  - NodeSource: https://github.com/nodesource/distributions (adds an apt source with nodejs 20+), or
  - a release tarball from https://nodejs.org/dist/ on PATH, or nvm.
TXT
    exit 1
  fi
fi

missing=()
for p in "${pkgs[@]}"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] && apt_install "${missing[@]}"

[ "$want_runtime" = 1 ] && exit 0 # llhttp is compiled into the binary: nothing more to run it

# llhttp C sources (see the header): the package itself when a nodejs package satisfies its
# dependencies anyway, else only its files.
if ! installed node-llhttp && [ ! -f /usr/local/share/llhttp/llhttp.c ]; then
  if installed nodejs; then
    apt_install node-llhttp
  else
    echo "install-deps: extracting llhttp's C sources from node-llhttp (no nodejs package installed)"
    apt_update
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # apt's _apt user writes the download
    if ! (cd "$tmp" && apt-get download -q node-llhttp >"$tmp/log" 2>&1); then
      echo "install-deps: apt-get download node-llhttp failed; apt said:" >&2
      cat "$tmp/log" >&2
      rm -rf "$tmp"
      exit 1
    fi
    dpkg-deb -x "$tmp"/node-llhttp_*.deb "$tmp/x"
    mkdir -p /usr/local/share/llhttp /usr/local/share/include/llhttp
    cp "$tmp/x/usr/share/llhttp/"*.c /usr/local/share/llhttp/
    cp "$tmp/x/usr/share/include/llhttp/llhttp.h" /usr/local/share/include/llhttp/
    rm -rf "$tmp"
  fi
fi

if [ "$want_test" = 1 ]; then
  if [ "$(node_major)" -lt 20 ]; then
    echo "install-deps: node on PATH is $(node --version 2>/dev/null || echo missing); the tests need >= 20" >&2
    exit 1
  fi
  command -v npm >/dev/null || { echo "install-deps: npm not found next to node $(node --version)" >&2; exit 1; }
  it="$here/tests/integration"
  # The conformance client is the official SDK, pinned in package-lock.json.
  if [ ! -d "$it/node_modules/openai" ] || [ "$it/package-lock.json" -nt "$it/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/integration"
    (cd "$it" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
