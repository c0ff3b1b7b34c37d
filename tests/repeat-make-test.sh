#!/usr/bin/env bash
# Issue 15's reliability check: `make test` from a clean clone of one commit, N times in a row,
# while a CPU hog runs on the machine the whole time. Not part of `make test` (it takes N × ~16 min
# on 2 cores). Prints one line per run; exits non-zero if any run failed.
#
#   tests/repeat-make-test.sh [COMMIT (HEAD)] [N (10)] [WORKDIR (/tmp/agate-repeat)]
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$src" rev-parse "${1:-HEAD}") || exit 2
n=${2:-10}
work=${3:-/tmp/agate-repeat}
mkdir -p "$work"
# The other CPU-heavy job, bounded: at most 50 minutes per run.
timeout $((n * 3000)) sh -c 'while :; do :; done' &
hog=$!
trap 'kill $hog 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$n"); do
    rm -rf "$work/clone" && git clone -q "$src" "$work/clone" && git -C "$work/clone" checkout -q "$commit" || exit 2
    start=$(date +%s)
    (cd "$work/clone" && CI=true timeout 3000 make test >"$work/run$i.log" 2>&1)
    rc=$?
    [ "$rc" = 0 ] || failed=$((failed + 1))
    echo "run $i commit ${commit:0:7} rc=$rc seconds=$(($(date +%s) - start)) log=$work/run$i.log"
done
[ "$failed" = 0 ]
