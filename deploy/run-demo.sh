#!/usr/bin/env bash
# `make run`: the bundled mock upstream on 127.0.0.1:9100 and agate on 127.0.0.1:8080
# with deploy/agate.demo.json. Ctrl-C stops both.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
cd "$here"
"$build/mock_upstream" --port 9100 >/dev/null &
mock=$!
trap 'kill $mock 2>/dev/null || true' EXIT
cat <<'TXT'

agate demo: mock upstream on http://127.0.0.1:9100/v1, gateway on http://127.0.0.1:8080
Tables land in ./var/tables/chat-agent_payload/request_date=YYYY-MM-DD/*.jsonl

Try it (another terminal):
  curl -sN http://127.0.0.1:8080/v1/responses -H 'content-type: application/json' \
    -d '{"model":"chat-agent","input":"Say hi","stream":true}'

  curl -s http://127.0.0.1:8080/serving-endpoints/chat-agent/invocations -H 'content-type: application/json' \
    -d '{"input":[{"role":"user","content":"Weather? mock:text_then_tools"}]}'

  # with the official SDK (npm install openai):
  node --input-type=module -e '
    import OpenAI from "openai";
    const client = new OpenAI({ baseURL: "http://127.0.0.1:8080/v1", apiKey: "unused" });
    const r = await client.responses.create({ model: "chat-agent", input: "Say hi" });
    console.log(r.output_text);
    const s = await client.responses.stream({ model: "chat-agent", input: "Weather in Paris? mock:text_then_tools" }).finalResponse();
    console.log(s.output.map(i => i.type === "function_call" ? `${i.name}(${i.arguments})` : i.content?.[0]?.text));'

The mock picks a scenario from a `mock:<name>` marker in the input (bench/MOCK_SCENARIOS.md).
TXT
exec "$build/agate" --config deploy/agate.demo.json
