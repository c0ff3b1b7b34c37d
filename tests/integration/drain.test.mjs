// After the answer: an upstream that sends [DONE] but never ends its chunked body (mock
// `done_then_hold`). agate reads a finished transfer's last bytes so the connection can be reused,
// but only for a bounded time (1 s): the call, its table row and a shutdown never wait on the
// upstream. Before the bound existed the call lived until total_ms, and a SIGTERM in that window
// leaked the call (ASan) and lost its row (issue 15, "max_concurrent without a queue").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startStack, readTable, rowFor, crid, http, sse, waitFor } from './lib.mjs';

const T = { timeout: 60_000 };

test('answered, body never ended: the row lands and the upstream connection is given up within the drain bound', T, async () => {
  const s = await startStack();
  try {
    const id = crid('drain');
    const t0 = Date.now();
    const r = await sse(`${s.agate.base}/v1/responses`, {
      model: 'chat-agent', input: 'mock:done_then_hold', stream: true, client_request_id: id,
    });
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).type, 'response.completed', 'the client got its whole answer');
    const row = await rowFor(s.tablesDir, id, 5000);
    assert.equal(row.finish_status, 'completed');
    assert.equal(row.status_code, 200);
    assert.equal(row.attempts.length, 1);
    assert.equal(row.attempts[0].outcome, 'ok', 'a complete answer is not held against the replica');
    assert.ok(Date.now() - t0 < 4000, `row within the 1 s drain bound (took ${Date.now() - t0} ms)`);
    await waitFor(async () => (await s.mock.stats()).open_connections === 1, 3000,
      'the mock to see the held upstream connection closed (only the /stats one open)');
  } finally {
    await s.stop();
  }
});

test('SIGTERM right after such an answer: clean exit (no leak) and the row is written', T, async () => {
  const s = await startStack();
  let stopped = false;
  try {
    const ids = [crid('drain-term'), crid('drain-term')];
    const a = await http('POST', `${s.agate.base}/v1/responses`, {
      body: { model: 'chat-agent', input: 'mock:done_then_hold', client_request_id: ids[0] },
    });
    const b = await sse(`${s.agate.base}/v1/responses`, {
      model: 'chat-agent', input: 'mock:done_then_hold', stream: true, client_request_id: ids[1],
    });
    assert.equal(a.status, 200);
    assert.equal(a.json.status, 'completed');
    assert.equal(b.events.at(-1).type, 'response.completed');
    // Both calls are still draining their upstream now; stop() throws unless agate exits 0
    // (a sanitizer report at exit included).
    const dir = s.tablesDir;
    stopped = true;
    await s.agate.stop();
    const rows = readTable(dir).filter((r) => ids.includes(r.client_request_id));
    assert.equal(rows.length, 2, 'both rows written before exit');
    for (const row of rows) assert.equal(row.finish_status, 'completed');
  } finally {
    if (stopped) await s.mock.stop(); else await s.stop();
    if (fs.existsSync(s.tablesDir)) fs.rmSync(s.tablesDir, { recursive: true, force: true });
  }
});
