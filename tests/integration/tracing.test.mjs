// OpenTelemetry tracing (gateway/trace.c, gateway/otlp.c). A collector in this test (a node HTTP
// server on loopback) receives agate's OTLP/HTTP exports and decodes them with the official
// OpenTelemetry protobuf definitions (@opentelemetry/otlp-transformer's generated
// ExportTraceServiceRequest, then verify()), never by matching bytes or strings. The mock upstream
// records the traceparent/tracestate it received (GET /trace-headers), so the propagation of
// agate's attempt spans upstream is checked end to end.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import nodeHttp from 'node:http';
import { createRequire } from 'node:module';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startMock, startAgate, stopEach, makeTempDir, deadPort, http, sse, waitFor, crid, waitRow } from './lib.mjs';
import { rssBytes } from './rawhttp.mjs';

const require = createRequire(import.meta.url);
const otlp = require('@opentelemetry/otlp-transformer/build/src/generated/root.js').opentelemetry.proto;
const ExportRequest = otlp.collector.trace.v1.ExportTraceServiceRequest;
const ExportResponse = otlp.collector.trace.v1.ExportTraceServiceResponse;
const SPAN_KIND_SERVER = otlp.trace.v1.Span.SpanKind.SPAN_KIND_SERVER;
const SPAN_KIND_CLIENT = otlp.trace.v1.Span.SpanKind.SPAN_KIND_CLIENT;
const STATUS_ERROR = otlp.trace.v1.Status.StatusCode.STATUS_CODE_ERROR;

const T = { timeout: 90_000 };
const hex = (b) => Buffer.from(b ?? []).toString('hex');
const TOOLS = [
  { type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  { type: 'function', name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } },
];

function anyValue(v) {
  if (v.stringValue !== undefined && v.stringValue !== null && v.stringValue !== '') return v.stringValue;
  if (v.intValue !== undefined && v.intValue !== null) return Number(v.intValue);
  if (v.arrayValue) return v.arrayValue.values.map(anyValue);
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.doubleValue !== undefined) return v.doubleValue;
  return v.stringValue;
}
const attrMap = (kvs) => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, anyValue(kv.value)]));

/**
 * An OTLP/HTTP collector on loopback. delayMs holds every answer that long (a slow collector).
 * Every body is decoded as an ExportTraceServiceRequest; what fails to decode is kept in errors.
 */
async function startCollector({ delayMs = 0 } = {}) {
  const spans = [];
  const exports = [];
  const errors = [];
  const pending = new Set();
  const srv = nodeHttp.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        assert.equal(req.method, 'POST');
        assert.equal(req.url, '/v1/traces');
        assert.equal(req.headers['content-type'], 'application/x-protobuf');
        const msg = ExportRequest.decode(body);
        const err = ExportRequest.verify(msg);
        assert.equal(err, null, `ExportTraceServiceRequest.verify: ${err}`);
        exports.push({ headers: req.headers, msg });
        for (const rs of msg.resourceSpans) {
          const resource = attrMap(rs.resource?.attributes);
          for (const ss of rs.scopeSpans) {
            for (const sp of ss.spans) {
              spans.push({
                traceId: hex(sp.traceId), spanId: hex(sp.spanId), parentSpanId: hex(sp.parentSpanId),
                traceState: sp.traceState, name: sp.name, kind: sp.kind,
                start: BigInt(sp.startTimeUnixNano.toString()), end: BigInt(sp.endTimeUnixNano.toString()),
                attrs: attrMap(sp.attributes), status: sp.status ?? {}, resource, scope: ss.scope,
              });
            }
          }
        }
      } catch (e) {
        errors.push(e);
      }
      const answer = () => {
        pending.delete(timer);
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/x-protobuf' });
        res.end(Buffer.from(ExportResponse.encode({}).finish()));
      };
      const timer = setTimeout(answer, delayMs);
      pending.add(timer);
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = srv.address().port;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    exports,
    errors,
    trace: (traceId) => spans.filter((s) => s.traceId === traceId),
    async stop() {
      for (const t of pending) clearTimeout(t);
      srv.closeAllConnections();
      await new Promise((resolve) => srv.close(resolve));
    },
  };
}

function endpoint(name, mocks, extra = {}) {
  return { name, adapter: 'chat_completions', upstreams: mocks.map((m) => ({ url: m.url })), model: 'mock-model', ...extra };
}

