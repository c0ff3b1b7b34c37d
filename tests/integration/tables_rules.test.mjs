// Row-level rules of the payload table on real rows (INFERENCE_TABLES.md §3, §4, issue 3):
// sampling (errors always kept at fraction 1), payload size limits with logging_error_codes,
// redaction of configured JSON paths, and the JSONL usage table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startStack, http, sse, crid, readTable, waitFor } from './lib.mjs';

const T = { timeout: 60_000 };
const payload = (dir) => readTable(path.join(dir, 'chat-agent_payload'));

test('sampling 0.25: kept rows carry 0.25 and estimate the total; every error row is kept at 1.0', T, async () => {
  const s = await startStack({ endpointExtra: { sampling_rate: 0.25 } });
  try {
    const url = `${s.agate.base}/v1/responses`;
    const N = 400;
    for (let i = 0; i < N; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => http('POST', url, { body: { model: 'chat-agent', input: 'hi', client_request_id: crid('ok') } })));
    }
    const errors = await Promise.all(Array.from({ length: 20 }, () =>
      http('POST', url, { body: { model: 'chat-agent', input: 'x mock:http500', client_request_id: crid('err') } })));
    for (const r of errors) assert.equal(r.status, 502);
    await waitFor(() => payload(s.tablesDir).filter((r) => r.status_code === 502).length === 20, 5000, 'error rows');
    await new Promise((r) => setTimeout(r, 200));
    const rows = payload(s.tablesDir);
    const ok = rows.filter((r) => r.status_code === 200);
    const bad = rows.filter((r) => r.status_code === 502);
    // Binomial(400, 0.25): mean 100, sd 8.7; 100 ± 45 is a 5-sigma band.
    assert.ok(Math.abs(ok.length - 100) <= 45, `kept ${ok.length} of ${N}`);
    for (const r of ok) assert.equal(r.sampling_fraction, 0.25);
    const estimate = ok.reduce((a, r) => a + 1 / r.sampling_fraction, 0);
    assert.ok(Math.abs(estimate - N) <= 180, `SUM(1/fraction) ${estimate} estimates ${N}`);
    assert.equal(bad.length, 20, 'every failed request has a row');
    for (const r of bad) assert.equal(r.sampling_fraction, 1);
  } finally { await s.stop(); }
});

test('size limits: an oversized request or response is null with its code; sizes and the row are kept', T, async () => {
  const s = await startStack({
    config: (mock, dir) => ({
      listen: '127.0.0.1:0',
      endpoints: [{ name: 'chat-agent', upstreams: [{ url: mock.url }], model: 'mock-model' }],
      tables: { sink: 'jsonl', dir, flush_ms: 50, max_logged_request_bytes: 300, max_logged_response_bytes: 1500 },
    }) });
  try {
    const url = `${s.agate.base}/v1/responses`;
    const small = crid('small');
    const bigReq = crid('bigreq');
    const bigResp = crid('bigresp');
    assert.equal((await http('POST', url, { body: { model: 'chat-agent', input: 'hi', client_request_id: small } })).status, 200);
    const longInput = 'x'.repeat(400);
    assert.equal((await http('POST', url, { body: { model: 'chat-agent', input: longInput, client_request_id: bigReq } })).status, 200);
    const r = await http('POST', url, { body: { model: 'chat-agent', input: 'mock:long', client_request_id: bigResp } });
    assert.equal(r.status, 200);
    await waitFor(() => payload(s.tablesDir).length >= 3, 5000, 'rows');
    const by = Object.fromEntries(payload(s.tablesDir).map((x) => [x.client_request_id, x]));
    assert.deepEqual(by[small].logging_error_codes, []);
    assert.ok(by[small].request && by[small].response);
    assert.equal(by[bigReq].request, null);
    assert.ok(by[bigReq].request_bytes > 300);
    assert.deepEqual(by[bigReq].logging_error_codes, ['MAX_REQUEST_SIZE_EXCEEDED']);
    assert.ok(by[bigReq].response, 'the response column is unaffected');
    assert.equal(by[bigResp].response, null);
    assert.ok(by[bigResp].response_bytes > 1500, `response_bytes keeps the real size (${by[bigResp].response_bytes})`);
    assert.deepEqual(by[bigResp].logging_error_codes, ['MAX_RESPONSE_SIZE_EXCEEDED']);
    assert.equal(by[bigResp].status_code, 200);
    assert.equal(r.json.output[0].content[0].text.length, 5000 * 100, 'the client got the full response');
  } finally { await s.stop(); }
});

