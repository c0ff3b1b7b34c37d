#!/usr/bin/env bash
# Balancer cost (issue 4): instructions per request under callgrind (deterministic, the number
# to track) for one endpoint with 1 replica vs 8 replicas (p2c_ewma, round_robin), all mock
# upstreams on loopback serving the bench20 stream; the first request to each replica pays its
# connect, so more requests amortise that. Prints the ratios; writes
# bench/results/<date>-lb.json. BENCH_SMOKE=1: fewer requests. (Latency under load with many
# replicas is measured by bench/run.sh's load client.)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
agate=$build/agate
mock=$build/mock_upstream
n=${LB_REQUESTS:-200}
[ "${BENCH_SMOKE:-0}" = 1 ] && n=20
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
  for _ in $(seq 1 50); do grep -q listening "$work/m$i.out" 2>/dev/null && break; sleep 0.05; done
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
  "${cmd[@]}" 2> "$work/a.err" &
  local ap=$!
  for _ in $(seq 1 200); do grep -q listening "$work/a.err" && break; sleep 0.05; done
  local port
  port=$(grep -o 'addr=127.0.0.1:[0-9]*' "$work/a.err" | cut -d: -f2)
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq 1 "$4"); do
    curl -s -o /dev/null -H 'content-type: application/json' \
      -d '{"model":"e","input":"hi","stream":true}' "http://127.0.0.1:$port/v1/responses"
  done
  t1=$(date +%s%N)
  kill -TERM "$ap"; wait "$ap" 2>/dev/null || true
  local ir=0
  [ "$3" = 1 ] && ir=$(grep -o 'summary: [0-9]*' "$work/cg.out" | awk '{print $2}')
  echo "$ir $(( (t1 - t0) / 1000000 ))"
}

per_req() { # instructions per request, startup (0 requests) subtracted
  local base total
  base=$(run "$1" "$2" 1 0 | awk '{print $1}')
  total=$(run "$1" "$2" 1 "$n" | awk '{print $1}')
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
  awk -v a="${ir[$strat-8]}" -v b="${ir[$strat-1]}" -v s="$strat" 'BEGIN{printf "%-12s 8/1 instruction ratio %.4f\n", s, a / b}'
done
mkdir -p "$here/bench/results"
out="$here/bench/results/$(date -u +%Y-%m-%d)${BENCH_SMOKE:+-smoke}-lb.json"
cat > "$out" <<JSON
{"requests": $n, "p2c_ewma": {"r1_instr": ${ir[p2c_ewma-1]}, "r8_instr": ${ir[p2c_ewma-8]}},
 "round_robin": {"r1_instr": ${ir[round_robin-1]}, "r8_instr": ${ir[round_robin-8]}}}
JSON
echo "wrote $out"
