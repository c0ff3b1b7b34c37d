// access_log: one JSON line per request (file or stderr), the fields people grep, never a body or
// a key; a file is reopened on SIGHUP after logrotate renamed it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startStack, startAgate, baseConfig, makeTempDir, http, waitFor } from './lib.mjs';

const T = { timeout: 45_000 };
const BODY_SECRET = 'BODY-SECRET-7f3a9c';
const CLIENT_KEY = 'sk-client-SECRET-4d2e';
const UPSTREAM_KEY = 'sk-upstream-SECRET-91bb';

function readLines(file) {
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the file holds whole lines');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

const post = (base, body, headers = {}) => http('POST', `${base}/v1/responses`, { body, headers: { authorization: `Bearer ${CLIENT_KEY}`, ...headers } });

test('file access log: one JSON line per request with its fields; no body or key text; admin routes skipped', T, async () => {
  const dir = makeTempDir('agate-alog-');
  const file = path.join(dir, 'access.log');
  process.env.AGATE_IT_ALOG_KEY = UPSTREAM_KEY;
  const s = await startStack({
    config: (mock, tables) => baseConfig(mock, tables, {
      extra: { access_log: file },
      endpointExtra: { upstreams: [{ url: mock.url, api_key_env: 'AGATE_IT_ALOG_KEY' }] },
    }),
  });
  try {
    const ok = await post(s.agate.base, { model: 'chat-agent', input: `hello ${BODY_SECRET}` }, { 'x-client-request-id': 'my-crid-1' });
    assert.equal(ok.status, 200);
    const st = await post(s.agate.base, { model: 'chat-agent', input: `streamed ${BODY_SECRET}`, stream: true });
    assert.equal(st.status, 200);
    const bad = await post(s.agate.base, { model: 'chat-agent', input: `x mock:http500 ${BODY_SECRET}` });
    assert.equal(bad.status, 502);
    assert.equal((await post(s.agate.base, { model: 'nope', input: 'x' })).status, 404);
    assert.equal((await http('GET', `${s.agate.base}/metrics`)).status, 200);
    assert.equal((await http('GET', `${s.agate.base}/healthz`)).status, 200);
    const lines = await waitFor(() => { const l = readLines(file); return l.length >= 4 && l; }, 5000, '4 access-log lines', { seen: () => readLines(file).length });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(readLines(file).length, 4, 'admin routes are not logged');

    const a = lines.find((l) => l.request_id === ok.headers.get('x-request-id'));
    assert.ok(a, 'the line carries the x-request-id');
    assert.match(a.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(a.time) - Date.now()) < 60_000, 'time is now');
    assert.equal(a.client_request_id, 'my-crid-1');
    assert.equal(a.requester, null, 'no identity configured yet');
    assert.match(a.client, /^127\.0\.0\.1:\d+$/);
    assert.equal(a.route, 'responses');
    assert.equal(a.endpoint, 'chat-agent');
    assert.equal(a.served, 'chat-agent');
    assert.equal(a.replica, s.mock.url);
    assert.equal(a.attempts, 1);
    assert.equal(a.status, 200);
    assert.equal(a.finish_status, 'completed');
    assert.equal(a.error_code, null);
    assert.equal(a.stream, false);
    assert.equal(a.input_tokens, 12);
    assert.equal(a.output_tokens, 3);
    assert.ok(Number.isInteger(a.ttft_ms) && a.ttft_ms >= 0);
    assert.ok(a.duration_ms >= a.ttft_ms);
    assert.equal(a.queue_ms, 0);
    assert.equal(a.bytes_in, Buffer.byteLength(JSON.stringify({ model: 'chat-agent', input: `hello ${BODY_SECRET}` })));
    assert.ok(a.bytes_out > ok.bytes.length, `bytes_out counts head + body (${a.bytes_out} > ${ok.bytes.length})`);

    const b = lines.find((l) => l.request_id === st.headers.get('x-request-id'));
    assert.equal(b.stream, true);
    assert.equal(b.finish_status, 'completed');
    assert.ok(b.bytes_out > st.bytes.length, 'chunk framing included');
    const c = lines.find((l) => l.request_id === bad.headers.get('x-request-id'));
    assert.equal(c.status, 502);
    assert.equal(c.finish_status, 'failed');
    assert.equal(c.error_code, 'INTERNAL_ERROR');
    assert.equal(c.input_tokens, null);
    const d = lines.find((l) => l.status === 404);
    assert.equal(d.endpoint, null);
    assert.equal(d.finish_status, 'rejected');
    assert.equal(d.attempts, 0);

    const raw = fs.readFileSync(file, 'utf8');
    for (const secret of [BODY_SECRET, CLIENT_KEY, UPSTREAM_KEY, 'Bearer', 'hello', 'Hi there']) {
      assert.ok(!raw.includes(secret), `"${secret}" never appears in the access log`);
    }
    const m = await http('GET', `${s.agate.base}/metrics`);
    assert.match(m.text, /^agate_access_log_lines_total 4$/m);
    assert.match(m.text, /^agate_access_log_dropped_total 0$/m);
  } finally {
    delete process.env.AGATE_IT_ALOG_KEY;
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('logrotate: rename + SIGHUP moves lines to a new file; nothing lost, nothing duplicated', T, async () => {
  const dir = makeTempDir('agate-alog-rot-');
  const file = path.join(dir, 'access.log');
  const s = await startStack({ config: (mock, tables) => baseConfig(mock, tables, { extra: { access_log: file } }) });
  try {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await post(s.agate.base, { model: 'chat-agent', input: 'a' })).headers.get('x-request-id'));
    await waitFor(() => readLines(file).length === 3, 5000, '3 lines before the rotation', { seen: () => readLines(file).length });
    fs.renameSync(file, `${file}.1`);
    // Renamed but not yet signalled: the open descriptor follows the file, as logrotate expects.
    ids.push((await post(s.agate.base, { model: 'chat-agent', input: 'b' })).headers.get('x-request-id'));
    await waitFor(() => readLines(`${file}.1`).length === 4, 5000, 'the 4th line in the renamed file', { seen: () => readLines(`${file}.1`).length });
    const before = (s.agate.logs().match(/event=access_log_reopened/g) ?? []).length;
    s.agate.proc.kill('SIGHUP');
    await waitFor(() => (s.agate.logs().match(/event=access_log_reopened/g) ?? []).length > before, 5000, 'reopen logged');
    assert.ok(fs.existsSync(file), 'the path was created again');
    for (let i = 0; i < 2; i++) ids.push((await post(s.agate.base, { model: 'chat-agent', input: 'c' })).headers.get('x-request-id'));
    await waitFor(() => readLines(file).length === 2, 5000, '2 lines in the new file', { seen: () => readLines(file).length });
    // A line is written when its call finishes, which is after its upstream transfer drained:
    // back-to-back requests may finish in another order than they arrived. So each file holds
    // exactly its requests, each once; the order inside a file is finish order.
    const sorted = (a) => [...a].sort();
    assert.deepEqual(sorted(readLines(`${file}.1`).map((l) => l.request_id)), sorted(ids.slice(0, 4)),
      'the renamed file: the 4 requests before the SIGHUP, each once');
    assert.deepEqual(sorted(readLines(file).map((l) => l.request_id)), sorted(ids.slice(4)),
      'the new file: the 2 requests after it, each once');
  } finally {
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('access_log "stderr": JSON lines among the key=value log; default off; an unopenable path fails at start', T, async () => {
  const s = await startStack({ config: (mock, tables) => baseConfig(mock, tables, { extra: { access_log: 'stderr' } }) });
  try {
    const r = await post(s.agate.base, { model: 'chat-agent', input: `x ${BODY_SECRET}` });
    assert.equal(r.status, 200);
    const rid = r.headers.get('x-request-id');
    const line = await waitFor(() => s.agate.logs().split('\n').find((l) => l.startsWith('{') && l.includes(rid)), 5000, 'the stderr access line');
    const j = JSON.parse(line);
    assert.equal(j.request_id, rid);
    assert.equal(j.status, 200);
    assert.ok(!s.agate.logs().includes(BODY_SECRET), 'no body text on stderr');
  } finally {
    await s.stop();
  }
  // Off by default: the base config has no access_log and stderr carries no JSON line.
  const off = await startStack();
  try {
    assert.equal((await post(off.agate.base, { model: 'chat-agent', input: 'x' })).status, 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!off.agate.logs().split('\n').some((l) => l.startsWith('{')), 'no access line when off');
  } finally {
    await off.stop();
  }
  const dir = makeTempDir('agate-alog-bad-');
  try {
    await assert.rejects(
      startAgate({ listen: '127.0.0.1:0', access_log: path.join(dir, 'missing-dir', 'a.log'), endpoints: [{ name: 'e', upstreams: [{ url: 'http://127.0.0.1:9/v1' }] }] }),
      /access_log: cannot open .*missing-dir/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
