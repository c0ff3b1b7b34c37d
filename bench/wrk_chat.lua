-- wrk script: POST the streaming ChatCompletions request agate sends upstream, byte for byte,
-- to nginx (plain proxy) or straight to bench/mock_upstream (bench/run.sh).
--   wrk ... -s bench/wrk_chat.lua http://127.0.0.1:PORT -- [SCENARIO] [PATH] [MODEL]
-- SCENARIO: bench/mock_upstream scenario via the `mock:NAME` marker (default bench20);
-- PATH: request target (default /v1/chat/completions); MODEL: the body's model (default
-- mock-model; agate's /v1/chat/completions passthrough takes its endpoint name and sends
-- mock-model upstream, so the upstream sees the same bytes as through nginx).
local scenario, path, model = "bench20", "/v1/chat/completions", "mock-model"

function init(args)
  scenario = args[1] or scenario
  path = args[2] or path
  model = args[3] or model
  wrk.method = "POST"
  wrk.path = path
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "text/event-stream"
  -- The exact body agate's chat_completions adapter produces for wrk_responses.lua's request.
  wrk.body = '{"model":"' .. model .. '","stream":true,"stream_options":{"include_usage":true},' ..
             '"messages":[{"role":"user","content":"Benchmark request mock:' .. scenario .. '"}]}'
end

-- No response() hook: it would make wrk hand every body to Lua. Non-2xx/3xx statuses are
-- counted by wrk itself (errors_status).
function done(summary, latency, requests)
  io.write(string.format(
    "WRK requests=%d duration_us=%d bytes=%d errors_connect=%d errors_read=%d errors_write=%d " ..
    "errors_status=%d errors_timeout=%d lat_p50_us=%.1f lat_p99_us=%.1f lat_max_us=%.1f\n",
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
