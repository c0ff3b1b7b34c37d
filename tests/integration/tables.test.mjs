// Inference tables (INFERENCE_TABLES.md §1-§5) through the JSONL sink: one row per request,
// including failed and rejected ones; streams store the aggregated final Responses object.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, baseConfig, http, postJSON, sse, crid, readTable, rowFor, rowForRequestId, waitFor, sleep,
  checkEventSequence, normalizeResponse, outputText,
} from './lib.mjs';

let stack;
let base;
let dir;
before(async () => {
  stack = await startStack({ config: (mock, d) => baseConfig(mock, d, { extra: { limits: { max_body_bytes: 4096 } } }) });
  base = stack.agate.base;
  dir = stack.tablesDir;
});
after(async () => { await stack?.stop(); });

const T = { timeout: 20_000 };
const RESP = () => `${base}/v1/responses`;
const INV = () => `${base}/serving-endpoints/chat-agent/invocations`;
const COLUMNS = ['databricks_request_id', 'request_date', 'client_request_id', 'request_time', 'status_code', 'sampling_fraction',
  'execution_duration_ms', 'request', 'response', 'logging_error_codes', 'served_entity_id', 'requester'];
const EXT = ['endpoint_name', 'front_route', 'stream', 'finish_status', 'error_code', 'error_message', 'input_tokens', 'output_tokens', 'total_duration_ms'];

function checkCommon(row, { routed = true } = {}) {
  for (const k of [...COLUMNS, ...EXT]) assert.ok(Object.hasOwn(row, k), `row has column ${k}`);
  assert.equal(typeof row.databricks_request_id, 'string');
  assert.ok(row.databricks_request_id.length > 0);
  assert.match(row.request_time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/, 'request_time RFC 3339 UTC with microseconds');
  assert.equal(row.request_date, row.request_time.slice(0, 10), 'request_date is the UTC day of request_time');
  assert.ok(Math.abs(Date.parse(row.request_time) - Date.now()) < 120_000, 'request_time is now');
  assert.equal(row.sampling_fraction, 1);
  assert.ok(Array.isArray(row.logging_error_codes), 'logging_error_codes is an array, never null');
  assert.equal(row.requester, null, 'no auth configured → requester NULL');
  assert.equal(typeof row.request, 'string', 'request is stored as a JSON string');
  assert.ok(row.response === null || typeof row.response === 'string', 'response is a string, never a nested object');
  assert.ok(Number.isInteger(row.total_duration_ms) && row.total_duration_ms >= 0, 'total_duration_ms');
  assert.equal(typeof row.stream, 'boolean');
  assert.ok(['completed', 'incomplete', 'failed', 'rejected', 'cancelled'].includes(row.finish_status), `finish_status ${row.finish_status}`);
  const prefix = routed ? `${row.endpoint_name}_payload` : 'unrouted_payload';
  assert.ok(row.__file.startsWith(`${prefix}/request_date=${row.request_date}/`), `row file ${row.__file} is under ${prefix}/request_date=${row.request_date}/`);
}

