// Load balancing in front of several real mock replicas (issue 4): distribution per strategy,
// connection reuse, retries on dead/frozen replicas before the first byte, passive ejection and
// readmission, active health checks in /readyz, 429 fallbacks, and no retry after the first byte.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startMock, startAgate, makeTempDir, http, sse, crid, readTable, waitFor, waitRow, sleep, checkErrorReply, stopEach,
} from './lib.mjs';

const T = { timeout: 60_000 };

async function mocks(n, args = []) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await startMock(args));
  return out;
}

function endpoint(name, ms, extra = {}) {
  return { name, adapter: 'chat_completions', upstreams: ms.map((m) => ({ url: m.url, ...(m.weight ? { weight: m.weight } : {}) })), model: 'mock-model', ...extra };
}

async function stack(endpoints, extra = {}) {
  const tablesDir = makeTempDir('agate-lb-tables-');
  const agate = await startAgate({ listen: '127.0.0.1:0', endpoints, tables: { sink: 'jsonl', dir: tablesDir, flush_ms: 50 }, ...extra });
  return { agate, tablesDir };
}

async function ask(agate, model = 'lb', input = 'hi', extraBody = {}) {
  return http('POST', `${agate.base}/v1/responses`, { body: { model, input, client_request_id: crid('lb'), ...extraBody } });
}

async function requestsPer(ms) {
  const out = [];
  for (const m of ms) out.push((await m.stats()).requests);
  return out;
}

/** Requests in flight at the gateway (the /metrics request itself excluded). */
async function active(agate) {
  const m = await http('GET', `${agate.base}/metrics`);
  const v = /^agate_requests_active (\d+)$/m.exec(m.text);
  assert.ok(v, 'agate_requests_active in /metrics');
  return Number(v[1]) - 1;
}

/** Waits (bounded) until the mock has received `n` requests and the gateway has `inflight` in flight. */
async function waitInFlight(agate, mock, n, inflight) {
  await waitFor(async () => (await mock.stats()).requests === n && (await active(agate)) === inflight, 5000,
    `the mock to have ${n} request(s) and the gateway ${inflight} in flight`,
    { seen: async () => `mock requests=${(await mock.stats()).requests}, gateway in flight=${await active(agate)}` });
}

async function stopAll(list) {
  for (const x of list) {
    try { await x.stop(); } catch { /* a replica killed on purpose reports its death here */ }
  }
}

