#!/usr/bin/env bash
# Run each libFuzzer target for a fixed time: tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
# New inputs and crash artifacts go to ${TMPDIR:-/tmp}/agate-fuzz/<target>/, never into the tree;
# the committed seeds are read only. A crash, leak or timeout fails the run and names the input.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
secs=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http server sse request config chat_completions responses redact keys traceparent stored cc_scan)
out=${TMPDIR:-/tmp}/agate-fuzz
status=0
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  dict="$here/json.dict"
  case "$t" in http | server) dict="$here/http.dict" ;; esac
  mkdir -p "$out/$t/new"
  start=$(date +%s)
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -dict="$dict" \
     -artifact_prefix="$out/$t/" -print_final_stats=1 "$out/$t/new" "$here/$t/corpus" \
     >"$out/$t/log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$out/$t/log")
    echo "fuzz: $t ok, ${runs:-?} runs in $(( $(date +%s) - start )) s"
  else
    echo "fuzz: $t FAILED after $(( $(date +%s) - start )) s; log $out/$t/log:" >&2
    grep -E 'ERROR|SUMMARY|Test unit written|runtime error' "$out/$t/log" | head -20 >&2 || true
    status=1
  fi
done
exit $status