describe('successful requests', () => {
  let plainBody;
  test('non-streaming: every column, byte-exact request and response', T, async () => {
    const id = crid('plain');
    const reqText = JSON.stringify({ model: 'chat-agent', input: 'hello mock:tools3', client_request_id: id });
    const res = await http('POST', RESP(), { body: reqText });
    assert.equal(res.status, 200, res.text);
    plainBody = res.json;
    const row = await rowFor(dir, id);
    checkCommon(row);
    assert.equal(row.databricks_request_id, res.headers.get('x-request-id'), 'databricks_request_id is the x-request-id header');
    assert.equal(row.client_request_id, id);
    assert.equal(row.status_code, 200);
    assert.equal(row.endpoint_name, 'chat-agent');
    assert.equal(row.front_route, 'responses');
    assert.equal(row.stream, false);
    assert.equal(row.finish_status, 'completed');
    assert.equal(row.error_code, null);
    assert.equal(row.error_message, null);
    assert.equal(row.request, reqText, 'request is the client body byte for byte');
    assert.equal(row.response, res.text, 'response is the exact JSON body sent');
    assert.deepEqual(row.logging_error_codes, []);
    assert.equal(row.input_tokens, 85);
    assert.equal(row.output_tokens, 31);
    assert.match(row.served_entity_id, /^[0-9a-f]{32}$/, 'served_entity_id is 32 hex');
    assert.ok(Number.isInteger(row.execution_duration_ms) && row.execution_duration_ms >= 0, 'execution_duration_ms');
    assert.ok(row.total_duration_ms >= row.execution_duration_ms, 'total ≥ execution');
  });

  test('streaming: aggregated final Responses object = terminal event output; same shape as non-streaming', T, async () => {
    const id = crid('stream');
    const s = await sse(RESP(), { model: 'chat-agent', input: 'hello mock:tools3', stream: true, client_request_id: id });
    const r = checkEventSequence(s.events);
    const row = await rowFor(dir, id);
    checkCommon(row);
    assert.equal(row.databricks_request_id, s.headers.get('x-request-id'));
    assert.equal(row.stream, true);
    assert.equal(row.status_code, 200);
    assert.equal(row.finish_status, 'completed');
    assert.deepEqual(row.logging_error_codes, []);
    const agg = JSON.parse(row.response);
    assert.equal(agg.object, 'response');
    assert.equal(agg.id, r.terminal.response.id, 'aggregate id is the response id');
    assert.equal(agg.status, 'completed');
    assert.deepEqual(agg.output, r.items, 'aggregate output = items of the output_item.done events');
    assert.deepEqual(agg.usage, r.terminal.response.usage);
    assert.ok(plainBody, 'non-streaming subtest ran first');
    assert.deepEqual(normalizeResponse({ output: agg.output }).output, normalizeResponse(plainBody).output, 'same output shape as the non-streaming response');
    assert.equal(row.input_tokens, 85);
    assert.equal(row.output_tokens, 31);
  });

  test('incomplete (length) → finish_status incomplete, status 200', T, async () => {
    const id = crid('len');
    const s = await sse(RESP(), { model: 'chat-agent', input: 'hello mock:length', stream: true, client_request_id: id });
    assert.equal(s.status, 200);
    const row = await rowFor(dir, id);
    checkCommon(row);
    assert.equal(row.finish_status, 'incomplete');
    assert.equal(row.status_code, 200);
    const agg = JSON.parse(row.response);
    assert.equal(agg.status, 'incomplete');
    assert.equal(outputText(agg), 'Truncat');
  });

  test('Databricks route row: front_route invocations', T, async () => {
    const id = crid('dbx');
    const s = await sse(INV(), { input: [{ role: 'user', content: 'hello mock:text' }], stream: true, client_request_id: id });
    assert.equal(s.status, 200);
    const row = await rowFor(dir, id);
    checkCommon(row);
    assert.equal(row.front_route, 'invocations');
    assert.equal(row.endpoint_name, 'chat-agent');
    assert.equal(row.finish_status, 'completed');
    assert.equal(row.databricks_request_id, s.headers.get('x-request-id'));
    const agg = JSON.parse(row.response);
    assert.equal(outputText(agg), 'Hi there!');
  });

  test('client_request_id from the x-client-request-id header when the body has none', T, async () => {
    const id = crid('hdr');
    const res = await postJSON(RESP(), { model: 'chat-agent', input: 'hi' }, { headers: { 'x-client-request-id': id } });
    assert.equal(res.status, 200);
    const row = await rowFor(dir, id);
    assert.equal(row.databricks_request_id, res.headers.get('x-request-id'));
  });
});

describe('failed requests', () => {
  test('mid-stream failure: status 200, finish_status failed, error_code, partial aggregate', T, async () => {
    const id = crid('midfail');
    const s = await sse(RESP(), { model: 'chat-agent', input: 'hello mock:error_openai', stream: true, client_request_id: id });
    assert.equal(s.status, 200);
    const row = await rowFor(dir, id);
    checkCommon(row);
    assert.equal(row.status_code, 200, 'headers went out, so 200 stays');
    assert.equal(row.finish_status, 'failed');
    assert.equal(row.error_code, 'INTERNAL_ERROR');
    assert.equal(row.error_message, 'Tool XYZ failed to execute.');
    assert.ok(row.logging_error_codes.includes('RESPONSE_PARTIAL'), 'RESPONSE_PARTIAL');
    const agg = JSON.parse(row.response);
    assert.equal(agg.status, 'failed');
    assert.equal(agg.output.length, 1);
    assert.equal(agg.output[0].status, 'incomplete');
    assert.equal(agg.databricks_output?.error?.error_code, 'INTERNAL_ERROR');
  });

  test('upstream 500, non-streaming: status 502, failed, response = error JSON sent', T, async () => {
    const id = crid('up500');
    const res = await postJSON(RESP(), { model: 'chat-agent', input: 'hello mock:http500', client_request_id: id });
    assert.equal(res.status, 502);
    const row = await rowFor(dir, id);
    checkCommon(row);
    assert.equal(row.status_code, 502);
    assert.equal(row.finish_status, 'failed');
    assert.equal(row.error_code, 'INTERNAL_ERROR');
    assert.equal(row.error_message, 'upstream exploded');
    assert.equal(row.response, res.text, 'the error JSON that was sent');
    assert.ok(row.execution_duration_ms !== null, 'an upstream attempt was made');
  });

  test('upstream 429: status 429, REQUEST_LIMIT_EXCEEDED', T, async () => {
    const id = crid('up429');
    const res = await postJSON(RESP(), { model: 'chat-agent', input: 'hello mock:http429', stream: true, client_request_id: id });
    assert.equal(res.status, 429);
    const row = await rowFor(dir, id);
    assert.equal(row.status_code, 429);
    assert.equal(row.finish_status, 'failed');
    assert.equal(row.error_code, 'REQUEST_LIMIT_EXCEEDED');
    assert.equal(row.stream, true);
  });
});

