#!/usr/bin/env bash
# Inference-table cost (issue 3): throughput and CPU per request of agate with tables off, with
# the JSONL sink and with the PostgreSQL sink (a throwaway local cluster), same load in the
# same run, alternating, repeated; prints ratios against tables off and writes
# bench/results/<date>-tables.json (BENCH_OUT overrides the directory). BENCH_SMOKE=1: 1 repetition
# of 1 s, results under ${TMPDIR:-/tmp}/agate-bench-smoke (never in the work tree).
#
# Row check: every request agate received on the PostgreSQL instance has exactly one payload row.
# The count to compare with is agate's own (agate_requests_total from its /metrics), not wrk's:
# wrk counts the responses completed inside its window, and the up to 64 requests still in flight
# when it stops (one per connection, per run) are not in its count but do reach agate and get
# their row (finish_status cancelled or completed). That is why an earlier version printed more
# rows than requests (1720 rows of 1657). The table has one row per databricks_request_id.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/bench/lib.sh"
build=${BUILD:-$here/build}
reps=${BENCH_REPS:-5}
secs=${BENCH_SECONDS:-4}
if [ "${BENCH_SMOKE:-0}" = 1 ]; then reps=1; secs=1; fi
proxy_cpu=${BENCH_PROXY_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
work=$(mktemp -d /tmp/agate-tables-bench.XXXXXX)
pids=()
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$pgbin" ] && [ -d "$work/pg" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
command -v curl >/dev/null || { echo "tables_cost: curl not found (deploy/install-deps.sh --bench)" >&2; exit 1; }
[ -n "$pgbin" ] || { echo "tables_cost: PostgreSQL server not installed (deploy/install-deps.sh --test)" >&2; exit 1; }

# PostgreSQL: a throwaway cluster on a free loopback port (initdb refuses root: postgres user).
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work" "$work/pg"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U agate --auth=trust -E UTF8 --locale=C -N >/dev/null
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo 54329)
# The database server runs on the load core, not agate's: on this 2-core layout agate's core
# stays agate's alone, so the ratios show what the sink costs the gateway.
taskset -c "$load_cpu" "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -t 30 \
  -o "-p $pgport -k $work -c listen_addresses=127.0.0.1" start >/dev/null
dsn="postgresql://agate@127.0.0.1:$pgport/postgres"

taskset -c "$load_cpu" "$build/mock_upstream" --port 0 --default-scenario bench20 > "$work/mock.out" 2>/dev/null &
pids+=($!)
wait_line "$work/mock.out" '^listening' 20 || { echo "tables_cost: the mock did not start within 20 s" >&2; exit 1; }
mport=$(awk '{print $2}' "$work/mock.out")

declare -A port pid
for t in off jsonl postgres; do
  case $t in
    off) tables='{"sink":"none"}' ;;
    jsonl) tables="{\"sink\":\"jsonl\",\"dir\":\"$work/jsonl\"}" ;;
    postgres) tables="{\"sink\":\"postgres\",\"dsn\":\"$dsn\",\"spool_dir\":\"$work/spool\"}" ;;
  esac
  echo "{\"listen\":\"127.0.0.1:0\",\"endpoints\":[{\"name\":\"bench\",\"upstreams\":[{\"url\":\"http://127.0.0.1:$mport/v1\"}]}],\"tables\":$tables}" > "$work/$t.json"
  taskset -c "$proxy_cpu" "$build/agate" --config "$work/$t.json" 2> "$work/$t.err" &
  pid[$t]=$!
  pids+=($!)
  wait_line "$work/$t.err" 'event=listening' 60 || true # checked below, with the log
  port[$t]=$(grep -o 'addr=127.0.0.1:[0-9]*' "$work/$t.err" | cut -d: -f2)
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A rps cpu
pg_sent=0
for r in $(seq 1 "$reps"); do
  order="off jsonl postgres"
  [ $((r % 2)) = 0 ] && order="postgres jsonl off"
  for t in $order; do
    c0=$(cpu_ticks "${pid[$t]}")
    out=$(taskset -c "$load_cpu" timeout $((secs + 20)) wrk -t1 -c64 -d"${secs}s" -s "$here/bench/wrk_responses.lua" \
      "http://127.0.0.1:${port[$t]}" -- bench20 bench 2>&1)
    c1=$(cpu_ticks "${pid[$t]}")
    n=$(echo "$out" | awk '/requests in/{print $1}')
    q=$(echo "$out" | awk '/Requests\/sec/{print $2}')
    bad=$(echo "$out" | grep -o 'errors_status=[0-9]*' | cut -d= -f2)
    [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "tables_cost: no requests for $t" >&2; exit 1; }
    [ "${bad:-0}" = 0 ] || { echo "tables_cost: $bad non-2xx answers for $t" >&2; exit 1; }
    rps[$t]+="$q "
    [ "$t" = postgres ] && pg_sent=$((pg_sent + n))
    cpu[$t]+="$(awk -v d=$((c1 - c0)) -v n="$n" -v hz="$hz" 'BEGIN{printf "%.1f", d * 1e6 / hz / n}') "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# Every request agate received must reach the database: wait for the queue/spool to drain (bounded).
