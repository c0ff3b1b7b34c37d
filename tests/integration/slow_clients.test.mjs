// Slow and idle clients at scale (issue 15): thousands of idle connections, a header drip, an
// accept flood. Each: agate's memory stays bounded and other clients are served meanwhile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, sse, checkEventSequence, sleep } from './lib.mjs';
import { connect, rssBytes } from './rawhttp.mjs';

const SANITIZED = !!process.env.AGATE_TEST_SANITIZED;
const T = { timeout: 90_000 };
const HEADER_TIMEOUT_MS = 1500;

let stack;
before(async () => {
  // The ASan quarantine keeps freed blocks resident; RSS would measure churn, not what is held.
  const saved = process.env.ASAN_OPTIONS;
  process.env.ASAN_OPTIONS = (saved ? `${saved}:` : '') + 'quarantine_size_mb=0';
  try {
    stack = await startStack({ extra: { limits: { header_timeout_ms: HEADER_TIMEOUT_MS, max_connections: 8000 } } });
  } finally {
    if (saved === undefined) delete process.env.ASAN_OPTIONS;
    else process.env.ASAN_OPTIONS = saved;
  }
});
after(async () => { await stack?.stop(); });

/** One streaming request end to end; returns its duration in ms. */
async function served() {
  const t0 = Date.now();
  const s = await sse(`${stack.agate.url}/responses`, { model: 'chat-agent', input: 'hello mock:text', stream: true }, { timeoutMs: 5000 });
  assert.equal(s.status, 200);
  assert.equal(checkEventSequence(s.events).terminal.type, 'response.completed');
  return Date.now() - t0;
}

async function openMany(n, batch = 250) {
  const conns = [];
  for (let i = 0; i < n; i += batch) {
    conns.push(...await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => connect(stack.agate.port, { timeoutMs: 10_000 }))));
  }
  return conns;
}

test('3,000 idle connections: RSS grows < 4 KiB each, a request meanwhile is served at once, all closed after header_timeout_ms', T, async (t) => {
  const pid = stack.agate.proc.pid;
  await served(); // warm-up
  const rss0 = rssBytes(pid);
  const N = 3000;
  let conns = [];
  try {
    conns = await openMany(N);
    await sleep(200);
    const grew = rssBytes(pid) - rss0;
    const per = grew / N;
    assert.ok(per < (SANITIZED ? 32 : 4) * 1024, `RSS grew ${(grew / 1048576).toFixed(1)} MiB for ${N} idle connections (${per.toFixed(0)} B each)`);
    const took = await served();
    assert.ok(took < 2000, `a request with ${N} idle connections open took ${took} ms`);
    // Idle connections that never sent a byte are closed after the header timeout.
    const deadline = Date.now() + HEADER_TIMEOUT_MS + 8000;
    for (const c of conns) await c.waitEnd(Math.max(1, deadline - Date.now()));
    assert.ok(conns.every((c) => c.len === 0), 'closed without a reply');
    t.diagnostic(`${N} idle connections: +${(grew / 1048576).toFixed(1)} MiB RSS (${per.toFixed(0)} B each); request meanwhile ${took} ms`);
  } finally {
    for (const c of conns) c.destroy();
  }
});

test('a header drip (one byte per 100 ms on 50 connections) is cut with 408 at header_timeout_ms; others are served meanwhile', T, async () => {
  const head = 'POST /v1/responses HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nX-Pad: ' + 'x'.repeat(200);
  let drips = [];
  let stop = false;
  try {
    drips = await openMany(50);
    const t0 = Date.now();
    const writers = drips.map(async (c) => {
      for (let i = 0; i < head.length && !stop && !c.ended && !c.closed; i++) {
        try { await c.write(head[i]); } catch { return; }
        await sleep(100);
      }
    });
    const times = [];
    for (let i = 0; i < 5; i++) times.push(await served());
    for (const tm of times) assert.ok(tm < 2000, `requests during the drip are served (${times} ms)`);
    for (const c of drips) {
      const [res] = await c.waitResponses(1, HEADER_TIMEOUT_MS + 5000);
      assert.equal(res.status, 408);
    }
    const took = Date.now() - t0;
    assert.ok(took >= HEADER_TIMEOUT_MS - 100 && took < HEADER_TIMEOUT_MS + 4000, `408s after the header timeout, not later (${took} ms)`);
    stop = true;
    await Promise.all(writers);
  } finally {
    stop = true;
    for (const c of drips) c.destroy();
  }
});

test('an accept flood (4,000 connect-and-close in bursts of 250): memory back near where it was, service unaffected', T, async (t) => {
  const pid = stack.agate.proc.pid;
  await served();
  const rss0 = rssBytes(pid);
  for (let round = 0; round < 16; round++) {
    const conns = await openMany(250);
    for (const c of conns) c.destroy();
  }
  await sleep(300);
  const took = await served();
  assert.ok(took < 2000, `a request after the flood took ${took} ms`);
  const grew = rssBytes(pid) - rss0;
  assert.ok(grew < (SANITIZED ? 32 : 8) * 1048576, `RSS grew ${(grew / 1048576).toFixed(1)} MiB over the flood`);
  t.diagnostic(`accept flood: RSS +${(grew / 1048576).toFixed(1)} MiB, request after it ${took} ms`);
});