describe('rejected requests', () => {
  test('invalid JSON: a row in unrouted_payload with the raw body, status 400, rejected', T, async () => {
    const raw = '{"model":"chat-agent","input": nope';
    const res = await http('POST', RESP(), { body: raw });
    assert.equal(res.status, 400);
    const row = await rowForRequestId(dir, res.headers.get('x-request-id'));
    checkCommon(row, { routed: false });
    assert.equal(row.status_code, 400);
    assert.equal(row.finish_status, 'rejected');
    assert.equal(row.error_code, 'BAD_REQUEST');
    assert.equal(row.request, raw, 'raw body as received');
    assert.equal(row.response, res.text);
    assert.equal(row.execution_duration_ms, null, 'no upstream attempt');
    assert.equal(row.endpoint_name, null);
  });

  test('unknown model: status 404 row in unrouted_payload', T, async () => {
    const id = crid('nomodel');
    const res = await postJSON(RESP(), { model: 'ghost', input: 'hi', client_request_id: id });
    assert.equal(res.status, 404);
    const row = await rowFor(dir, id);
    checkCommon(row, { routed: false });
    assert.equal(row.status_code, 404);
    assert.equal(row.finish_status, 'rejected');
    assert.equal(row.error_code, 'RESOURCE_DOES_NOT_EXIST');
    assert.equal(row.served_entity_id, null, 'no entity chosen');
    assert.equal(row.execution_duration_ms, null);
  });

  test('validation error (previous_response_id): status 400, rejected, no upstream time', T, async () => {
    const id = crid('prev');
    const res = await postJSON(RESP(), { model: 'chat-agent', input: 'hi', previous_response_id: 'resp_x', client_request_id: id });
    assert.equal(res.status, 400);
    const row = await rowFor(dir, id);
    assert.equal(row.status_code, 400);
    assert.equal(row.finish_status, 'rejected');
    assert.equal(row.error_code, 'INVALID_PARAMETER_VALUE');
    assert.equal(row.execution_duration_ms, null);
    assert.equal(row.response, res.text);
  });

  test('oversized body: status 413 row', T, async () => {
    const res = await postJSON(RESP(), { model: 'chat-agent', input: 'z'.repeat(8000) });
    assert.equal(res.status, 413);
    const row = await rowForRequestId(dir, res.headers.get('x-request-id'));
    assert.equal(row.status_code, 413);
    assert.equal(row.finish_status, 'rejected');
  });
});

describe('one row per request', () => {
  test('each request appears exactly once, including failed and rejected ones', T, async () => {
    const bodies = [
      { input: 'hello mock:text' }, { input: 'hello mock:tools2', stream: true }, { input: 'hello mock:http400' },
      { input: 'hello mock:error_vllm', stream: true }, { input: [] }, { input: 'hi', model: 'ghost' },
    ];
    const ids = bodies.map((_, i) => crid(`once${i}`));
    await Promise.all(bodies.map((body, i) => (body.stream
      ? sse(RESP(), { model: 'chat-agent', ...body, client_request_id: ids[i] })
      : postJSON(RESP(), { model: 'chat-agent', ...body, client_request_id: ids[i] }))));
    // Wait (bounded) for all rows; a missing one is reported by name below rather than as a timeout.
    await waitFor(() => ids.every((id) => readTable(dir).some((r) => r.client_request_id === id)), 8000, 'all rows').catch(() => {});
    await sleep(400); // several flush periods: a duplicate would have landed by now
    const rows = readTable(dir);
    const missing = bodies.filter((_, i) => !rows.some((r) => r.client_request_id === ids[i])).map((b) => JSON.stringify(b));
    assert.deepEqual(missing, [], 'a row (with its client_request_id) for every request');
    for (const id of ids) assert.equal(rows.filter((r) => r.client_request_id === id).length, 1, `exactly one row for ${id}`);
    assert.equal(new Set(rows.map((r) => r.databricks_request_id)).size, rows.length, 'databricks_request_id unique across rows');
  });

  test('health and readiness probes are never logged', T, async () => {
    await sleep(300);
    const before1 = readTable(dir).length;
    for (let i = 0; i < 3; i++) {
      assert.equal((await http('GET', `${base}/healthz`)).status, 200);
      assert.equal((await http('GET', `${base}/readyz`)).status, 200);
    }
    const id = crid('marker');
    assert.equal((await postJSON(RESP(), { model: 'chat-agent', input: 'hi', client_request_id: id })).status, 200);
    await rowFor(dir, id);
    await sleep(400);
    assert.equal(readTable(dir).length, before1 + 1, 'only the marker request added a row');
  });
});