async function startTraced(endpoints, tracing, { noQuarantine = false } = {}) {
  const tablesDir = makeTempDir('agate-trace-tables-');
  // Under AddressSanitizer the quarantine keeps freed blocks resident, so RSS would track
  // allocation churn, not what is held: off for the gateway whose RSS is measured (other builds
  // ignore the option).
  const saved = process.env.ASAN_OPTIONS;
  if (noQuarantine) process.env.ASAN_OPTIONS = (saved ? `${saved}:` : '') + 'quarantine_size_mb=0';
  try {
    const agate = await startAgate({
      listen: '127.0.0.1:0',
      endpoints,
      tables: { sink: 'jsonl', dir: tablesDir, flush_ms: 50 },
      tracing: { batch_timeout_ms: 50, ...tracing },
    });
    return { agate, tablesDir };
  } finally {
    if (saved === undefined) delete process.env.ASAN_OPTIONS;
    else process.env.ASAN_OPTIONS = saved;
  }
}

async function traceHeaders(mock) {
  const r = await http('GET', `${mock.base}/trace-headers`);
  assert.equal(r.status, 200);
  return r.json;
}

async function metrics(agate) {
  const r = await http('GET', `${agate.base}/metrics`);
  assert.equal(r.status, 200);
  const fams = new Map(parsePrometheusTextFormat(r.text).map((f) => [f.name, f]));
  const value = (name, labels = {}) => {
    const f = fams.get(name);
    assert.ok(f, `family ${name} in /metrics`);
    const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => (x.labels ?? {})[k] === v));
    return m ? Number(m.value) : 0;
  };
  return value;
}

const randomHex = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256))).toString('hex');
const newTraceparent = (flags = '01') => {
  const traceId = randomHex(16);
  const parent = randomHex(8);
  return { traceId, parent, header: `00-${traceId}-${parent}-${flags}` };
};

/** The server span and n client spans of one trace, once the collector has them all. */
async function waitTrace(col, traceId, nClients, what) {
  return waitFor(() => {
    const all = col.trace(traceId);
    const server = all.filter((s) => s.kind === SPAN_KIND_SERVER);
    const clients = all.filter((s) => s.kind === SPAN_KIND_CLIENT).sort((a, b) => a.attrs['agate.attempt'] - b.attrs['agate.attempt']);
    return server.length === 1 && clients.length === nClients ? { server: server[0], clients } : null;
  }, 10_000, what, { seen: () => JSON.stringify({ spans: col.trace(traceId).map((s) => [s.name, s.kind]), errors: col.errors.map(String) }) });
}

function checkTiming(server, clients) {
  assert.ok(server.start <= server.end, 'server span: start <= end');
  for (const c of clients) {
    assert.ok(server.start <= c.start && c.start <= c.end && c.end <= server.end,
      `attempt ${c.attrs['agate.attempt']} lies within the server span`);
  }
}