describe('distribution', () => {
  test('round_robin spreads 300 requests exactly evenly over 3 replicas', T, async () => {
    const ms = await mocks(3);
    const { agate } = await stack([endpoint('lb', ms, { strategy: 'round_robin' })]);
    try {
      for (let i = 0; i < 300; i++) assert.equal((await ask(agate)).status, 200);
      assert.deepEqual(await requestsPer(ms), [100, 100, 100]);
    } finally { await stopEach(agate, ...ms); }
  });

  test('weighted 1:2:3 gives 100/200/300 of 600 requests', T, async () => {
    const ms = await mocks(3);
    ms.forEach((m, i) => { m.weight = i + 1; });
    const { agate } = await stack([endpoint('lb', ms, { strategy: 'weighted' })]);
    try {
      for (let i = 0; i < 600; i++) assert.equal((await ask(agate)).status, 200);
      assert.deepEqual(await requestsPer(ms), [100, 200, 300]);
    } finally { await stopEach(agate, ...ms); }
  });

  test('p2c_ewma sends measurably less traffic to a slow replica', T, async () => {
    // Replica 0 answers every request slowly (10 deltas 200 ms apart is too slow for a test:
    // use bench_slow50, 20 deltas 50 ms apart = ~1 s); the others answer at once.
    const slow = await startMock(['--default-scenario', 'bench_slow50']);
    const fast = await mocks(2, ['--default-scenario', 'bench20']);
    const ms = [slow, ...fast];
    const { agate } = await stack([endpoint('lb', ms, { strategy: 'p2c_ewma' })]);
    try {
      // 8 concurrent clients for ~4 s: outstanding requests pile up on the slow replica.
      const deadline = Date.now() + 4000;
      const worker = async () => {
        for (let i = 0; i < 400 && Date.now() < deadline; i++) assert.equal((await ask(agate)).status, 200);
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      const [s, f1, f2] = await requestsPer(ms);
      const total = s + f1 + f2;
      assert.ok(total > 30, `enough requests ran (${total})`);
      assert.ok(s / total < 0.15, `slow replica got ${s} of ${total} (< 15%)`);
    } finally { await stopEach(agate, ...ms); }
  });
});

test('connection reuse: 20 sequential requests to one replica open 1 connection', T, async () => {
  const [m] = await mocks(1);
  const { agate } = await stack([endpoint('lb', [m])]);
  try {
    const before = (await m.stats()).connections;
    for (let i = 0; i < 20; i++) assert.equal((await ask(agate)).status, 200);
    const after = (await m.stats()).connections;
    // +1 for each /stats call of ours (a fresh fetch connection), +1 for agate's pooled one.
    assert.ok(after - before <= 2, `connections opened: ${after - before}`);
  } finally { await stopEach(agate, m); }
});

describe('failures before the first byte are retried elsewhere', () => {
  test('a killed replica costs no request; it is ejected, then readmitted when it returns', T, async () => {
    const ms = await mocks(3);
    // base_ejection_ms 2000: long enough that the ejected state is seen by polling /readyz, not
    // inferred from a request count (a 400 ms ejection could expire before a read after N requests).
    const { agate, tablesDir } = await stack([endpoint('lb', ms, {
      strategy: 'round_robin', retries: 1,
      outlier: { consecutive_failures: 2, base_ejection_ms: 2000, max_ejected_percent: 50 },
    })]);
    const deadPort = ms[0].port;
    const healthy = async () => (await http('GET', `${agate.base}/readyz`)).json.endpoints[0].healthy;
    let revived;
    try {
      ms[0].proc.kill('SIGKILL');
      await ms[0].exited;
      // Phase 1: requests until /readyz shows the dead replica ejected (bounded by time and count).
      const ids = [];
      const deadline = Date.now() + 10_000;
      let h = 3;
      for (let sent = 0; h !== 2; sent++) {
        assert.ok(sent < 100 && Date.now() < deadline, `/readyz shows 2 of 3 healthy within 100 requests and 10 s (sent ${sent}, healthy=${h})`);
        const id = crid('lb-kill');
        ids.push(id);
        assert.equal((await ask(agate, 'lb', 'hi', { client_request_id: id })).status, 200, `request ${sent}`);
        h = await healthy();
      }
      // Phase 2: while ejected, the dead replica is skipped: a request whose /readyz reads before
      // and after both show it ejected made one attempt (one request cannot re-eject it: that
      // takes 2 consecutive failures and its retry goes to another replica).
      const whileEjected = [];
      for (let i = 0; i < 20; i++) {
        const id = crid('lb-ej');
        const before = await healthy();
        assert.equal((await ask(agate, 'lb', 'hi', { client_request_id: id })).status, 200, `ejected-phase request ${i}`);
        if (before === 2 && (await healthy()) === 2) whileEjected.push(id);
        ids.push(id);
      }
      assert.ok(whileEjected.length >= 1, `some requests ran while the replica was ejected (${whileEjected.length})`);
      await waitFor(() => readTable(tablesDir).length >= ids.length, 5000, `${ids.length} rows`, { seen: () => `${readTable(tablesDir).length} rows` });
      const rows = new Map(readTable(tablesDir).map((r) => [r.client_request_id, r]));
      const retried = ids.map((id) => rows.get(id)).filter((r) => r.attempt_count === 2);
      assert.ok(retried.length >= 1, 'at least one request was retried');
      for (const r of retried) {
        assert.equal(r.attempts[0].outcome, 'retry');
        assert.equal(r.attempts[0].error_code, 'TEMPORARILY_UNAVAILABLE');
        assert.equal(r.attempts[1].outcome, 'ok');
        assert.notEqual(r.attempts[0].replica, r.attempts[1].replica);
      }
      for (const id of whileEjected) assert.equal(rows.get(id).attempt_count, 1, `request ${id} sent while ejected made one attempt`);
      // Revive on the same port: after the ejection expires it gets traffic again.
      revived = await startMock(['--port', String(deadPort)]);
      await waitFor(async () => {
        for (let i = 0; i < 6; i++) await ask(agate);
        return (await revived.stats()).requests > 0;
      }, 15_000, 'revived replica gets traffic', { seen: async () => `revived requests=${(await revived.stats()).requests}, healthy=${await healthy()}` });
      await waitFor(async () => (await healthy()) === 3, 5000, '/readyz to show 3 healthy replicas', { seen: async () => `healthy=${await healthy()}` });
    } finally {
      await stopEach(agate, ...ms.slice(1), revived);
      await ms[0].stop().catch(() => {}); // killed on purpose: its stop reports the SIGKILL
    }
  });

  test('a frozen replica (SIGSTOP) times out before the first event and the request succeeds elsewhere', T, async () => {
    const ms = await mocks(2);
    const { agate, tablesDir } = await stack([endpoint('lb', ms, {
      strategy: 'round_robin', retries: 1, timeouts: { first_event_ms: 300 },
    })]);
    try {
      ms[0].proc.kill('SIGSTOP');
      for (let i = 0; i < 4; i++) {
        const r = await ask(agate, 'lb', 'hi', { stream: i % 2 === 0 });
        assert.equal(r.status, 200, `request ${i}`);
      }
      await waitFor(() => readTable(tablesDir).length >= 4, 5000, 'rows');
      const timedOut = readTable(tablesDir).filter((r) => r.attempts.some((a) => a.outcome === 'first_token_timeout'));
      assert.ok(timedOut.length >= 1, 'some attempt hit the first-event timeout and was retried');
      for (const r of timedOut) assert.equal(r.finish_status, 'completed');
    } finally {
      ms[0].proc.kill('SIGCONT');
      await stopEach(agate, ...ms);
    }
  });

  test('no retry after the first byte reached the client', T, async () => {
    const bad = await startMock(['--default-scenario', 'abrupt_close']);
    const good = await startMock();
    const { agate, tablesDir } = await stack([endpoint('lb', [bad, good], { strategy: 'round_robin', retries: 2 })]);
    try {
      const id = crid('noretry');
      // Round robin starts at replica 0 (the abrupt one): the stream commits, then breaks.
      const s = await sse(`${agate.base}/v1/responses`, { model: 'lb', input: 'hi', stream: true, client_request_id: id });
      assert.equal(s.status, 200);
      assert.equal(s.events.at(-2).type, 'response.failed');
      const row = await waitRow(tablesDir, (r) => r.client_request_id === id);
      assert.equal(row.attempt_count, 1);
      assert.equal((await good.stats()).requests, 0, 'the healthy replica never saw the request');
    } finally { await stopEach(agate, bad, good); }
  });
});

describe('429 and fallbacks', () => {
  test('all replicas 429 → the fallback endpoint answers', T, async () => {
    const limited = await mocks(2, ['--default-scenario', 'http429']);
    const spare = await startMock();
    const { agate, tablesDir } = await stack([
      endpoint('lb', limited, { strategy: 'round_robin', retries: 1, fallbacks: ['spare'] }),
      endpoint('spare', [spare]),
    ]);
    try {
      const id = crid('fb');
      const r = await ask(agate, 'lb', 'hi', { client_request_id: id });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('served-model-name'), 'spare');
      assert.equal(r.json.model, 'lb', 'the client model is echoed, not the fallback name');
      const row = await waitRow(tablesDir.replace(/$/, ''), (x) => x.client_request_id === id);
      assert.equal(row.fallback_used, true);
      assert.equal(row.attempt_count, 3);
      assert.deepEqual(row.attempts.map((a) => a.served_entity_name), ['lb', 'lb', 'spare']);
      assert.deepEqual(row.attempts.map((a) => a.status_code), [429, 429, 200]);
    } finally { await stopEach(agate, ...limited, spare); }
  });

  test('all replicas 429 and no fallback → 429 REQUEST_LIMIT_EXCEEDED with Retry-After, both routes', T, async () => {
    const limited = await mocks(2, ['--default-scenario', 'http429']);
    const { agate } = await stack([endpoint('lb', limited, { retries: 1 })]);
    try {
      const r = await ask(agate);
      checkErrorReply(r, { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded', error_code: 'REQUEST_LIMIT_EXCEEDED' });
      assert.equal(r.headers.get('retry-after'), '7');
      const d = await http('POST', `${agate.base}/serving-endpoints/lb/invocations`, { body: { input: 'hi' } });
      checkErrorReply(d, { status: 429, error_code: 'REQUEST_LIMIT_EXCEEDED' });
      assert.equal((await requestsPer(limited)).reduce((a, b) => a + b, 0), 4, 'two attempts per request');
    } finally { await stopEach(agate, ...limited); }
  });
});

test('active health checks drive /readyz', T, async () => {
  const ms = await mocks(2);
  const { agate } = await stack([endpoint('lb', ms, {
    health_check: { path: '/health', interval_ms: 100, timeout_ms: 200, healthy_threshold: 1, unhealthy_threshold: 2 },
  })]);
  try {
    await waitFor(async () => (await http('GET', `${agate.base}/readyz`)).json.endpoints[0].healthy === 2, 3000, 'both healthy');
    ms[0].proc.kill('SIGKILL');
    await waitFor(async () => (await http('GET', `${agate.base}/readyz`)).json.endpoints[0].healthy === 1, 3000, 'one down');
    ms[1].proc.kill('SIGKILL');
    await waitFor(async () => (await http('GET', `${agate.base}/readyz`)).status === 503, 3000, 'not ready');
    const r = await http('GET', `${agate.base}/readyz`);
    assert.equal(r.json.status, 'not_ready');
    assert.equal(r.json.endpoints[0].healthy, 0);
  } finally { try { await agate.stop(); } finally { await stopAll(ms); } } // both SIGKILLed on purpose
});

after(() => {});

test('traffic split: 80/20 over two served entities, recorded per row', T, async () => {
  const a = await startMock();
  const b = await startMock();
  const { agate, tablesDir } = await stack([
    { name: 'split', traffic: [{ endpoint: 'entity-a', percentage: 80 }, { endpoint: 'entity-b', percentage: 20 }] },
    endpoint('entity-a', [a]),
    endpoint('entity-b', [b]),
  ]);
  try {
    const n = 400;
    const seen = { 'entity-a': 0, 'entity-b': 0 };
    for (let i = 0; i < n; i++) {
      const r = await ask(agate, 'split');
      assert.equal(r.status, 200);
      assert.equal(r.json.model, 'split');
      seen[r.headers.get('served-model-name')] += 1;
    }
    // Binomial(400, 0.2): sd = 8, so 80 ± 40 is a 5-sigma band.
    assert.ok(Math.abs(seen['entity-b'] - 80) <= 40, `entity-b got ${seen['entity-b']} of ${n}`);
    assert.equal(seen['entity-a'] + seen['entity-b'], n);
    assert.deepEqual(await requestsPer([a, b]), [seen['entity-a'], seen['entity-b']]);
    await waitFor(() => readTable(tablesDir).length >= n, 5000, 'rows');
    const rows = readTable(tablesDir);
    assert.ok(rows.every((r) => r.endpoint_name === 'split'));
    const ids = new Set(rows.map((r) => `${r.served_entity_name}:${r.served_entity_id}`));
    assert.equal(ids.size, 2, 'one served_entity_id per entity');
  } finally { await stopEach(agate, a, b); }
});

test('max_concurrent without a queue (queue_timeout_ms 0): all at cap → 503 with Retry-After at once', T, async () => {
  const slow = await startMock(['--default-scenario', 'bench_slow50']);
  const { agate } = await stack([endpoint('lb', [slow], { retries: 0, queue_timeout_ms: 0 })].map((e) => ({
    ...e, upstreams: [{ url: slow.url, max_concurrent: 1 }],
  })));
  try {
    const first = ask(agate); // occupies the only slot for ~1 s
    await waitInFlight(agate, slow, 1, 1);
    const r = await ask(agate);
    checkErrorReply(r, { status: 503, error_code: 'TEMPORARILY_UNAVAILABLE' });
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal((await first).status, 200);
  } finally { await stopEach(agate, slow); }
});

test('max_concurrent with a queue: waiting requests start as slots free up, or 503 after queue_timeout_ms', T, async () => {
  const slow = await startMock(['--default-scenario', 'bench_slow50']); // ~1 s per request
  const { agate, tablesDir } = await stack([{
    ...endpoint('lb', [slow]), upstreams: [{ url: slow.url, max_concurrent: 2 }], queue_timeout_ms: 3000, max_queue: 2,
  }]);
  try {
    const t0 = Date.now();
    // 2 run at once, 2 wait in the queue, the 5th finds the queue full: 503 at once.
    const reqs = Array.from({ length: 4 }, () => ask(agate));
    await waitInFlight(agate, slow, 2, 4); // 2 at the mock, 2 in the queue
    const t1 = Date.now();
    const overflow = await ask(agate);
    checkErrorReply(overflow, { status: 503, error_code: 'TEMPORARILY_UNAVAILABLE' });
    assert.ok(Date.now() - t1 < 500, `the overflow was refused without waiting (${Date.now() - t1} ms)`);
    const rs = await Promise.all(reqs);
    for (const r of rs) assert.equal(r.status, 200);
    const took = Date.now() - t0;
    assert.ok(took >= 1800, `the queued pair ran after the first pair (${took} ms)`);
    assert.equal((await slow.stats()).requests, 4, 'never more than the cap in flight, nothing lost');
    await waitFor(() => readTable(tablesDir).length >= 5, 5000, 'rows');
    const queued = readTable(tablesDir).filter((r) => r.status_code === 200 && r.queue_ms >= 700);
    assert.equal(queued.length, 2, 'two rows show the time spent waiting for a slot');
  } finally { await stopEach(agate, slow); }
});

test('max_concurrent queue timeout → 503 in the route shape', T, async () => {
  const slow = await startMock(['--default-scenario', 'bench_slow50']);
  const { agate } = await stack([{
    ...endpoint('lb', [slow]), upstreams: [{ url: slow.url, max_concurrent: 1 }], queue_timeout_ms: 200,
  }]);
  try {
    const first = ask(agate);
    await waitInFlight(agate, slow, 1, 1);
    const t0 = Date.now();
    const r = await http('POST', `${agate.base}/serving-endpoints/lb/invocations`, { body: { input: 'hi' } });
    checkErrorReply(r, { status: 503, error_code: 'TEMPORARILY_UNAVAILABLE' });
    assert.match(r.json.message, /queue timeout/);
    assert.ok(Date.now() - t0 >= 180, 'it waited for the queue timeout');
    assert.equal((await first).status, 200);
  } finally { await stopEach(agate, slow); }
});

test('faults during a concurrent load: SIGKILL one replica and SIGSTOP another mid-run', { timeout: 60_000 }, async () => {
  const ms = await mocks(3, ['--default-scenario', 'bench_slow50']); // ~1 s streams: faults land mid-transfer
  // round_robin keeps sending new requests to the dead and the frozen replica until they are
  // ejected, so retries must save them; the retry budget is opened up (ratio 1) for the same reason
  // (by default it caps retries at 20% of requests in flight, by design).
  const { agate, tablesDir } = await stack([endpoint('lb', ms, {
    strategy: 'round_robin', retries: 2, timeouts: { first_event_ms: 400, idle_ms: 800 },
    outlier: { consecutive_failures: 2, base_ejection_ms: 60000 },
  })], { retry_budget: { ratio: 1, min_concurrent: 3 } });
  const killedUrl = ms[0].url;
  try {
    const results = [];
    const deadline = Date.now() + 4000;
    const worker = async () => {
      for (let i = 0; i < 100 && Date.now() < deadline; i++) {
        const id = crid('fault');
        const r = await ask(agate, 'lb', 'hi', { client_request_id: id });
        results.push({ id, status: r.status });
      }
    };
    const load = Promise.all(Array.from({ length: 12 }, worker));
    await sleep(700);
    ms[0].proc.kill('SIGKILL');
    await sleep(700);
    ms[1].proc.kill('SIGSTOP');
    await load;
    ms[1].proc.kill('SIGCONT');
    assert.ok(results.length >= 30, `enough requests ran (${results.length})`);
    await waitFor(() => readTable(tablesDir).length >= results.length, 8000, 'rows');
    const rows = Object.fromEntries(readTable(tablesDir).map((r) => [r.client_request_id, r]));
    const failed = results.filter((x) => x.status !== 200);
    for (const f of failed) {
      // Only a request whose upstream had already started answering may fail (no retry after
      // that point): its last attempt got the upstream's 200 before the replica died.
      const at = rows[f.id].attempts.at(-1);
      assert.equal(at.status_code, 200, `request ${f.id} failed (${f.status}) without having started: ${JSON.stringify(rows[f.id].attempts)}`);
    }
    const retried = Object.values(rows).filter((r) => r.attempt_count > 1 && r.status_code === 200);
    assert.ok(retried.length >= 1, 'some requests were saved by a retry');
    assert.ok(Object.values(rows).some((r) => r.attempts.some((a) => a.outcome === 'first_token_timeout')),
      'the frozen replica hit the first-event timeout');
    const m = await http('GET', `${agate.base}/metrics`);
    assert.match(m.text, new RegExp(`agate_replica_available\\{endpoint="lb",replica="${killedUrl.replace(/[.]/g, '\\.')}"\\} 0`),
      'the killed replica is ejected');
  } finally {
    try { ms[1].proc.kill('SIGCONT'); } catch { /* gone */ }
    try { await agate.stop(); } finally { await stopAll(ms); } // ms[0] was SIGKILLed on purpose
  }
});
