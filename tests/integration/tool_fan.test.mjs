// A hostile upstream that opens 3,000 parallel tool calls at sparse indexes (0, 1000, ...,
// 2,999,000) in a scrambled order, then continues each one (mock scenario tool_fan). Before issue
// 15 every piece searched the calls linearly and closing them was a selection sort: quadratic,
// with other clients stalled. Now: every call arrives with its own arguments,
// streaming or not, in the order the calls were opened (output_index = added order, PROTOCOL.md
// §4 rule 2), quickly, and the request has its row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, crid, rowFor, postJSON, sse } from './lib.mjs';

const T = { timeout: 120_000 };
const N = 3000;

function checkCalls(calls, where) {
  assert.equal(calls.length, N, `${where}: every call arrives`);
  calls.forEach((c, i) => {
    const k = (7 * i) % N; // the mock opens call k = 7j mod N as its j-th piece
    assert.equal(c.call_id, `call_${k}`, `${where}: output ${i} is the ${i}-th call opened`);
    assert.equal(c.name, 'lookup');
    assert.deepEqual(JSON.parse(c.arguments), { k }, `${where}: call ${k} has its own arguments`);
  });
}

test('3,000 parallel tool calls at sparse scrambled indexes: all of them, in opening order, quickly', T, async () => {
  const s = await startStack();
  try {
    const id = crid('fan');
    const t0 = performance.now();
    const r = await postJSON(`${s.agate.base}/v1/responses`, { model: 'chat-agent', input: 'mock:tool_fan', client_request_id: id }, { timeoutMs: 60_000 });
    const took = performance.now() - t0;
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const body = JSON.parse(r.text);
    assert.equal(body.status, 'completed');
    checkCalls(body.output.filter((o) => o.type === 'function_call'), 'non-streaming');
    process.stdout.write(`# 3,000 calls answered in ${took.toFixed(0)} ms\n`);
    // Seconds per request were the quadratic behaviour; linear is tens of milliseconds.
    assert.ok(took < 20_000, `answered in ${took.toFixed(0)} ms`);

    const st = await sse(`${s.agate.base}/v1/responses`, { model: 'chat-agent', input: 'mock:tool_fan', stream: true }, { timeoutMs: 60_000 });
    const done = st.events.filter((e) => e.type === 'response.output_item.done').map((e) => e.item);
    checkCalls(done.filter((o) => o.type === 'function_call'), 'streaming, output_item.done');
    const completed = st.events.find((e) => e.type === 'response.completed');
    assert.ok(completed, 'the stream completes');
    checkCalls(completed.response.output.filter((o) => o.type === 'function_call'), 'streaming, response.completed');

    const row = await rowFor(s.tablesDir, id, 10_000);
    assert.equal(row.status_code, 200);
    assert.equal(row.finish_status, 'completed');
  } finally {
    await s.stop();
  }
});
