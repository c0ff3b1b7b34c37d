#!/usr/bin/env bash
# Balancer cost (issue 4): instructions per request under callgrind (deterministic, the number
# to track) for one endpoint with 1 replica vs 8 replicas (p2c_ewma, round_robin), all mock
# upstreams on loopback serving the bench20 stream; the first request to each replica pays its
# connect, so more requests amortise that. Prints the ratios; writes
# bench/results/<date>-lb.json (BENCH_OUT overrides the directory). BENCH_SMOKE=1: fewer requests,
# results under ${TMPDIR:-/tmp}/agate-bench-smoke (never in the work tree). A run that measured
# nothing (a failed request, no instruction count, a ratio that is not a finite number) fails.
# (Latency under load with many replicas is measured by bench/run.sh's load client.)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/bench/lib.sh"
build=${BUILD:-$here/build}
agate=$build/agate
mock=$build/mock_upstream
n=${LB_REQUESTS:-200}
[ "${BENCH_SMOKE:-0}" = 1 ] && n=20
for tool in curl valgrind; do
  command -v "$tool" >/dev/null || { echo "lb_cost: $tool not found (deploy/install-deps.sh --bench)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/agate-lb-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ports=()
for i in $(seq 1 8); do
  "$mock" --port 0 --default-scenario bench20 > "$work/m$i.out" 2>/dev/null &
  pids+=($!)
done
for i in $(seq 1 8); do
  wait_line "$work/m$i.out" '^listening' 20 || { echo "lb_cost: mock $i did not start within 20 s" >&2; exit 1; }
  ports+=("$(awk '{print $2}' "$work/m$i.out")")
done

config() { # replicas strategy
  local ups="" i
  for i in $(seq 0 $(($1 - 1))); do ups+="${ups:+,}{\"url\":\"http://127.0.0.1:${ports[$i]}/v1\"}"; done
  echo "{\"listen\":\"127.0.0.1:0\",\"endpoints\":[{\"name\":\"e\",\"strategy\":\"$2\",\"upstreams\":[$ups]}]}"
}

# run <replicas> <strategy> <callgrind 0|1> <requests>: prints "instructions_total wall_ms"
# (wall time includes a curl process per request: not a latency figure)
run() {
  config "$1" "$2" > "$work/cfg.json"
  local cmd=("$agate" --config "$work/cfg.json")
  [ "$3" = 1 ] && cmd=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "${cmd[@]}")
  # Emptied here, not only by the child's redirection: the child may truncate it after wait_line
  # has already read the previous run's "listening" line.
  : > "$work/a.err"
  # stdout away from the caller's $(...) pipe: an agate left holding it would block the script.
  "${cmd[@]}" > "$work/a.out" 2>> "$work/a.err" &
  local ap=$!
  # run() runs in a command substitution (a subshell, without the script's EXIT trap): stop
  # this agate on every way out of it, a failed start or request included.
  trap 'kill "$ap" 2>/dev/null || true' EXIT
  wait_line "$work/a.err" 'event=listening' 60 "$ap" || true # checked below, with the log
  local port
  port=$(grep -o 'addr=127.0.0.1:[0-9]*' "$work/a.err" | cut -d: -f2)
  local t0 t1
  t0=$(date +%s%N)
  [ -n "$port" ] || { echo "lb_cost: agate did not start: $(tail -3 "$work/a.err")" >&2; exit 1; }
  for _ in $(seq 1 "$4"); do
    curl -sf -o /dev/null -H 'content-type: application/json' \
      -d '{"model":"e","input":"hi","stream":true}' "http://127.0.0.1:$port/v1/responses" ||
      { echo "lb_cost: a request to agate failed ($1 replicas, $2)" >&2; exit 1; }
  done
  t1=$(date +%s%N)
  kill -TERM "$ap"; wait "$ap" 2>/dev/null || true
  local ir=0
  if [ "$3" = 1 ]; then
    ir=$(grep -o 'summary: [0-9]*' "$work/cg.out" | awk '{print $2}')
    [[ "$ir" =~ ^[0-9]+$ ]] && [ "$ir" -gt 0 ] || { echo "lb_cost: no instruction count from callgrind" >&2; exit 1; }
  fi
  echo "$ir $(( (t1 - t0) / 1000000 ))"
}

per_req() { # instructions per request, startup (0 requests) subtracted
  local base total
  base=$(run "$1" "$2" 1 0 | awk '{print $1}')
  total=$(run "$1" "$2" 1 "$n" | awk '{print $1}')
  [[ "$base" =~ ^[0-9]+$ && "$total" =~ ^[0-9]+$ ]] && [ "$total" -gt "$base" ] ||
    { echo "lb_cost: no per-request instruction count ($1 replicas, $2: base '$base', total '$total')" >&2; exit 1; }
  echo $(( (total - base) / n ))
}

echo "Balancer cost: 1 vs 8 replicas, $n sequential bench20 stream requests each"
declare -A ir
for strat in p2c_ewma round_robin; do
  for r in 1 8; do
    ir[$strat-$r]=$(per_req "$r" "$strat")
  done
done
printf "%-12s %-9s %-22s\n" strategy replicas "instructions/request"
for strat in p2c_ewma round_robin; do
  for r in 1 8; do printf "%-12s %-9s %-22s\n" "$strat" "$r" "${ir[$strat-$r]}"; done
  awk -v a="${ir[$strat-8]}" -v b="${ir[$strat-1]}" -v s="$strat" \
    'BEGIN { if (!(a > 0 && b > 0)) { print "lb_cost: no ratio for " s > "/dev/stderr"; exit 1 }
             printf "%-12s 8/1 instruction ratio %.4f\n", s, a / b }'
done
if [ "${BENCH_SMOKE:-0}" = 1 ]; then out_dir=${BENCH_OUT:-${TMPDIR:-/tmp}/agate-bench-smoke}; else out_dir=${BENCH_OUT:-$here/bench/results}; fi
mkdir -p "$out_dir"
out="$out_dir/$(date -u +%Y-%m-%d)$([ "${BENCH_SMOKE:-0}" = 1 ] && echo -smoke)-lb.json"
cat > "$out" <<JSON
{"requests": $n, "p2c_ewma": {"r1_instr": ${ir[p2c_ewma-1]}, "r8_instr": ${ir[p2c_ewma-8]}},
 "round_robin": {"r1_instr": ${ir[round_robin-1]}, "r8_instr": ${ir[round_robin-8]}}}
JSON
echo "wrote $out"