sleep 0.5 # requests wrk left in flight are read and counted by agate
pg_received=$(curl -sf "http://127.0.0.1:${port[postgres]}/metrics" |
  awk '/^agate_requests_total\{endpoint="bench"\} / {print $2}')
[[ "$pg_received" =~ ^[0-9]+$ ]] && [ "$pg_received" -ge "$pg_sent" ] ||
  { echo "tables_cost: agate_requests_total for the postgres instance is '$pg_received' (wrk completed $pg_sent)" >&2; exit 1; }
psql_q() { "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U agate -d postgres -AtqX -c "$1" 2>/dev/null || echo 0; }
pg_count() { psql_q "select count(*) from bench_payload"; }
t0=$(date +%s)
pg_rows=$(pg_count)
while [ "$pg_rows" -lt "$pg_received" ] && [ $(( $(date +%s) - t0 )) -lt 120 ]; do sleep 1; pg_rows=$(pg_count); done
drain_s=$(( $(date +%s) - t0 ))
sleep 1 # one more flush period: a duplicate or an extra row would land now
pg_rows=$(pg_count)
pg_distinct=$(psql_q "select count(distinct databricks_request_id) from bench_payload")
echo "Tables cost (bench20, wrk -t1 -c64 ${secs}s, $reps alternating repetitions; medians)"
printf "%-10s %-12s %-12s %-14s %-12s\n" sink "req/s" "CPU us/req" "req/s ratio" "CPU ratio"
for t in off jsonl postgres; do
  mr=$(echo "${rps[$t]}" | median); mc=$(echo "${cpu[$t]}" | median)
  r0=$(echo "${rps[off]}" | median); c0=$(echo "${cpu[off]}" | median)
  printf "%-10s %-12s %-12s %-14s %-12s\n" "$t" "$mr" "$mc" \
    "$(awk -v a="$mr" -v b="$r0" 'BEGIN{printf "%.3f", a / b}')" "$(awk -v a="$mc" -v b="$c0" 'BEGIN{printf "%.3f", a / b}')"
done
echo "PostgreSQL: $pg_rows payload rows ($pg_distinct distinct request ids) for the $pg_received requests agate"
echo "received on that instance (wrk completed $pg_sent in its windows; the other $((pg_received - pg_sent)) were in flight"
echo "when wrk stopped), all in the table ${drain_s}s after the load ended"
echo "(the database server runs on the load core of this 2-core machine; what it could not take"
echo " during the load waited in agate's queue/spool and was written afterwards)"
[ "$pg_rows" = "$pg_received" ] && [ "$pg_distinct" = "$pg_received" ] ||
  { echo "tables_cost: FAIL: $pg_rows rows / $pg_distinct distinct ids, want exactly $pg_received (one per request)" >&2; exit 1; }
for t in off jsonl postgres; do
  for v in ${rps[$t]} ${cpu[$t]}; do
    awk -v v="$v" 'BEGIN { exit !(v + 0 > 0) }' || { echo "tables_cost: FAIL: no measurement for $t ('$v')" >&2; exit 1; }
  done
done
if [ "${BENCH_SMOKE:-0}" = 1 ]; then out_dir=${BENCH_OUT:-${TMPDIR:-/tmp}/agate-bench-smoke}; else out_dir=${BENCH_OUT:-$here/bench/results}; fi
mkdir -p "$out_dir"
out="$out_dir/$(date -u +%Y-%m-%d)$([ "${BENCH_SMOKE:-0}" = 1 ] && echo -smoke)-tables.json"
{
  echo "{\"reps\": $reps, \"seconds\": $secs, \"pg_rows\": $pg_rows, \"pg_received\": $pg_received, \"pg_wrk_completed\": $pg_sent, \"pg_drain_s\": $drain_s,"
  for t in off jsonl postgres; do
    echo "\"$t\": {\"rps\": [$(echo "${rps[$t]}" | sed 's/ $//; s/ /, /g')], \"cpu_us\": [$(echo "${cpu[$t]}" | sed 's/ $//; s/ /, /g')]}$([ $t = postgres ] || echo ,)"
  done
  echo "}"
} > "$out"
echo "wrote $out"