test('redaction: configured paths are replaced in request and response rows, never in what the client gets', T, async () => {
  const s = await startStack({
    config: (mock, dir) => ({
      listen: '127.0.0.1:0',
      endpoints: [{ name: 'chat-agent', upstreams: [{ url: mock.url }], model: 'mock-model' }],
      tables: { sink: 'jsonl', dir, flush_ms: 50, redact: ['metadata.ssn', 'input.*.content', 'output.*.content.*.text'] },
    }),
  });
  try {
    const url = `${s.agate.base}/v1/responses`;
    const id = crid('red');
    const body = {
      model: 'chat-agent', client_request_id: id, metadata: { ssn: '078-05-1120', team: 'blue' },
      input: [{ role: 'user', content: 'my card is 4111 1111 1111 1111' }],
    };
    const r = await http('POST', url, { body });
    assert.equal(r.status, 200);
    assert.equal(r.json.output[0].content[0].text, 'Hi there!', 'the client sees the real answer');
    assert.equal(r.json.metadata.ssn, '078-05-1120', 'and its own metadata echoed');
    const streamId = crid('red-stream');
    const st = await sse(url, { ...body, client_request_id: streamId, stream: true });
    assert.ok(st.raw.includes('Hi there!'));
    const plainId = crid('plain');
    const plainBody = JSON.stringify({ model: 'chat-agent', input: 'nothing secret', client_request_id: plainId });
    assert.equal((await http('POST', url, { body: plainBody })).status, 200);
    await waitFor(() => payload(s.tablesDir).length >= 3, 5000, 'rows');
    const by = Object.fromEntries(payload(s.tablesDir).map((x) => [x.client_request_id, x]));
    for (const rid of [id, streamId]) {
      const row = by[rid];
      assert.equal(row.redacted, true);
      const req = JSON.parse(row.request);
      assert.equal(req.metadata.ssn, '[REDACTED]');
      assert.equal(req.metadata.team, 'blue', 'other keys stay');
      assert.equal(req.input[0].content, '[REDACTED]');
      assert.equal(req.input[0].role, 'user');
      assert.ok(!row.request.includes('4111'), 'the secret is nowhere in the row');
      const resp = JSON.parse(row.response);
      assert.equal(resp.output[0].content[0].text, '[REDACTED]');
      assert.equal(resp.output[0].content[0].type, 'output_text');
      assert.ok(!row.response.includes('078-05-1120'), 'echoed metadata is redacted in the response too');
    }
    // Nothing in this request matched, so it stays byte-exact; its answer text still matched.
    assert.equal(by[plainId].request, plainBody, 'a request with no match stays byte-exact');
    assert.equal(JSON.parse(by[plainId].response).output[0].content[0].text, '[REDACTED]');
    assert.equal(by[plainId].redacted, true);
  } finally { await s.stop(); }
});

test('usage table (JSONL, usage_table: true): one row per request, sampled out or not', T, async () => {
  const s = await startStack({
    config: (mock, dir) => ({
      listen: '127.0.0.1:0',
      endpoints: [{ name: 'chat-agent', upstreams: [{ url: mock.url }], model: 'mock-model', sampling_rate: 0.1 }],
      tables: { sink: 'jsonl', dir, flush_ms: 50, usage_table: true },
    }),
  });
  try {
    const url = `${s.agate.base}/v1/responses`;
    const ids = [];
    for (let i = 0; i < 30; i++) {
      const id = crid('use');
      ids.push(id);
      assert.equal((await http('POST', url, { body: { model: 'chat-agent', input: 'hi', client_request_id: id } })).status, 200);
    }
    const usage = () => readTable(path.join(s.tablesDir, 'endpoint_usage'));
    await waitFor(() => usage().length >= 30, 5000, 'usage rows');
    const rows = usage();
    assert.deepEqual(rows.map((r) => r.client_request_id).sort(), ids.sort());
    for (const r of rows) {
      assert.equal(r.input_token_count, 12);
      assert.equal(r.output_token_count, 3);
      assert.equal(r.status_code, 200);
      assert.equal(r.request_streaming, false);
    }
    assert.ok(payload(s.tablesDir).length < 30, 'the payload table was sampled');
  } finally { await s.stop(); }
});

test('always_log_errors: false samples error rows like the others, with the endpoint fraction', T, async () => {
  const s = await startStack({ endpointExtra: { sampling_rate: 0.2, always_log_errors: false } });
  try {
    const url = `${s.agate.base}/v1/responses`;
    const N = 200;
    for (let i = 0; i < N; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () =>
        http('POST', url, { body: { model: 'chat-agent', input: 'x mock:http500', client_request_id: crid('e') } })));
    }
    await new Promise((r) => setTimeout(r, 400));
    const rows = payload(s.tablesDir);
    // Binomial(200, 0.2): mean 40, sd 5.7; 40 ± 30 is > 5 sigma.
    assert.ok(Math.abs(rows.length - 40) <= 30, `kept ${rows.length} of ${N} error rows`);
    for (const r of rows) {
      assert.equal(r.status_code, 502);
      assert.equal(r.sampling_fraction, 0.2);
    }
  } finally { await s.stop(); }
});
