-- wrk script: POST a streaming OpenAI Responses request to agate (bench/run.sh).
--   wrk ... -s bench/wrk_responses.lua http://127.0.0.1:PORT -- [SCENARIO] [MODEL]
-- SCENARIO is a bench/mock_upstream scenario picked by the `mock:NAME` marker in the input
-- (default bench20); MODEL is agate's endpoint name (default bench).
local scenario, model = "bench20", "bench"

function init(args)
  scenario = args[1] or scenario
  model = args[2] or model
  wrk.method = "POST"
  wrk.path = "/v1/responses"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "text/event-stream"
  wrk.body = '{"model":"' .. model .. '","input":"Benchmark request mock:' .. scenario .. '","stream":true}'
end

-- No response() hook: it would make wrk hand every body to Lua. Non-2xx/3xx statuses are
-- counted by wrk itself (errors_status).
-- One machine-readable line for bench/run.sh (latencies in microseconds, whole response).
function done(summary, latency, requests)
  io.write(string.format(
    "WRK requests=%d duration_us=%d bytes=%d errors_connect=%d errors_read=%d errors_write=%d " ..
    "errors_status=%d errors_timeout=%d lat_p50_us=%.1f lat_p99_us=%.1f lat_max_us=%.1f\n",
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
