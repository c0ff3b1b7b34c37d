// Inference tables in a real PostgreSQL (INFERENCE_TABLES.md §6, §7.4) and JSONL crash safety.
//
// The test starts its own throwaway cluster (pg.mjs: initdb into a temp dir, pg_ctl on a free
// loopback port), and stops it at the end. Queries go through psql (no client library in node). Scale: 2,000 requests per load (the
// issue's 20,000 would take minutes under ASan for no extra coverage: the paths exercised —
// batching, spill, replay, idempotent insert — are the same at 2,000, and the file must stay
// well under ctest's timeout in both builds).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, startAgate, makeTempDir, sleep, waitFor, http, WAIT_MS, stopEach } from './lib.mjs';
import { startCluster } from './pg.mjs';

const SRC = process.env.AGATE_SRC || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const SANITIZED = !!process.env.AGATE_TEST_SANITIZED;

let pg;
let mock;
const scratch = []; // temp dirs to remove at the end
const spawned = new Set(); // gateways started by spawnAgate
process.on('exit', () => {
  for (const p of spawned) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
});

before(async () => {
  pg = await startCluster();
  mock = await startMock();
});
after(async () => {
  try {
    await mock?.stop();
  } finally {
    pg?.destroySync();
    if (!process.env.AGATE_IT_KEEP) for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Load: a fixed mix of streaming, non-streaming, failing and rejected requests

const MIX = [
  { body: (ep) => ({ model: ep, input: 'hello mock:text' }), status: 200 },
  { body: (ep) => ({ model: ep, input: 'hello mock:text', stream: true }), status: 200, expect: 'response.completed' },
  { body: (ep) => ({ model: ep, input: 'hello mock:error_openai', stream: true }), status: 200, expect: 'response.failed' },
  { body: (ep) => ({ model: ep, input: 'hello mock:http400' }), status: 400 },
  { body: (ep) => ({ model: ep, input: 'hello mock:tools3', stream: true }), status: 200, expect: 'response.completed' },
  { body: (ep) => ({ model: ep }), status: 400 }, // rejected by validation, never dispatched
];

/**
 * Sends requests [from, to) with `conc` workers. Returns [{i, id, ok, status, doneAt}].
 * ok: the exchange completed with the status (and terminal event) the scenario expects.
 * shouldStop() ends the issuing early (requests already sent still finish); paceMs: pause per worker.
 */
async function load(base, ep, from, to, { conc = 8, onDone, shouldStop, paceMs = 0 } = {}) {
  const out = [];
  let next = from;
  const worker = async () => {
    for (let guard = 0; guard < to - from + 1; guard++) {
      if (next >= to || shouldStop?.()) return;
      const i = next++;
      const m = MIX[i % MIX.length];
      const rec = { i, id: null, ok: false, status: 0, doneAt: 0 };
      try {
        const res = await http('POST', `${base}/v1/responses`, { body: m.body(ep), timeoutMs: WAIT_MS });
        rec.status = res.status;
        rec.id = res.headers.get('x-request-id');
        rec.ok = res.status === m.status && !!rec.id && (!m.expect || res.text.includes(`"type":"${m.expect}"`));
        if (!rec.ok) rec.why = res.text.slice(0, 300);
      } catch (e) {
        rec.why = e.message;
      }
      rec.doneAt = Date.now();
      out.push(rec);
      onDone?.(out.length);
      if (paceMs) await sleep(paceMs);
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  return out;
}

function assertAllOk(results, what) {
  const bad = results.filter((r) => !r.ok);
  assert.equal(bad.length, 0, `${what}: ${bad.length} requests failed, e.g. ${JSON.stringify(bad.slice(0, 3))}`);
}

/** Multiset comparison: every client id exactly once among the table's ids, and nothing else. */
function assertExactlyOnce(clientIds, tableIds, what) {
  const want = new Set(clientIds);
  assert.equal(want.size, clientIds.length, `${what}: request ids are unique`);
  const seen = new Map();
  for (const id of tableIds) seen.set(id, (seen.get(id) || 0) + 1);
  const missing = clientIds.filter((id) => !seen.has(id));
  const dup = [...seen].filter(([, n]) => n > 1);
  const extra = [...seen.keys()].filter((id) => !want.has(id));
  assert.deepEqual({ missing: missing.length, dup: dup.length, extra: extra.length }, { missing: 0, dup: 0, extra: 0 },
    `${what}: missing ${missing.slice(0, 3)} dup ${JSON.stringify(dup.slice(0, 3))} extra ${extra.slice(0, 3)}`);
}

function pgConfig(ep, extraEndpoints = [], tables = {}) {
  const spool = makeTempDir('agate-spool-');
  scratch.push(spool);
  return {
    listen: '127.0.0.1:0',
    endpoints: [
      { name: ep, adapter: 'chat_completions', upstreams: [{ url: mock.url }], model: 'mock-model' },
      ...extraEndpoints,
    ],
    tables: {
      sink: 'postgres', dsn: pg.dsn, spool_dir: path.join(spool, 'spool'),
      flush_ms: 100, batch_rows: 200, ...tables,
    },
  };
}

const ids = async (table, where = 'true') => (await pg.sql(`SELECT databricks_request_id FROM "${table}" WHERE ${where}`)).map((r) => r[0]);

// ---------------------------------------------------------------------------------------------

describe('postgres sink', () => {
  test('schema: tables and partitions are created on start, with the columns of tables/schema.sql', { timeout: 30_000 }, async () => {
    const agate = await startAgate(pgConfig('schema-ep'));
    try {
      await waitFor(async () => (await pg.sql("SELECT to_regclass('\"schema-ep_payload\"') IS NOT NULL AND to_regclass('endpoint_usage') IS NOT NULL AND to_regclass('unrouted_payload') IS NOT NULL"))[0][0] === 't',
        WAIT_MS, 'tables created on connect');
      const today = new Date().toISOString().slice(0, 10).replaceAll('-', '');
      const parts = (await pg.sql(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'schema-ep_payload'`)).map((r) => r[0]);
      assert.ok(parts.includes(`schema-ep_payload_${today}`), `today's partition exists: ${parts}`);
      assert.ok(parts.length >= 2, "today's and tomorrow's partitions");
      const ddl = fs.readFileSync(path.join(SRC, 'tables/schema.sql'), 'utf8');
      const columnsOf = (table) => {
        const start = ddl.indexOf(`CREATE TABLE IF NOT EXISTS ${table} (`);
        assert.ok(start >= 0, `schema.sql defines ${table}`);
        const body = ddl.slice(start, ddl.indexOf('PRIMARY KEY', start));
        return body.split('\n').slice(1).map((l) => l.trim()).filter((l) => l && !l.startsWith('--')).map((l) => l.split(/\s+/)[0]);
      };
      const actual = async (t) => (await pg.sql(`SELECT attname FROM pg_attribute WHERE attrelid = '"${t}"'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)).map((r) => r[0]);
      assert.deepEqual(await actual('schema-ep_payload'), columnsOf('"chat-agent_payload"'), 'payload columns = schema.sql');
      assert.deepEqual(await actual('endpoint_usage'), columnsOf('endpoint_usage'), 'usage columns = schema.sql');
      const types = Object.fromEntries(await pg.sql(`SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '"schema-ep_payload"'::regclass AND attnum > 0`));
      assert.equal(types.request_date, 'date');
      assert.equal(types.request_time, 'timestamp with time zone');
      assert.equal(types.logging_error_codes, 'text[]');
      assert.equal(types.attempts, 'jsonb');
      assert.equal(types.sampling_fraction, 'double precision');
      const idx = (await pg.sql(`SELECT indexdef FROM pg_indexes WHERE tablename = 'schema-ep_payload'`)).map((r) => r[0]).join('\n');
      for (const col of ['(request_time)', '(client_request_id)', '(served_entity_id, request_time)', '(databricks_request_id, request_date)']) {
        assert.ok(idx.includes(col), `index on ${col}: ${idx}`);
      }
    } finally {
      await agate.stop();
    }
  });

  test('2,000 mixed requests: every payload and usage row exactly once; SIGTERM drains the queue; sampled-out requests still get usage rows', { timeout: 90_000 }, async () => {
    const sampled = { name: 'sampled-ep', adapter: 'chat_completions', upstreams: [{ url: mock.url }], model: 'mock-model', sampling_rate: 0.1 };
    // flush_ms 5 s: at SIGTERM most rows are still queued, so the drain is what stores them.
    const agate = await startAgate(pgConfig('load-ep', [sampled], { flush_ms: 5000, batch_rows: 500 }));
    let results;
    let sres;
    try {
      await waitFor(async () => (await pg.sql("SELECT to_regclass('\"load-ep_payload\"') IS NOT NULL"))[0][0] === 't', WAIT_MS, 'tables created');
      [results, sres] = await Promise.all([load(agate.base, 'load-ep', 0, 2000), load(agate.base, 'sampled-ep', 0, 300, { conc: 4 })]);
    } finally {
      await agate.stop(); // exit code 0 required; drains the queue first
    }
    assertAllOk(results, 'load');
    assertAllOk(sres, 'sampled load');
    const logs = agate.logs();
    assert.match(logs, /event=table_sink_closed sink=postgres rows_written=\d+ .*rows_dropped=0 /, 'closed with nothing dropped');
    const clientIds = results.map((r) => r.id);
    assertExactlyOnce(clientIds, [...await ids('load-ep_payload'), ...await ids('unrouted_payload', `databricks_request_id IN (${clientIds.map((x) => `'${x}'`).join(',')})`)], 'payload table');
    assertExactlyOnce(clientIds, await ids('endpoint_usage', "endpoint_name = 'load-ep'"), 'usage table');

    // Sampled endpoint: payload rows are a subset (errors always kept), usage rows are all.
    const sIds = sres.map((r) => r.id);
    const sPayload = await ids('sampled-ep_payload');
    assert.ok(sPayload.length < sIds.length, `payload table is sampled: ${sPayload.length} of ${sIds.length}`);
    const errors = sres.filter((r) => r.status !== 200 || r.i % MIX.length === 2).length;
    assert.ok(sPayload.length >= errors, `errors are always kept: ${sPayload.length} >= ${errors}`);
    assertExactlyOnce(sIds, await ids('endpoint_usage', "endpoint_name = 'sampled-ep'"), 'usage table of the sampled endpoint');

    // Row contents survive the JSON round trip with the §6 types.
    const [row] = await pg.sql(`SELECT status_code, finish_status, stream, request, array_length(logging_error_codes, 1), jsonb_array_length(attempts), attempt_count, request_date = (request_time AT TIME ZONE 'UTC')::date FROM "load-ep_payload" WHERE databricks_request_id = '${results.find((r) => r.i % MIX.length === 2).id}'`);
    assert.deepEqual(row.slice(0, 3), ['200', 'failed', 't'], 'mid-stream failure row');
    assert.deepEqual(JSON.parse(row[3]), MIX[2].body('load-ep'), 'request is the client body');
    assert.equal(row[4], '1', 'logging_error_codes = {RESPONSE_PARTIAL}');
    assert.equal(row[5], row[6], 'attempts has attempt_count elements');
    assert.equal(row[7], 't', 'request_date is the UTC day of request_time');
    const [u] = await pg.sql(`SELECT status_code, input_token_count, output_token_count, total_token_count, latency_ms IS NOT NULL, request_streaming, token_count_source FROM endpoint_usage WHERE databricks_request_id = '${results.find((r) => r.i % MIX.length === 0).id}'`);
    assert.deepEqual(u, ['200', '12', '3', '15', 't', 'f', 'upstream'], 'usage row of a text request');
  });

  test('PostgreSQL stopped mid-load and restarted: no request fails, every row lands exactly once after the replay', { timeout: 90_000 }, async () => {
    const agate = await startAgate(pgConfig('outage-ep'));
    const all = [];
    try {
      await waitFor(async () => (await pg.sql("SELECT to_regclass('\"outage-ep_payload\"') IS NOT NULL"))[0][0] === 't', WAIT_MS, 'tables created');
      // Phase 1: PostgreSQL is stopped while requests 600.. are in flight.
      let stopping = null;
      all.push(...await load(agate.base, 'outage-ep', 0, 1000, { onDone: (n) => { if (n === 600) stopping = pg.stop('fast'); } }));
      await stopping;
      // Phase 2: the database is down for these.
      all.push(...await load(agate.base, 'outage-ep', 1000, 1400));
      await waitFor(() => /event=table_db_down/.test(agate.logs()), WAIT_MS, 'the sink noticed');
      // Phase 3: back up while requests keep coming; the spool is replayed in the meantime.
      const starting = pg.start();
      all.push(...await load(agate.base, 'outage-ep', 1400, 2000));
      await starting;
      assertAllOk(all, 'requests during the outage');
      const clientIds = all.map((r) => r.id);
      await waitFor(async () => Number((await pg.sql("SELECT count(*) FROM endpoint_usage WHERE endpoint_name = 'outage-ep'"))[0][0]) >= clientIds.length,
        WAIT_MS, 'all usage rows replayed');
      await waitFor(() => /event=table_spool_drained/.test(agate.logs()), WAIT_MS, 'spool drained');
      assertExactlyOnce(clientIds, [...await ids('outage-ep_payload'), ...await ids('unrouted_payload', `databricks_request_id IN (${clientIds.map((x) => `'${x}'`).join(',')})`)], 'payload table after replay');
      assertExactlyOnce(clientIds, await ids('endpoint_usage', "endpoint_name = 'outage-ep'"), 'usage table after replay');
    } finally {
      if (!pg.running) await pg.start();
      await agate.stop();
    }
    const closed = /event=table_sink_closed sink=postgres rows_written=(\d+) rows_replayed=(\d+) rows_spooled=(\d+) rows_dropped=(\d+)/.exec(agate.logs());
    assert.ok(closed, 'final counters logged');
    assert.ok(Number(closed[3]) > 0, `rows went through the spool: ${closed[0]}`);
    assert.ok(Number(closed[2]) > 0, `rows were replayed: ${closed[0]}`);
    assert.equal(closed[4], '0', 'nothing dropped');
  });

  test('a spool left by a stopped gateway is replayed by the next one', { timeout: 60_000 }, async () => {
    const cfg = pgConfig('restart-ep');
    await pg.stop('fast');
    let first;
    let a1;
    try {
      a1 = await startAgate(cfg);
      first = await load(a1.base, 'restart-ep', 0, 300);
    } finally {
      await a1?.stop(); // database down: the queue goes to the spool and stays there
    }
    assertAllOk(first, 'requests with the database down');
    const files = fs.readdirSync(cfg.tables.spool_dir).filter((f) => f.startsWith('spool-'));
    assert.ok(files.length >= 1, `spool files kept: ${files}`);
    await pg.start();
    const a2 = await startAgate(cfg);
    try {
      assert.match(a2.logs(), /event=table_spool_found/);
      const clientIds = first.map((r) => r.id);
      await waitFor(async () => Number((await pg.sql("SELECT count(*) FROM endpoint_usage WHERE endpoint_name = 'restart-ep'"))[0][0]) >= clientIds.length,
        WAIT_MS, 'rows of the earlier process replayed');
      assertExactlyOnce(clientIds, await ids('endpoint_usage', "endpoint_name = 'restart-ep'"), 'usage rows replayed by the next process');
      await waitFor(() => fs.readdirSync(cfg.tables.spool_dir).filter((f) => f.startsWith('spool-')).length === 0, WAIT_MS, 'spool files deleted');
    } finally {
      await a2.stop();
    }
  });

  test('a row the database refuses is set aside in rejected.jsonl; the rest of its batch is stored', { timeout: 30_000 }, async () => {
    const cfg = pgConfig('poison-ep');
    const agate = await startAgate(cfg);
    const short = [];
    const long = [];
    try {
      await waitFor(async () => (await pg.sql("SELECT to_regclass('\"poison-ep_payload\"') IS NOT NULL"))[0][0] === 't', WAIT_MS, 'tables created');
      // A narrower column than agate writes: values longer than 8 characters now fail (SQLSTATE 22001).
      await pg.sql('ALTER TABLE "poison-ep_payload" ALTER COLUMN client_request_id TYPE varchar(8)');
      for (let i = 0; i < 6; i++) {
        const cid = i % 2 ? `too-long-client-id-${i}` : `ok-${i}`;
        const res = await http('POST', `${agate.base}/v1/responses`, { body: { model: 'poison-ep', input: 'hello mock:text', client_request_id: cid } });
        assert.equal(res.status, 200);
        (i % 2 ? long : short).push(res.headers.get('x-request-id'));
      }
      await waitFor(async () => Number((await pg.sql("SELECT count(*) FROM endpoint_usage WHERE endpoint_name = 'poison-ep'"))[0][0]) === 6, WAIT_MS, 'usage rows');
      await waitFor(() => /event=table_row_rejected/.test(agate.logs()), WAIT_MS, 'rejection logged');
    } finally {
      await agate.stop();
    }
    assertExactlyOnce(short, await ids('poison-ep_payload'), 'accepted payload rows');
    const rejected = fs.readFileSync(path.join(cfg.tables.spool_dir, 'rejected.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(rejected.map((r) => r.table), long.map(() => 'poison-ep_payload'));
    assertExactlyOnce(long, rejected.map((r) => r.row.databricks_request_id), 'rejected rows kept whole');
    assert.match(agate.logs(), /rows_dropped=0 rows_rejected=3 /);
  });

  test('spool cap reached while the database is down: requests still succeed, the loss is counted and logged', { timeout: 30_000 }, async () => {
    const cfg = pgConfig('full-ep', [], { spool_max_bytes: 65536 });
    await pg.stop('fast');
    const agate = await startAgate(cfg);
    let res;
    try {
      res = await load(agate.base, 'full-ep', 0, 200, { conc: 8 });
      await waitFor(() => /event=table_row_dropped sink=postgres reason=spool_full/.test(agate.logs()), WAIT_MS, 'drop logged');
    } finally {
      await agate.stop();
      await pg.start();
    }
    assertAllOk(res, 'requests while the spool is full');
    const m = /event=table_sink_closed sink=postgres .*rows_spooled=(\d+) rows_dropped=(\d+)/.exec(agate.logs());
    assert.ok(m && Number(m[2]) > 0 && Number(m[1]) > 0, `some rows spooled, the rest dropped and counted: ${m?.[0]}`);
    const size = fs.readdirSync(cfg.tables.spool_dir).filter((f) => f.startsWith('spool-'))
      .reduce((n, f) => n + fs.statSync(path.join(cfg.tables.spool_dir, f)).size, 0);
    assert.ok(size <= 65536, `spool within its cap: ${size}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Shutdown order, backoff on refusal, concurrent schema setup (issue 15)

/** Requests in flight at a gateway (the /metrics request itself excluded). */
async function inFlight(base) {
  const m = await http('GET', `${base}/metrics`);
  return Number(/^agate_requests_active (\d+)$/m.exec(m.text)[1]) - 1;
}

const count = async (q) => Number((await pg.sql(q))[0][0]);

describe('postgres sink: shutdown, refusals, concurrent start', () => {
  test('SIGTERM with the database down and 8 requests in flight: every row reaches the spool (the last one too), rows_dropped=0, the next process stores all', { timeout: 60_000 }, async () => {
    const cfg = pgConfig('last-ep');
    await pg.stop('fast');
    let a1;
    let a2;
    try {
      a1 = await startAgate(cfg);
      // mock:slow streams for ~2 s: all 8 are still running when SIGTERM arrives.
      const pending = Array.from({ length: 8 }, (_, i) => http('POST', `${a1.base}/v1/responses`,
        { body: { model: 'last-ep', input: 'hello mock:slow', client_request_id: `last-${i}` }, timeoutMs: 20_000 }));
      await waitFor(async () => (await inFlight(a1.base)) === 8, 5000, '8 requests in flight', { seen: async () => `${await inFlight(a1.base)} in flight` });
      a1.proc.kill('SIGTERM');
      const res = await Promise.all(pending);
      for (const r of res) assert.equal(r.status, 200, 'each in-flight request finished during the drain');
      const clientIds = res.map((r) => r.headers.get('x-request-id'));
      await a1.stop(); // exit 0 required
      const logs = a1.logs();
      assert.doesNotMatch(logs, /event=table_row_dropped/, 'no row dropped at shutdown');
      const closed = /event=table_sink_closed sink=postgres rows_written=\d+ rows_replayed=\d+ rows_spooled=(\d+) rows_dropped=(\d+)/.exec(logs);
      assert.ok(closed, 'final counters logged');
      assert.equal(closed[2], '0', `rows_dropped in the summary: ${closed[0]}`);
      assert.equal(Number(closed[1]), 16, `8 payload + 8 usage rows spooled: ${closed[0]}`);
      await pg.start();
      a2 = await startAgate(cfg);
      await waitFor(async () => (await count("SELECT count(*) FROM endpoint_usage WHERE endpoint_name = 'last-ep'")) >= 8, WAIT_MS, 'the spooled usage rows replayed',
        { seen: async () => `${await count("SELECT count(*) FROM endpoint_usage WHERE endpoint_name = 'last-ep'")} usage rows` });
      await waitFor(async () => (await count('SELECT count(*) FROM "last-ep_payload"')) >= 8, WAIT_MS, 'the spooled payload rows replayed');
      assertExactlyOnce(clientIds, await ids('last-ep_payload'), 'payload rows of the requests in flight at SIGTERM');
      assertExactlyOnce(clientIds, await ids('endpoint_usage', "endpoint_name = 'last-ep'"), 'usage rows of the requests in flight at SIGTERM');
    } finally {
      if (!pg.running) await pg.start();
      try { await a1?.stop(); } finally { await a2?.stop(); }
    }
  });

  test('a batch refused for permissions (42501) is retried with exponential backoff, then stored once the grant comes', { timeout: 60_000 }, async () => {
    const cfg = pgConfig('perm-ep');
    // Tables and today's partitions first, as the owner.
    const owner = await startAgate(cfg);
    try {
      await waitFor(async () => (await pg.sql("SELECT to_regclass('\"perm-ep_payload\"') IS NOT NULL"))[0][0] === 't', WAIT_MS, 'tables created');
    } finally {
      await owner.stop();
    }
    await pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'limited') THEN CREATE ROLE limited LOGIN; END IF; END $$");
    await pg.sql('GRANT USAGE ON SCHEMA public TO limited');
    await pg.sql('GRANT SELECT ON ALL TABLES IN SCHEMA public TO limited');
    const limited = { ...cfg, log_level: 'debug', tables: { ...cfg.tables, dsn: pg.dsn.replace('agate@', 'limited@') } };
    let agate;
    try {
      agate = await startAgate(limited);
      const r = await http('POST', `${agate.base}/v1/responses`, { body: { model: 'perm-ep', input: 'hello mock:text' } });
      assert.equal(r.status, 200, 'the request itself is unaffected');
      const id = r.headers.get('x-request-id');
      await waitFor(() => /sqlstate 42501/.test(agate.logs()), WAIT_MS, 'the refusal (42501) logged');
      const t0 = Date.now();
      await sleep(4000);
      const waits = [...agate.logs().matchAll(/event=table_db_retry sink=postgres in_ms=(\d+) refused=1/g)].map((m) => Number(m[1]));
      // 100, 200, 400, 800, 1600, 3200 ms...: about 6 attempts in the first ~4-6 s, not one per 100 ms.
      assert.ok(waits.length >= 3 && waits.length <= 8, `retries over ${Date.now() - t0} ms after the first refusal: ${waits}`);
      for (let i = 1; i < waits.length; i++) assert.ok(waits[i] === 2 * waits[i - 1] || waits[i] === 30000, `each wait doubles (up to 30 s): ${waits}`);
      const refusals = (agate.logs().match(/sqlstate 42501/g) ?? []).length;
      assert.ok(refusals <= 2, `the refusal is logged once per outage, not per retry (${refusals} lines)`);
      await pg.sql('GRANT INSERT ON ALL TABLES IN SCHEMA public TO limited');
      await waitFor(async () => (await ids('perm-ep_payload')).includes(id), 20_000, 'the row stored after the grant (next retry within 2x the last wait)');
      await waitFor(async () => (await ids('endpoint_usage', "endpoint_name = 'perm-ep'")).includes(id), 5000, 'its usage row too');
    } finally {
      await agate?.stop();
    }
    assertExactlyOnce([(await ids('perm-ep_payload'))[0]], await ids('perm-ep_payload'), 'one payload row');
  });

  test('two gateways starting at once on an empty database both create the schema safely (advisory lock around CREATE)', { timeout: 60_000 }, async () => {
    const name = 'race-ep';
    let both = [];
    try {
      both = await Promise.all([startAgate(pgConfig(name)), startAgate(pgConfig(name))]);
      for (const a of both) {
        await waitFor(() => /event=table_db_connected/.test(a.logs()), WAIT_MS, 'connected');
      }
      await waitFor(async () => (await pg.sql(`SELECT to_regclass('"${name}_payload"') IS NOT NULL`))[0][0] === 't', WAIT_MS, 'tables created');
      const got = [];
      for (const a of both) {
        const r = await http('POST', `${a.base}/v1/responses`, { body: { model: name, input: 'hello mock:text' } });
        assert.equal(r.status, 200);
        got.push(r.headers.get('x-request-id'));
      }
      await waitFor(async () => (await ids(`${name}_payload`)).length === 2, WAIT_MS, 'both rows stored',
        { seen: async () => `${(await ids(`${name}_payload`)).length} rows` });
      assertExactlyOnce(got, await ids(`${name}_payload`), 'one row per gateway');
      for (const a of both) assert.doesNotMatch(a.logs(), /ddl_failed|event=table_db_down/, 'no DDL failure in either gateway');
      const idx = await count(`SELECT count(*) FROM pg_indexes WHERE tablename = '${name}_payload'`);
      assert.ok(idx >= 4 && idx <= 6, `one set of indexes, not two (${idx})`);
    } finally {
      await stopEach(...both);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// JSONL: kill -9 with fsync "batch"

/** Reads every *.jsonl under dir like tb_jsonl_read: torn last lines and invalid lines skipped. */
function readJsonl(dir) {
  const rows = [];
  let torn = 0;
  let invalid = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.jsonl')) {
        const text = fs.readFileSync(p, 'utf8');
        const lines = text.split('\n');
        const last = lines.pop();
        if (last !== '') torn++;
        for (const l of lines) {
          if (!l.trim()) continue;
          try { rows.push({ ...JSON.parse(l), __file: p }); } catch { invalid++; }
        }
      }
    }
  };
  walk(dir);
  return { rows, torn, invalid };
}

/** agate with our own handle, so a SIGKILL is not reported as an unexpected death. */
async function spawnAgate(config) {
  const dir = makeTempDir('agate-it-cfg-');
  const file = path.join(dir, 'agate.json');
  fs.writeFileSync(file, JSON.stringify(config));
  const proc = spawn(process.env.AGATE_BIN, ['--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  spawned.add(proc);
  proc.once('exit', () => spawned.delete(proc));
  let logs = '';
  proc.stderr.setEncoding('utf8');
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agate did not start:\n${logs}`)), WAIT_MS);
    proc.stderr.on('data', (c) => {
      if (logs.length < 4 << 20) logs += c;
      const m = /event=listening addr=127\.0\.0\.1:(\d+)/.exec(logs);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then(() => { clearTimeout(timer); reject(new Error(`agate exited:\n${logs}`)); });
  });
  return { proc, exited, base: `http://127.0.0.1:${port}`, logs: () => logs, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

describe('jsonl sink', () => {
  test('kill -9 mid-load with fsync "batch": rows before the last batch are readable, a torn line is skipped, a restarted gateway appends cleanly', { timeout: 60_000 }, async () => {
    const tablesDir = makeTempDir('agate-it-tables-');
    const FLUSH = 100;
    const cfg = {
      listen: '127.0.0.1:0',
      endpoints: [{ name: 'crash-ep', adapter: 'chat_completions', upstreams: [{ url: mock.url }], model: 'mock-model' }],
      tables: { sink: 'jsonl', dir: tablesDir, flush_ms: FLUSH, fsync: 'batch', usage_table: true },
    };
    const a1 = await spawnAgate(cfg);
    // Everything answered well before the kill was in a batch that reached the file: a batch
    // waits flush_ms, then one write per file (+ fsync). Allow one more flush period and slack
    // for a slow (sanitized) writer. The kill comes 1.5 s after that window opens.
    const slack = FLUSH * 2 + (SANITIZED ? 1500 : 500);
    const t0 = Date.now();
    let killedAt = 0;
    // The kill waits for a count, not a time: 250 answers settled (older than slack) and at least
    // slack + 1.5 s of load, so a loaded machine only makes the test longer. Bounded: 30 s.
    const doneAt = [];
    let settledSoFar = 0;
    const results = await load(a1.base, 'crash-ep', 0, 20000, {
      conc: 16,
      paceMs: 20, // a few hundred requests/s, mid-load whatever the build
      onDone: () => {
        const now = Date.now();
        doneAt.push(now);
        while (settledSoFar < doneAt.length && doneAt[settledSoFar] < now - slack) settledSoFar++;
        const enough = settledSoFar >= 250 && now - t0 >= slack + 1500;
        if (!killedAt && (enough || now - t0 >= 30_000)) {
          killedAt = now;
          a1.proc.kill('SIGKILL');
        }
      },
      shouldStop: () => killedAt !== 0,
    });
    const fin = await a1.exited;
    a1.cleanup();
    assert.equal(fin.signal, 'SIGKILL');
    const before = results.filter((r) => r.doneAt < killedAt);
    assertAllOk(before, 'requests answered before the kill');
    const settled = before.filter((r) => r.doneAt < killedAt - slack);
    assert.ok(settled.length > 200, `enough requests finished before the kill (250 wanted within 30 s): ${settled.length}`);
    let t = readJsonl(tablesDir);
    assert.equal(t.invalid, 0, 'no garbage line');
    const payload = t.rows.filter((r) => r.__file.includes('crash-ep_payload'));
    const usage = t.rows.filter((r) => r.__file.includes('endpoint_usage'));
    const have = new Set(payload.map((r) => r.databricks_request_id));
    const haveUsage = new Set(usage.map((r) => r.databricks_request_id));
    const lost = settled.filter((r) => !have.has(r.id) || !haveUsage.has(r.id));
    assert.equal(lost.length, 0, `rows of requests answered > ${slack} ms before the kill are on disk; lost ${lost.length}: ${lost.slice(0, 3).map((r) => r.id)}`);
    assert.equal(have.size, payload.length, 'no payload row twice');

    // A crash in the middle of write(2): the newest payload file ends in half a row.
    const files = [...new Set(payload.map((r) => r.__file))].sort((x, y) => fs.statSync(y).mtimeMs - fs.statSync(x).mtimeMs);
    const victim = files[0];
    const sample = fs.readFileSync(victim, 'utf8').split('\n')[0];
    fs.appendFileSync(victim, sample.slice(0, Math.floor(sample.length / 2)));
    t = readJsonl(tablesDir);
    assert.equal(t.torn, 1, 'the torn last line is detected');
    assert.equal(t.rows.filter((r) => r.__file.includes('crash-ep_payload')).length, payload.length, 'and skipped; every complete row still reads');

    // A new process on the same directory: its rows are all there, nothing merges with the torn line.
    const a2 = await spawnAgate(cfg);
    const more = await load(a2.base, 'crash-ep', 0, 120, { conc: 8 });
    a2.proc.kill('SIGTERM');
    const fin2 = await a2.exited;
    a2.cleanup();
    assert.equal(fin2.code, 0, `clean exit after SIGTERM:\n${a2.logs().slice(-2000)}`);
    assertAllOk(more, 'requests to the restarted gateway');
    t = readJsonl(tablesDir);
    assert.equal(t.invalid, 0);
    assert.equal(t.torn, 1, 'only the simulated torn line');
    const after2 = t.rows.filter((r) => r.__file.includes('crash-ep_payload'));
    assertExactlyOnce([...payload.map((r) => r.databricks_request_id), ...more.map((r) => r.id)], after2.map((r) => r.databricks_request_id), 'payload rows after the restart');
    fs.rmSync(tablesDir, { recursive: true, force: true });
  });
});
