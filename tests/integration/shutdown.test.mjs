// SIGTERM with a stream still running when the drain bound (limits.drain_timeout_ms) ends:
// gw_server_close() used to free the server while connections were still closing, and their close
// callbacks then wrote to it (a use-after-free: ASan aborted, the release build crashed with the
// JSONL sink on). Now: a clean exit within the bound plus the abort grace, and the stream's row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, crid, readTable, waitFor } from './lib.mjs';
import { connect, buildRequest } from './rawhttp.mjs';

const T = { timeout: 30_000 };
const DRAIN_MS = 300;
const GRACE_MS = 1000; // ABORT_GRACE_MS in gateway/main.c

async function stalledStreams(port, n, route = 'openai') {
  const out = [];
  for (let i = 0; i < n; i++) {
    const id = crid('shutdown');
    const c = await connect(port);
    const dbx = route === 'databricks' && i % 2 === 1;
    const req = dbx
      ? buildRequest('POST', '/serving-endpoints/chat-agent/invocations', { body: { input: [{ role: 'user', content: 'hello mock:stall' }], stream: true, client_request_id: id } })
      : buildRequest('POST', '/v1/responses', { body: { model: 'chat-agent', input: 'hello mock:stall', stream: true, client_request_id: id } });
    await c.write(req);
    out.push({ id, c, dbx });
  }
  for (const s of out) await s.c.waitText('"Hi"', 5000, `the first delta of stream ${s.id}`);
  return out;
}

test(`SIGTERM with streams still running at drain_timeout_ms (${DRAIN_MS}): clean exit within the bound, every row written`, T, async () => {
  const stack = await startStack({ extra: { limits: { drain_timeout_ms: DRAIN_MS } } });
  let streams = [];
  try {
    streams = await stalledStreams(stack.agate.port, 3, 'databricks');
    const t0 = Date.now();
    // stop(): SIGTERM, then a non-zero exit or a signal (ASan's abort on the use-after-free, a
    // segfault) fails the test, as does needing SIGKILL after 3 s.
    await stack.agate.stop();
    const took = Date.now() - t0;
    assert.ok(took >= DRAIN_MS - 50, `waited for the drain bound (${took} ms)`);
    assert.ok(took < DRAIN_MS + GRACE_MS + 1500, `exited within drain + grace (${took} ms)`);
    assert.match(stack.agate.logs(), /event=drain_timeout active=3 action=abort/);
    for (const s of streams) await s.c.waitEnd(2000);
    // Every stream cut at the bound has its row (JSONL is flushed when the sink closes).
    const rows = new Map(readTable(stack.tablesDir).map((r) => [r.client_request_id, r]));
    for (const s of streams) {
      const row = rows.get(s.id);
      assert.ok(row, `row for ${s.id}`);
      assert.equal(row.status_code, 200, 'the stream had committed');
      assert.equal(row.finish_status, 'failed', 'ended by the gateway at the bound, not by the client');
      assert.equal(row.error_code, 'TEMPORARILY_UNAVAILABLE');
      // The client got the §5.3 terminal sequence before the connection closed.
      const text = s.c.text();
      assert.match(text, /"type":"response\.failed"/, `response.failed sent to ${s.id}`);
      assert.match(text, /gateway is shutting down/);
      if (s.dbx) assert.match(text, /data: \[DONE\]/, `[DONE] on the Databricks route (${s.id})`);
    }
  } finally {
    for (const s of streams) s.c.destroy();
    await stack.stop(); // agate already stopped: stops the mock, removes the tables dir
  }
});

test('SIGTERM with no request in flight exits at once, not after the drain bound', T, async () => {
  const stack = await startStack({ extra: { limits: { drain_timeout_ms: 5000 } } });
  try {
    const t0 = Date.now();
    await stack.agate.stop();
    assert.ok(Date.now() - t0 < 2000, `exited in ${Date.now() - t0} ms`);
    assert.doesNotMatch(stack.agate.logs(), /event=drain_timeout/);
  } finally {
    await stack.stop();
  }
});

// gateway/call answers GW_REQ_EV_SHUTDOWN (gateway/server.h) with the §5.3 terminal sequence.
test('a stream still running at the drain bound gets its terminal event before the connection closes', {
  ...T,
}, async () => {
  const stack = await startStack({ extra: { limits: { drain_timeout_ms: DRAIN_MS } } });
  let streams = [];
  try {
    streams = await stalledStreams(stack.agate.port, 1);
    await stack.agate.stop();
    const [s] = streams;
    await s.c.waitEnd(2000);
    assert.match(s.c.text(), /"type":"response\.failed"/, 'response.failed before the close');
    assert.match(s.c.text(), /\r\n0\r\n\r\n$/, 'the chunked body is terminated');
    await waitFor(() => readTable(stack.tablesDir).some((r) => r.client_request_id === s.id && r.finish_status === 'failed'), 2000, 'a failed row');
  } finally {
    for (const s of streams) s.c.destroy();
    await stack.stop();
  }
});

test('a second SIGTERM during the drain is ignored: the stream in flight still completes, exit 0', T, async () => {
  const stack = await startStack({ extra: { limits: { drain_timeout_ms: 10000 } } });
  try {
    const id = crid('shutdown-twice');
    const c = await connect(stack.agate.port);
    await c.write(buildRequest('POST', '/v1/responses', { body: { model: 'chat-agent', input: 'hello mock:slow', stream: true, client_request_id: id } }));
    await c.waitText('response.output_text.delta', 5000, 'the first delta');
    stack.agate.proc.kill('SIGTERM');
    await waitFor(() => /event=shutdown signal=15/.test(stack.agate.logs()), 2000, 'the first SIGTERM logged');
    stack.agate.proc.kill('SIGTERM');
    await waitFor(() => /event=shutdown_in_progress signal=15/.test(stack.agate.logs()), 2000, 'the repeat logged and ignored');
    await c.waitText('response.completed', 8000, 'the stream to complete during the drain');
    await stack.agate.stop(); // throws unless exit code 0
    const row = readTable(stack.tablesDir).find((r) => r.client_request_id === id);
    assert.ok(row, 'row written');
    assert.equal(row.finish_status, 'completed');
  } finally {
    await stack.stop();
  }
});
