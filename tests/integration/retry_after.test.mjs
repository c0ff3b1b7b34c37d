// An upstream's Retry-After (RFC 9110 §10.2.3) reaches the client bounded: delay-seconds capped
// at 3600 (GW_UP_RETRY_AFTER_MAX; 2147483647 used to pass through as is), an HTTP-date converted
// to seconds from now (it used to be read as 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import { startAgate, makeTempDir, http as req } from './lib.mjs';

const T = { timeout: 30_000 };

/** An upstream that answers every request 429 with the given Retry-After value. */
async function limitedUpstream(value) {
  const server = http.createServer((rq, rs) => {
    rq.resume();
    rq.on('end', () => {
      const body = JSON.stringify({ error: { message: 'slow down', type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
      rs.writeHead(429, { 'content-type': 'application/json', 'retry-after': value(), 'content-length': Buffer.byteLength(body) });
      rs.end(body);
    });
  });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  return {
    url: `http://127.0.0.1:${server.address().port}/v1`,
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

test('Retry-After from a 429 upstream: huge delays capped at 3600 s, HTTP-dates converted', T, async () => {
  const cases = [
    ['2147483647', () => '2147483647', (v) => v === 3600],
    ['a 20-digit delay', () => '99999999999999999999', (v) => v === 3600],
    ['an HTTP-date 120 s ahead', () => new Date(Date.now() + 120_000).toUTCString(), (v) => v >= 110 && v <= 121],
    ['an HTTP-date in the past', () => new Date(Date.now() - 60_000).toUTCString(), (v) => v >= 0 && v <= 1],
    ['7', () => '7', (v) => v === 7],
  ];
  const ups = [];
  const tables = makeTempDir('agate-ra-');
  let agate;
  try {
    for (const [, v] of cases) ups.push(await limitedUpstream(v));
    agate = await startAgate({
      listen: '127.0.0.1:0',
      endpoints: ups.map((u, i) => ({ name: `ra${i}`, upstreams: [{ url: u.url }], model: 'm', retries: 0 })),
      tables: { sink: 'jsonl', dir: tables, flush_ms: 50 },
    });
    for (const [i, [name, , ok]] of cases.entries()) {
      const r = await req('POST', `${agate.base}/v1/responses`, { body: { model: `ra${i}`, input: 'hi' } });
      assert.equal(r.status, 429, `${name}: 429 passed on (${r.text.slice(0, 200)})`);
      const got = r.headers.get('retry-after');
      assert.ok(got !== null && /^\d+$/.test(got) && ok(Number(got)), `${name}: Retry-After ${got}`);
    }
  } finally {
    try { await agate?.stop(); } finally {
      for (const u of ups) await u.stop();
      fs.rmSync(tables, { recursive: true, force: true });
    }
  }
});
