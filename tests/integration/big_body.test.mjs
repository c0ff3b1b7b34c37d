// One request at the body limit must not stall everyone else (issue 15): a 3.9 MB input of
// 14,000 function calls and their outputs used to hold the loop for over a minute (each output's
// call_id was checked against every earlier item). Now validation is linear; this measures how
// long the loop is blocked with a probe client hitting /healthz meanwhile, and that memory
// does not grow with repeated large bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startStack, crid, rowFor } from './lib.mjs';
import { rssBytes } from './rawhttp.mjs';

const SANITIZED = !!process.env.AGATE_TEST_SANITIZED;
const T = { timeout: 120_000 };

function bigBody(id) {
  const input = [];
  for (let i = 0; i < 14_000; i++) {
    input.push({ type: 'function_call', call_id: `call_${i}`, name: 'lookup', arguments: JSON.stringify({ q: 'x'.repeat(40), i }) });
    input.push({ type: 'function_call_output', call_id: `call_${i}`, output: 'result '.repeat(10) });
  }
  input.push({ role: 'user', content: 'done? mock:text' });
  const body = JSON.stringify({ model: 'chat-agent', input, client_request_id: id });
  assert.ok(body.length > 3_800_000 && body.length < 4 << 20, `body ${body.length} bytes, under the 4 MiB limit`);
  return body;
}

function post(port, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/responses', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(60_000, () => req.destroy(new Error('the big request took over 60 s')));
    req.on('error', reject);
    req.end(body);
  });
}

test('a 3.9 MB body of 14,000 calls: answered fast, other clients keep being served, memory flat', T, async () => {
  const s = await startStack();
  try {
    const id = crid('big');
    const body = bigBody(id);
    let probing = true;
    let worst = 0;
    let probes = 0;
    const probe = (async () => {
      for (let i = 0; probing && i < 100_000; i++) {
        const t0 = performance.now();
        const r = await fetch(`${s.agate.base}/healthz`, { signal: AbortSignal.timeout(10_000) });
        await r.text();
        worst = Math.max(worst, performance.now() - t0);
        probes++;
        await new Promise((res) => setTimeout(res, 2));
      }
    })();
    const t0 = performance.now();
    const r = await post(s.agate.port, body);
    const took = performance.now() - t0;
    await new Promise((res) => setTimeout(res, 50));
    probing = false;
    await probe;
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(JSON.parse(r.text).status, 'completed');
    process.stdout.write(`# big body answered in ${took.toFixed(0)} ms; worst /healthz latency meanwhile ${worst.toFixed(1)} ms over ${probes} probes\n`);
    // Measured ~90 ms and ~45 ms (plain build, idle 2-core host); the bounds leave room for
    // sanitizers and a loaded CI machine while still catching the old 60-second stall.
    assert.ok(took < 10_000, `answered in ${took.toFixed(0)} ms`);
    assert.ok(worst < 2_000, `the loop was blocked at most ${worst.toFixed(0)} ms`);
    assert.ok(probes >= 3, `the probe ran during the request (${probes})`);
    const row = await rowFor(s.tablesDir, id, 10_000);
    assert.equal(row.status_code, 200);
    if (!SANITIZED) {
      const before = rssBytes(s.agate.proc.pid);
      for (let i = 0; i < 12; i++) assert.equal((await post(s.agate.port, bigBody(crid('big-rep')))).status, 200);
      const after = rssBytes(s.agate.proc.pid);
      process.stdout.write(`# RSS ${(before / 2 ** 20).toFixed(1)} MiB -> ${(after / 2 ** 20).toFixed(1)} MiB after 12 more big bodies\n`);
      assert.ok(after - before < 64 * 2 ** 20, `RSS grew ${((after - before) / 2 ** 20).toFixed(1)} MiB over 12 bodies (bounded, not per request)`);
    }
  } finally {
    await s.stop();
  }
});
