// Response store (issue 12) with the PostgreSQL backend, in a throwaway cluster (pg.mjs): the
// suite every backend passes (store_suite.mjs: the store API through the openai SDK, the 100-turn
// chain, isolation between two API keys, the ttl purge), then what a shared database adds: two
// agates creating the schema at once, the fleet test (turn 1 on A, A killed with SIGKILL, turn 2
// on B by previous_response_id), the database stopped mid-load and down at start-up.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import fs from 'node:fs';
import { startMock, startAgate, baseConfig, makeTempDir, waitFor, http, postJSON, crid, rowFor, outputText, stopEach } from './lib.mjs';
import { startCluster } from './pg.mjs';
import { T, startStore, metric, storeApiSuite, ttlPurgeTest } from './store_suite.mjs';

let pg;
before(async () => { pg = await startCluster(); });
after(() => { pg?.destroySync(); });

/** A mock + agate whose store is the cluster's database postgres; storeExtra merges into `store`. */
const startPg = (storeExtra = {}, extra = {}) => startStore({ backend: 'postgres', dsn: pg.dsn, ...storeExtra }, extra);

const client = (agate) => new OpenAI({ apiKey: 'k', baseURL: agate.url, maxRetries: 0, timeout: 15_000 });
const readyz = (agate) => http('GET', `${agate.base}/readyz`);
/** [role, text] of each chat message the mock received last. */
const turns = async (mock) => (await mock.lastRequest()).messages.map((m) =>
  [m.role, typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')]);

describe('store (postgres): schema', () => {
  test('two agates starting at once on an empty database both start and create the schema once (advisory lock); tables prefixed agate_store_', T, async () => {
    await pg.sql('CREATE DATABASE store_race');
    const mock = await startMock();
    const tablesDir = makeTempDir('agate-it-store-pg-');
    const cfg = baseConfig(mock, tablesDir, { extra: { store: { backend: 'postgres', dsn: pg.dsnFor('store_race') } } });
    const started = await Promise.allSettled([startAgate(cfg), startAgate(cfg)]);
    const [a, b] = started.map((x) => (x.status === 'fulfilled' ? x.value : null));
    try {
      assert.deepEqual(started.map((x) => x.status), ['fulfilled', 'fulfilled'], `both started: ${started.map((x) => x.reason?.message).join(' | ')}`);
      const tables = (await pg.sql("SELECT tablename FROM pg_tables WHERE tablename LIKE 'agate\\_store\\_%' ORDER BY 1", 'store_race')).map((r) => r[0]);
      assert.deepEqual(tables, ['agate_store_conv_items', 'agate_store_conversations', 'agate_store_items', 'agate_store_responses']);
      for (const g of [a, b]) {
        assert.doesNotMatch(g.logs(), /event=store_db_(error|down)/, 'no schema race, no error');
        assert.match(g.logs(), /event=store_db_connected backend=postgres host=127\.0\.0\.1/);
        assert.equal((await readyz(g)).json.store, 'ok');
      }
      const r = await client(a).responses.create({ model: 'chat-agent', input: 'written by a' });
      assert.equal((await client(b).responses.retrieve(r.id)).id, r.id, 'b reads what a wrote');
      const [[n]] = await pg.sql(`SELECT count(*) FROM agate_store_responses WHERE id = '${r.id}'`, 'store_race');
      assert.equal(n, '1');
    } finally {
      await stopEach(a, b, mock);
      fs.rmSync(tablesDir, { recursive: true, force: true });
    }
  });

  test('once the schema exists, a role with only SELECT/INSERT/UPDATE/DELETE on the four tables is enough', T, async () => {
    const db = 'store_race'; // created, with its schema, by the test above
    await pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'store_dml') THEN CREATE ROLE store_dml LOGIN; END IF; END $$", db);
    await pg.sql('REVOKE CREATE ON SCHEMA public FROM PUBLIC', db);
    await pg.sql('GRANT SELECT, INSERT, UPDATE, DELETE ON agate_store_responses, agate_store_items, agate_store_conversations, agate_store_conv_items TO store_dml', db);
    const s = await startStore({ backend: 'postgres', dsn: pg.dsnFor(db).replace('agate@', 'store_dml@') });
    try {
      const ready = await readyz(s.agate);
      assert.equal(ready.json.store, 'ok', `the store is up with the limited role:\n${s.agate.logs().slice(-1500)}`);
      const c = await s.client.conversations.create({ items: [{ type: 'message', role: 'user', content: 'hi' }] });
      const r = await s.client.responses.create({ model: 'chat-agent', input: 'limited', conversation: c.id });
      assert.equal((await s.client.responses.retrieve(r.id)).id, r.id);
      await s.client.responses.delete(r.id);
      await s.client.conversations.delete(c.id);
      assert.doesNotMatch(s.agate.logs(), /event=store_db_error/);
    } finally {
      await s.stop();
    }
  });
});

storeApiSuite('store (postgres): retrieval, chains and references through the openai SDK', startPg);

describe('store (postgres): a fleet sharing one database', () => {
  test('turn 1 on A, A killed with SIGKILL, turn 2 on B by previous_response_id: B sees the whole context; turn 1 is retrievable on B', T, async () => {
    const mock = await startMock();
    const tablesDir = makeTempDir('agate-it-store-pg-');
    const cfg = baseConfig(mock, tablesDir, { extra: { store: { backend: 'postgres', dsn: pg.dsn } } });
    let a;
    let b;
    let c;
    try {
      [a, b] = await Promise.all([startAgate(cfg), startAgate(cfg)]);
      const r1 = await client(a).responses.create({ model: 'chat-agent', input: 'fleet turn one', instructions: 'be terse' });
      assert.equal(r1.status, 'completed');
      await a.kill('SIGKILL');
      assert.equal(a.proc.signalCode, 'SIGKILL', 'A died by SIGKILL');

      const r2 = await client(b).responses.create({ model: 'chat-agent', input: 'fleet turn two', previous_response_id: r1.id });
      assert.equal(r2.previous_response_id, r1.id);
      assert.deepEqual(await turns(mock), [['user', 'fleet turn one'], ['assistant', outputText(r1)], ['user', 'fleet turn two']],
        "the upstream got turn 1's input and output, then turn 2's input (and not turn 1's instructions)");
      const got = await client(b).responses.retrieve(r1.id);
      const { output_text: _a, ...want } = r1;
      const { output_text: _b, ...have } = got;
      assert.deepEqual(have, want, 'B serves the object A stored');
      const items = await client(b).responses.inputItems.list(r1.id);
      assert.deepEqual(items.data.map((i) => i.content[0].text), ['fleet turn one']);

      // And on: a new instance continues B's chain (any instance serves any turn).
      c = await startAgate(cfg);
      const r3 = await client(c).responses.create({ model: 'chat-agent', input: 'fleet turn three', previous_response_id: r2.id });
      assert.equal(r3.status, 'completed');
      assert.deepEqual((await turns(mock)).map(([role]) => role), ['user', 'assistant', 'user', 'assistant', 'user']);
      assert.equal((await turns(mock)).at(-1)[1], 'fleet turn three');
    } finally {
      await stopEach(a, b, c, mock);
      fs.rmSync(tablesDir, { recursive: true, force: true });
    }
  });
});

describe('store (postgres): failures and retention', () => {
  test('PostgreSQL stopped mid-load: answers keep flowing, rows say stored:false, nothing crashes; started again, writes succeed again', { timeout: 180_000 }, async () => {
    const s = await startPg();
    let phase = 'up';
    let stopLoad = false;
    const results = [];
    const worker = async (w) => {
      for (let i = 0; i < 5000 && !stopLoad; i++) {
        const id = crid('pgdown');
        const at = phase;
        let status = 0;
        let why = '';
        try {
          const res = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: `load ${w}.${i}`, client_request_id: id, stream: i % 2 === 1 }, { timeoutMs: 15_000 });
          status = res.status;
          if (status !== 200) why = res.text.slice(0, 200);
        } catch (e) { why = e.message; }
        results.push({ id, status, why, at, end: phase });
      }
    };
    let load;
    try {
      const first = await s.client.responses.create({ model: 'chat-agent', input: 'before' });
      assert.equal((await s.client.responses.retrieve(first.id)).id, first.id);
      load = Promise.all([0, 1, 2, 3].map(worker));
      await waitFor(() => results.length >= 10, 30_000, 'requests before the outage', { seen: () => results.length });
      await pg.stop('fast');
      phase = 'down';
      const mark = results.length;
      await waitFor(() => results.length >= mark + 16, 30_000, 'requests answered during the outage', { seen: () => results.length - mark });
      const ready = await waitFor(async () => { const r = await readyz(s.agate); return r.json?.store === 'failing' ? r : null; }, 10_000, '/readyz to report the store failing');
      assert.equal(ready.status, 200, 'a shared store failing keeps the instance ready: every instance shares it');
      phase = 'restarting';
      await pg.start();
      phase = 'up again';
      const mark2 = results.length;
      await waitFor(() => results.length >= mark2 + 10, 30_000, 'requests after the restart', { seen: () => results.length - mark2 });
    } finally {
      stopLoad = true;
      await load;
      if (!pg.running) await pg.start();
    }
    try {
      const bad = results.filter((r) => r.status !== 200);
      assert.equal(bad.length, 0, `every answer is a 200 (${results.length} requests): ${JSON.stringify(bad.slice(0, 3))}`);
      const down = results.filter((r) => r.at === 'down' && r.end === 'down');
      assert.ok(down.length >= 8, `requests that ran entirely while PostgreSQL was down: ${down.length}`);
      for (const r of down) assert.equal((await rowFor(s.tablesDir, r.id)).stored, false, `row ${r.id} says stored:false`);
      const failed = await metric(s.agate.base, 'agate_store_write_failures_total\\{reason="error"\\}') +
        await metric(s.agate.base, 'agate_store_write_failures_total\\{reason="timeout"\\}');
      assert.ok(failed >= down.length, `failures counted: ${failed} >= ${down.length}`);
      assert.match(s.agate.logs(), /event=store_write_failed why=postgres_error/);
      assert.match(s.agate.logs(), /event=store_db_error backend=postgres error="[^"]+"/, "PostgreSQL's message logged");
      const lines = s.agate.logs().split('\n').filter((l) => l.includes('event=store_db_error')).length;
      assert.ok(lines <= 10, `the database error is logged once per outage, not per request (${lines} lines)`);
      await waitFor(async () => {
        const r = await s.client.responses.create({ model: 'chat-agent', input: 'after' });
        try { return (await s.client.responses.retrieve(r.id)).id === r.id; } catch { return false; }
      }, 20_000, 'a response stored again after the restart');
      await waitFor(async () => (await readyz(s.agate)).json?.store === 'ok', 10_000, '/readyz store ok again');
      assert.match(s.agate.logs(), /event=store_db_up backend=postgres/);
    } finally {
      await s.stop(); // a clean exit: nothing crashed
    }
  });

  test('PostgreSQL down at start-up: agate starts with the store failing, answers go out unstored; once the database is up the store recovers with no traffic', T, async () => {
    let s;
    await pg.stop('fast');
    try {
      s = await startPg();
      assert.match(s.agate.logs(), /event=store_db_down backend=postgres error="[^"]+" action=start_failing/);
      const ready = await readyz(s.agate);
      assert.deepEqual([ready.status, ready.json.store], [200, 'failing'], 'store failing from the start; the instance still ready (shared store)');
      const id = crid('pgstart');
      const r = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'while down', client_request_id: id });
      assert.equal(r.status, 200, 'answered');
      assert.equal(r.json.store, true, 'the request asked to be stored');
      assert.equal((await rowFor(s.tablesDir, id)).stored, false);
      const lookup = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'x', previous_response_id: r.json.id });
      assert.equal(lookup.status, 503, 'a lookup the store cannot answer is a 503, not a 404');
      await pg.start();
      // No request from here on until the store says ok: the store checks itself while failing.
      await waitFor(async () => (await readyz(s.agate)).json?.store === 'ok', 15_000, "/readyz's store ok once the database is up");
      const again = await s.client.responses.create({ model: 'chat-agent', input: 'stored now' });
      assert.equal((await s.client.responses.retrieve(again.id)).id, again.id);
    } finally {
      if (!pg.running) await pg.start();
      await s?.stop();
    }
  });

  test('a database that stops answering (its backend process SIGSTOPped): answers still arrive (write timeout); after the statement bound the connection is dropped and a fresh one serves the next operation', { timeout: 90_000 }, async () => {
    const s = await startPg({ write_timeout_ms: 500 });
    let pid;
    try {
      const r0 = await s.client.responses.create({ model: 'chat-agent', input: 'before the freeze' });
      const pids = await waitFor(async () => {
        const rows = await pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'agate-store'");
        return rows.length === 1 ? rows : null;
      }, 10_000, "exactly one connection of this agate's store");
      pid = Number(pids[0][0]);
      process.kill(pid, 'SIGSTOP');
      const id = crid('frozen');
      const t0 = Date.now();
      const r = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'during the freeze', client_request_id: id }, { timeoutMs: 15_000 });
      assert.equal(r.status, 200);
      assert.ok(Date.now() - t0 < 5000, `answered within the write timeout, not the statement bound (${Date.now() - t0} ms)`);
      assert.equal((await rowFor(s.tablesDir, id)).stored, false);
      assert.ok(await metric(s.agate.base, 'agate_store_write_failures_total\\{reason="timeout"\\}') >= 1);
      // The next read queues behind the frozen statement, which gives up after 10 s; then a new
      // connection answers it.
      const got = await s.client.responses.retrieve(r0.id);
      assert.equal(got.id, r0.id);
      assert.match(s.agate.logs(), /event=store_db_error backend=postgres error="no answer within 10000 ms: connection dropped"/);
    } finally {
      if (pid) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      await s.stop();
    }
  });

  ttlPurgeTest(startPg);
});
