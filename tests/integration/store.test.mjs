// Response store (issue 12) with the SQLite backend: the suite every backend passes
// (store_suite.mjs: the store API through the openai SDK, the 100-turn chain, isolation, the ttl
// purge), then SQLite's own: the store locked by another process mid-load (answers keep flowing,
// rows say stored:false), max_response_bytes, and the routes without a store.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, startAgate, baseConfig, makeTempDir, waitFor, http, postJSON, crid, rowFor, stopEach } from './lib.mjs';
import { T, startStore, metric, storeApiSuite, ttlPurgeTest } from './store_suite.mjs';

/** A mock + agate with a SQLite store in a temp dir; storeExtra merges into the `store` block. */
async function startSqlite(storeExtra = {}, extra = {}) {
  const dir = makeTempDir('agate-it-store-');
  const dbPath = path.join(dir, 'store.db');
  const s = await startStore({ path: dbPath, ...storeExtra }, extra, { cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) });
  return { ...s, dbPath };
}

storeApiSuite('store (sqlite): retrieval, chains and references through the openai SDK', startSqlite);

describe('store: failures and retention', () => {
  test('store locked by another process mid-load: answers keep flowing, rows say stored:false, then it recovers', T, async () => {
    const s = await startSqlite({ write_timeout_ms: 200 });
    let locker;
    try {
      const ok = await s.client.responses.create({ model: 'chat-agent', input: 'before' });
      assert.equal((await s.client.responses.retrieve(ok.id)).id, ok.id);
      // sqlite3 holds the write lock until its stdin closes.
      locker = spawn('sqlite3', [s.dbPath], { stdio: ['pipe', 'pipe', 'pipe'] });
      let lockOut = '';
      locker.stdout.on('data', (d) => { lockOut += d; });
      locker.stdin.write('BEGIN IMMEDIATE; SELECT \'locked\';\n');
      await waitFor(() => lockOut.includes('locked'), 5000, 'sqlite3 to hold the write lock', { seen: () => lockOut });
      const ids = [];
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => {
        const id = crid('down');
        ids.push(id);
        return postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: `during ${i}`, client_request_id: id, stream: i % 2 === 1 }, { timeoutMs: 15_000 });
      }));
      assert.deepEqual(answers.map((a) => a.status), Array(12).fill(200), 'every answer arrived while the store was down');
      for (const id of ids) assert.equal((await rowFor(s.tablesDir, id)).stored, false, `row ${id} says stored:false`);
      assert.ok(await metric(s.agate.base, 'agate_store_write_failures_total\\{reason="timeout"\\}') >= 1, 'failures counted');
      assert.match(s.agate.logs(), /event=store_write_failed/);
      const ready = await waitFor(async () => { const r = await http('GET', `${s.agate.base}/readyz`); return r.json?.store === 'failing' ? r : null; }, 10_000, '/readyz to report the store failing');
      assert.equal(ready.status, 503);
      locker.stdin.end('ROLLBACK;\n');
      await waitFor(() => locker.exitCode !== null, 5000, 'sqlite3 to exit');
      const after = await waitFor(async () => {
        const r = await s.client.responses.create({ model: 'chat-agent', input: 'after' });
        try { return (await s.client.responses.retrieve(r.id)).id === r.id; } catch { return false; }
      }, 20_000, 'a response stored again after the lock is gone');
      assert.ok(after);
      await waitFor(async () => (await http('GET', `${s.agate.base}/readyz`)).status === 200, 10_000, '/readyz ready again');
    } finally {
      if (locker && locker.exitCode === null) locker.kill('SIGKILL');
      await s.stop();
    }
  });

  ttlPurgeTest(startSqlite);

  test('max_response_bytes: a bigger response is answered, not stored, counted', T, async () => {
    const s = await startSqlite({ max_response_bytes: 1024 });
    try {
      const id = crid('big');
      const r = await s.client.responses.create({ model: 'chat-agent', input: 'x'.repeat(2000), client_request_id: id });
      assert.equal(r.status, 'completed');
      await assert.rejects(s.client.responses.retrieve(r.id), (e) => e.status === 404);
      assert.equal((await rowFor(s.tablesDir, id)).stored, false);
      assert.equal(await metric(s.agate.base, 'agate_store_write_failures_total\\{reason="too_large"\\}'), 1);
    } finally {
      await s.stop();
    }
  });
});

describe('without a store', () => {
  test('stored routes answer a 404 that says no store is configured', T, async () => {
    const mock = await startMock();
    const dir = makeTempDir('agate-it-nostore-');
    let agate;
    try {
      agate = await startAgate(baseConfig(mock, dir));
      const r = await http('GET', `${agate.url}/responses/resp_1`);
      assert.equal(r.status, 404);
      assert.match(r.json.error.message, /no `store` configured/);
      const p = await postJSON(`${agate.url}/responses`, { model: 'chat-agent', input: 'x', previous_response_id: 'resp_1' });
      assert.equal(p.status, 400);
      assert.match(p.json.error.message, /configure a `store`/);
    } finally {
      await stopEach(agate, mock);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
