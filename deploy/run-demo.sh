#!/usr/bin/env bash
# `make run`: the bundled mock upstream on 127.0.0.1:9100 and agate on 127.0.0.1:8080
# with deploy/agate.demo.json. Ctrl-C or SIGTERM stops both (agate drains first).
# agate runs as a child, not exec'd, so this shell's trap outlives it and always stops the mock;
# a mock that cannot bind 9100 (a stale one from an earlier run, say) is an error, never reused.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
cd "$here"
work=$(mktemp -d /tmp/agate-demo.XXXXXX)
mock=""
agate=""
stop() {
  trap - EXIT INT TERM
  [ -n "$agate" ] && kill -TERM "$agate" 2>/dev/null && wait "$agate" 2>/dev/null
  [ -n "$mock" ] && kill -TERM "$mock" 2>/dev/null && wait "$mock" 2>/dev/null
  rm -rf "$work"
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

"$build/mock_upstream" --port 9100 >"$work/mock.out" 2>"$work/mock.err" &
mock=$!
for _ in $(seq 1 100); do
  grep -q '^listening 9100' "$work/mock.out" 2>/dev/null && break
  if ! kill -0 "$mock" 2>/dev/null; then
    wait "$mock" 2>/dev/null || true
    mock=""
    echo "run-demo: the mock upstream could not start on 127.0.0.1:9100:" >&2
    cat "$work/mock.err" >&2
    echo "run-demo: is an earlier mock still running? (ss -ltnp 'sport = :9100')" >&2
    exit 1
  fi
  sleep 0.05
done
grep -q '^listening 9100' "$work/mock.out" || { echo "run-demo: the mock upstream did not report listening on 9100" >&2; exit 1; }
cat <<'TXT'

agate demo: mock upstream on http://127.0.0.1:9100/v1, gateway on http://127.0.0.1:8080
Tables land in ./var/tables/chat-agent_payload/request_date=YYYY-MM-DD/*.jsonl

Try it (another terminal):
  curl -sN http://127.0.0.1:8080/v1/responses -H 'content-type: application/json' \
    -d '{"model":"chat-agent","input":"Say hi","stream":true}'

  curl -s http://127.0.0.1:8080/serving-endpoints/chat-agent/invocations -H 'content-type: application/json' \
    -d '{"input":[{"role":"user","content":"Weather? mock:text_then_tools"}]}'

  # with the official SDK: `npm install openai` in the directory you run this from, and
  # ES module mode (--input-type=module here, or a .mjs file) for the imports and top-level await:
  node --input-type=module -e '
    import OpenAI from "openai";
    const client = new OpenAI({ baseURL: "http://127.0.0.1:8080/v1", apiKey: "unused" });
    const r = await client.responses.create({ model: "chat-agent", input: "Say hi" });
    console.log(r.output_text);
    const s = await client.responses.stream({ model: "chat-agent", input: "Weather in Paris? mock:text_then_tools" }).finalResponse();
    console.log(s.output.map(i => i.type === "function_call" ? `${i.name}(${i.arguments})` : i.content?.[0]?.text));'

The mock picks a scenario from a `mock:<name>` marker in the input (bench/MOCK_SCENARIOS.md).
TXT
"$build/agate" --config deploy/agate.demo.json &
agate=$!
# `wait` returns early when a trapped signal arrives; the trap then stops both.
set +e
wait "$agate"
rc=$?
agate=""
exit "$rc"