describe('spans', () => {
  test('streamed request with tool calls: client trace continued, spans linked, GenAI attributes, traceparent upstream', T, async () => {
    const mock = await startMock();
    const col = await startCollector();
    const { agate } = await startTraced([endpoint('chat-agent', [mock])], {
      endpoint: col.url, service_name: 'agate-it', headers: { 'x-mlflow-experiment-id': '42' },
    });
    try {
      const tp = newTraceparent();
      const s = await sse(`${agate.base}/v1/responses`, {
        model: 'chat-agent', input: 'weather? mock:text_then_tools', tools: TOOLS, stream: true,
      }, { headers: { traceparent: tp.header, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' } });
      assert.equal(s.status, 200);
      const done = s.events.find((e) => e.type === 'response.completed');
      assert.ok(done, 'the stream completed');
      const usage = done.response.usage;
      const { server, clients } = await waitTrace(col, tp.traceId, 1, 'server + 1 attempt span of the streamed call');
      const [client] = clients;

      assert.equal(server.parentSpanId, tp.parent, 'the server span is a child of the client span');
      assert.equal(client.parentSpanId, server.spanId, 'the attempt span is a child of the server span');
      assert.equal(server.traceState, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'tracestate is continued');
      assert.equal(server.name, 'POST /v1/responses');
      assert.equal(client.name, 'chat chat-agent');
      checkTiming(server, clients);
      assert.deepEqual(server.resource['service.name'], 'agate-it');
      assert.equal(server.scope.name, 'agate');
      assert.equal(col.errors.length, 0, `every export decodes: ${col.errors.map(String)}`);
      assert.equal(col.exports[0].headers['x-mlflow-experiment-id'], '42', 'tracing.headers are sent');

      const requestId = s.headers.get('x-request-id');
      for (const sp of [server, client]) {
        assert.equal(sp.attrs['gen_ai.operation.name'], 'chat');
        assert.equal(sp.attrs['gen_ai.request.model'], 'chat-agent');
        assert.equal(sp.attrs['gen_ai.response.model'], 'mock-model');
        assert.equal(sp.attrs['gen_ai.usage.input_tokens'], usage.input_tokens);
        assert.equal(sp.attrs['gen_ai.usage.output_tokens'], usage.output_tokens);
        assert.deepEqual(sp.attrs['gen_ai.response.finish_reasons'], ['tool_calls']);
        assert.equal(sp.attrs['agate.request.id'], requestId);
        assert.equal(sp.attrs['error.type'], undefined);
        assert.notEqual(sp.status.code, STATUS_ERROR);
      }
      assert.equal(server.attrs['http.response.status_code'], 200);
      assert.equal(server.attrs['http.route'], '/v1/responses');
      assert.equal(client.attrs['server.address'], '127.0.0.1');
      assert.equal(client.attrs['server.port'], mock.port);
      assert.equal(client.attrs['agate.attempt'], 1);
      assert.equal(client.attrs['http.response.status_code'], 200);

      const seen = await traceHeaders(mock);
      assert.equal(seen.at(-1).traceparent, `00-${tp.traceId}-${client.spanId}-01`, 'upstream parent = the attempt span');
      assert.equal(seen.at(-1).tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    } finally { await stopEach(agate, mock, col); }
  });

  test('retried request: one span per attempt, the failed one with its status and error.type, each upstream sees its own parent', T, async () => {
    const bad = await startMock(['--default-scenario', 'http503']);
    const good = await startMock();
    const col = await startCollector();
    const { agate, tablesDir } = await startTraced([
      endpoint('lb', [bad, good], { strategy: 'round_robin', retries: 1 }),
    ], { endpoint: col.url });
    try {
      const tp = newTraceparent();
      const id = crid('retry');
      const r = await http('POST', `${agate.base}/v1/responses`, {
        body: { model: 'lb', input: 'hi', client_request_id: id }, headers: { traceparent: tp.header },
      });
      assert.equal(r.status, 200);
      const row = await waitRow(tablesDir, (x) => x.client_request_id === id);
      assert.equal(row.attempt_count, 2, 'round robin tried the 503 replica first');
      const { server, clients } = await waitTrace(col, tp.traceId, 2, 'server + 2 attempt spans');
      checkTiming(server, clients);
      const [first, second] = clients;
      assert.equal(first.attrs['agate.attempt'], 1);
      assert.equal(first.attrs['server.port'], bad.port);
      assert.equal(first.attrs['http.response.status_code'], 503);
      assert.equal(first.status.code, STATUS_ERROR);
      assert.ok(first.attrs['error.type'], 'the failed attempt has an error.type');
      assert.equal(first.attrs['agate.attempt.outcome'], 'retry');
      assert.equal(second.attrs['agate.attempt'], 2);
      assert.equal(second.attrs['server.port'], good.port);
      assert.equal(second.attrs['http.response.status_code'], 200);
      assert.notEqual(second.status.code, STATUS_ERROR);
      assert.deepEqual(second.attrs['gen_ai.response.finish_reasons'], ['stop']);
      assert.ok(first.end <= second.start, 'the retry starts after the first attempt ended');
      for (const c of clients) assert.equal(c.parentSpanId, server.spanId);
      assert.equal(server.attrs['agate.attempts'], 2);
      assert.equal(server.parentSpanId, tp.parent);
      assert.equal((await traceHeaders(bad)).at(-1).traceparent, `00-${tp.traceId}-${first.spanId}-01`);
      assert.equal((await traceHeaders(good)).at(-1).traceparent, `00-${tp.traceId}-${second.spanId}-01`);
    } finally { await stopEach(agate, bad, good, col); }
  });

  test('failed request: server and attempt spans carry the error; a new trace when the client sends none', T, async () => {
    const mock = await startMock(['--default-scenario', 'http500']);
    const col = await startCollector();
    const { agate } = await startTraced([endpoint('chat-agent', [mock])], { endpoint: col.url });
    try {
      const r = await http('POST', `${agate.base}/v1/responses`, { body: { model: 'chat-agent', input: 'hi' } });
      assert.ok(r.status >= 500, `upstream 500 → a 5xx to the client (got ${r.status})`);
      const [seen] = await traceHeaders(mock);
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(seen.traceparent ?? '');
      assert.ok(m, `agate started a sampled trace and sent it upstream: ${seen.traceparent}`);
      assert.equal(seen.tracestate, null, 'no tracestate invented');
      const { server, clients } = await waitTrace(col, m[1], 1, 'spans of the failed call');
      assert.equal(server.parentSpanId, '', 'a root span');
      assert.equal(clients[0].spanId, m[2]);
      assert.equal(server.status.code, STATUS_ERROR);
      assert.equal(server.attrs['error.type'], r.json.error_code ?? server.attrs['error.type']);
      assert.ok(server.attrs['error.type'], 'server span has error.type');
      assert.equal(server.attrs['http.response.status_code'], r.status);
      assert.equal(server.attrs['agate.finish_status'], 'failed');
      assert.equal(clients[0].status.code, STATUS_ERROR);
      assert.equal(clients[0].attrs['http.response.status_code'], 500);
      assert.ok(clients[0].attrs['error.type']);
      assert.equal(clients[0].attrs['gen_ai.response.finish_reasons'], undefined);
    } finally { await stopEach(agate, mock, col); }
  });

  test('invalid traceparent starts a new trace; sampled=0 is respected and still passed upstream; ratio 0 keeps only sampled parents', T, async () => {
    const mock = await startMock();
    const col = await startCollector();
    const { agate } = await startTraced([endpoint('chat-agent', [mock])], { endpoint: col.url, sample_ratio: 0 });
    try {
      const ask = (headers) => http('POST', `${agate.base}/v1/responses`, { body: { model: 'chat-agent', input: 'hi' }, headers });
      // Uppercase hex is invalid (W3C): agate starts its own trace, which ratio 0 does not record.
      const bad = newTraceparent();
      assert.equal((await ask({ traceparent: bad.header.toUpperCase() })).status, 200);
      let seen = (await traceHeaders(mock)).at(-1);
      assert.match(seen.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, 'a new unsampled trace');
      assert.ok(!seen.traceparent.includes(bad.traceId), 'the invalid trace id is not continued');
      // sampled=0 from the client: continued upstream, not recorded.
      const off = newTraceparent('00');
      assert.equal((await ask({ traceparent: off.header, tracestate: 'k=v' })).status, 200);
      seen = (await traceHeaders(mock)).at(-1);
      assert.match(seen.traceparent, new RegExp(`^00-${off.traceId}-[0-9a-f]{16}-00$`));
      assert.equal(seen.tracestate, 'k=v');
      // A bad tracestate is dropped, the traceparent kept.
      const on = newTraceparent('01');
      assert.equal((await ask({ traceparent: on.header, tracestate: 'Bad Key=v' })).status, 200);
      seen = (await traceHeaders(mock)).at(-1);
      assert.equal(seen.tracestate, null, 'invalid tracestate not passed on');
      // sampled=1 overrides ratio 0 (parent-based): its spans arrive; the earlier ones never do.
      const { server } = await waitTrace(col, on.traceId, 1, 'spans of the sampled parent');
      assert.ok(!server.traceState, 'no tracestate on the span');
      assert.deepEqual(col.spans.filter((s) => s.traceId !== on.traceId), [], 'unsampled calls exported nothing');
    } finally { await stopEach(agate, mock, col); }
  });

  test('the ChatCompletions and Databricks routes are traced too; admin routes are not', T, async () => {
    const mock = await startMock();
    const col = await startCollector();
    const { agate } = await startTraced([endpoint('chat-agent', [mock])], { endpoint: col.url });
    try {
      const chat = newTraceparent();
      const c = await http('POST', `${agate.base}/v1/chat/completions`, {
        body: { model: 'chat-agent', messages: [{ role: 'user', content: 'hi mock:length' }] }, headers: { traceparent: chat.header },
      });
      assert.equal(c.status, 200);
      const dbx = newTraceparent();
      const d = await http('POST', `${agate.base}/serving-endpoints/chat-agent/invocations`, {
        body: { input: [{ role: 'user', content: 'hi' }] }, headers: { traceparent: dbx.header },
      });
      assert.equal(d.status, 200);
      const probe = newTraceparent();
      assert.equal((await http('GET', `${agate.base}/healthz`, { headers: { traceparent: probe.header } })).status, 200);
      const cs = await waitTrace(col, chat.traceId, 1, 'spans of the chat call');
      assert.equal(cs.server.name, 'POST /v1/chat/completions');
      assert.equal(cs.server.attrs['http.route'], '/v1/chat/completions');
      assert.deepEqual(cs.server.attrs['gen_ai.response.finish_reasons'], [c.json.choices[0].finish_reason]);
      assert.equal(c.json.choices[0].finish_reason, 'length');
      assert.equal(cs.server.attrs['gen_ai.usage.output_tokens'], c.json.usage.completion_tokens);
      const ds = await waitTrace(col, dbx.traceId, 1, 'spans of the Databricks call');
      assert.equal(ds.server.name, 'POST /serving-endpoints/{name}/invocations');
      assert.equal(ds.server.attrs['gen_ai.request.model'], 'chat-agent', 'the endpoint when the body names no model');
      assert.deepEqual(ds.server.attrs['gen_ai.response.finish_reasons'], ['stop']);
      assert.equal(ds.server.attrs['agate.request.id'], d.headers.get('x-request-id'));
      assert.deepEqual(col.trace(probe.traceId), [], '/healthz is not traced');
    } finally { await stopEach(agate, mock, col); }
  });

  test('slow_first_token: the attempt span covers the wait for the first token', T, async () => {
    const mock = await startMock();
    const col = await startCollector();
    const { agate } = await startTraced([endpoint('chat-agent', [mock])], { endpoint: col.url });
    try {
      const tp = newTraceparent();
      const s = await sse(`${agate.base}/v1/responses`, { model: 'chat-agent', input: 'mock:slow_first_token', stream: true },
        { headers: { traceparent: tp.header } });
      assert.equal(s.status, 200);
      const { clients } = await waitTrace(col, tp.traceId, 1, 'spans of the slow call');
      const ms = Number(clients[0].end - clients[0].start) / 1e6;
      assert.ok(ms >= 790, `attempt span lasts the 800 ms before the first token (${ms} ms)`);
    } finally { await stopEach(agate, mock, col); }
  });
});

describe('collector trouble never reaches requests', () => {
  test('collector down: requests succeed, failed exports and their spans are counted', T, async () => {
    const mock = await startMock();
    const port = await deadPort();
    const { agate } = await startTraced([endpoint('chat-agent', [mock])], {
      endpoint: `http://127.0.0.1:${port}/v1/traces`, export_timeout_ms: 500,
    });
    try {
      for (let i = 0; i < 20; i++) {
        const r = await http('POST', `${agate.base}/v1/responses`, { body: { model: 'chat-agent', input: 'hi' } });
        assert.equal(r.status, 200, `request ${i} unaffected by the dead collector`);
      }
      let value;
      await waitFor(async () => {
        value = await metrics(agate);
        return value('agate_trace_export_failures_total') >= 1 && value('agate_trace_spans_dropped_total', { reason: 'export_failed' }) >= 2;
      }, 10_000, 'failed exports counted', { seen: () => JSON.stringify({ failures: value?.('agate_trace_export_failures_total') }) });
      assert.equal(value('agate_trace_spans_exported_total'), 0);
    } finally { await stopEach(agate, mock); }
  });

  test('collector slow: requests succeed, the queue stays bounded, overflow is dropped and counted, RSS bounded', T, async () => {
    const mock = await startMock();
    const col = await startCollector({ delayMs: 30_000 });
    const { agate } = await startTraced([endpoint('chat-agent', [mock])], {
      endpoint: col.url, export_timeout_ms: 3000, max_queue: 16, batch_size: 8,
    }, { noQuarantine: true });
    try {
      const ask = async (i) => {
        const r = await http('POST', `${agate.base}/v1/responses`, { body: { model: 'chat-agent', input: 'hi' } });
        assert.equal(r.status, 200, `request ${i} unaffected by the slow collector`);
      };
      // Until the queue overflows (bounded: 400 requests): the one export in flight is held.
      let value;
      let sent = 0;
      for (; sent < 400; sent++) {
        await ask(sent);
        if (sent % 10 === 9) {
          value = await metrics(agate);
          if (value('agate_trace_spans_dropped_total', { reason: 'queue_full' }) > 0) break;
        }
      }
      assert.ok(value('agate_trace_spans_dropped_total', { reason: 'queue_full' }) > 0, `queue overflow counted after ${sent} requests`);
      assert.ok(value('agate_trace_queue_spans') <= 32, `queue bounded: ${value('agate_trace_queue_spans')} spans held`);
      // Memory: 300 more calls while the collector still stalls cost no more than noise.
      const before = rssBytes(agate.proc.pid);
      for (let i = 0; i < 300; i++) await ask(i);
      const grown = rssBytes(agate.proc.pid) - before;
      assert.ok(grown < 16 * 2 ** 20, `RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB over 300 calls with a stalled collector`);
      value = await metrics(agate);
      assert.ok(value('agate_trace_queue_spans') <= 32, 'queue still bounded');
      // The held export times out: its spans are counted as lost too.
      await waitFor(async () => {
        value = await metrics(agate);
        return value('agate_trace_spans_dropped_total', { reason: 'export_failed' }) > 0;
      }, 15_000, 'the timed-out export counted');
    } finally { await stopEach(agate, mock, col); }
  });
});
