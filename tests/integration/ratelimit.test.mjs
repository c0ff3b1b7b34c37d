// Rate limits (INFERENCE_TABLES.md §7.2, issue 13), local buckets: every semantic of §7.2 on real
// requests — the endpoint ceiling over user allowances, the most specific rule wins, several
// groups, calls and tokens, tokens debited when the call ends, Retry-After, both route shapes,
// rate_limit_scope in both tables, and one limit across --workers. Periods are shortened with
// the test-only knob test_only_rate_limit_period_ms (a "minute" lasts that many ms), so no test
// waits a real minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startMock, startAgate, stopEach, makeTempDir, http, crid, waitFor, waitRow, readTable, checkErrorReply } from './lib.mjs';

const T = { timeout: 90_000 };
const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');

/** A mock, a keys file with the given requesters ({name: groups}), an agate with rate_limits. */
async function stack(people, rateLimits, { period = 60_000, args = [], endpointExtra = {} } = {}) {
  const dir = makeTempDir('agate-it-rl-');
  const keys = {};
  const lines = Object.entries(people).map(([name, groups]) => {
    keys[name] = `agk_${crypto.randomBytes(32).toString('hex')}`;
    return JSON.stringify({ key_sha256: sha(keys[name]), requester: name, groups });
  });
  fs.writeFileSync(path.join(dir, 'keys.jsonl'), lines.join('\n') + '\n');
  const mock = await startMock();
  let agate;
  try {
    agate = await startAgate({
      listen: '127.0.0.1:0',
      auth: { keys_file: path.join(dir, 'keys.jsonl') },
      test_only_rate_limit_period_ms: period,
      endpoints: [{ name: 'chat-agent', upstreams: [{ url: mock.url }], model: 'mock-model', rate_limits: rateLimits, ...endpointExtra }],
      tables: { sink: 'jsonl', dir: path.join(dir, 'tables'), flush_ms: 50, usage_table: true },
    }, { args });
  } catch (e) {
    await mock.stop();
    throw e;
  }
  const call = (who, { input = 'hi', tag = crid(who), route = 'responses' } = {}) => {
    const headers = { authorization: `Bearer ${keys[who]}` };
    if (route === 'invocations')
      return http('POST', `${agate.base}/serving-endpoints/chat-agent/invocations`, { headers, body: { input: [{ role: 'user', content: input }], client_request_id: tag } });
    return http('POST', `${agate.base}/v1/responses`, { headers, body: { model: 'chat-agent', input, client_request_id: tag } });
  };
  /** Sequential calls by who until the first 429 (at most max); returns [admitted, the 429]. */
  const until429 = async (who, max = 50) => {
    for (let i = 0; i < max; i++) {
      const r = await call(who);
      if (r.status === 429) return [i, r];
      assert.equal(r.status, 200, `${who} call ${i}: ${r.text}`);
    }
    return [max, null];
  };
  return {
    agate, mock, dir, call, until429, tables: path.join(dir, 'tables'),
    async stop() {
      try { await stopEach(agate, mock); } finally { if (!process.env.AGATE_IT_KEEP) fs.rmSync(dir, { recursive: true, force: true }); }
    },
  };
}

test('endpoint ceiling over user allowances; most specific rule wins; groups; 429 shape, message, scope rows', T, async () => {
  const s = await stack({ alice: [], bob: [], dave: ['eng'], erin: ['g1', 'g2'], fay: ['eng', 'g2'] }, [
    { key: 'user', calls: 2 },                             // per-user default
    { key: 'user', principal: 'alice', calls: 4 },         // explicit beats the default
    { key: 'user_group', principal: 'eng', calls: 3 },     // group beats the default (shared by members)
    { key: 'user_group', principal: 'g1', calls: 1 },
    { key: 'user_group', principal: 'g2', calls: 2 },
    { key: 'endpoint', calls: 14 },                        // global ceiling
  ]);
  try {
    let [n, r] = await s.until429('alice');
    assert.equal(n, 4, 'alice: her explicit rule (4), not the default (2)');
    const b = checkErrorReply(r, { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded', error_code: 'REQUEST_LIMIT_EXCEEDED',
      message: 'Exceeded user:alice rate limit for endpoint chat-agent.' });
    assert.ok(b);
    assert.match(r.headers.get('retry-after') || '', /^\d+$/);
    [n, r] = await s.until429('bob');
    assert.equal(n, 2, 'bob: the per-user default');
    assert.equal(r.json.message, 'Exceeded user_default rate limit for endpoint chat-agent.');
    [n, r] = await s.until429('dave');
    assert.equal(n, 3, 'dave: group eng (3) wins over the default (2)');
    assert.equal(r.json.message, 'Exceeded group:eng rate limit for endpoint chat-agent.');
    // fay is in eng (3, already spent by dave: a group limit is shared) and g2 (2): refused only when over both.
    [n, r] = await s.until429('fay');
    assert.equal(n, 2, 'fay: eng is spent by dave, g2 still has 2');
    [n, r] = await s.until429('erin');
    assert.equal(n, 1, 'erin: g1 (1) + g2 (2, spent by fay) = 1 more');
    // Every refusal is a rejected row carrying the scope that fired.
    const refused = await waitFor(() => {
      const got = readTable(s.tables).filter((x) => x.status_code === 429 && 'response' in x);
      return got.length >= 5 ? got : null;
    }, 8000, 'five 429 payload rows');
    assert.deepEqual(refused.map((x) => x.rate_limit_scope).sort(), ['group:eng', 'group:g1', 'group:eng', 'user:alice', 'user_default'].sort(),
      'fay is refused by her first group (eng), erin by hers (g1), when every group is over');
    for (const x of refused) assert.equal(x.finish_status, 'rejected');
  } finally { await s.stop(); }
});

test('the endpoint ceiling refuses everyone, whatever their own allowance; both route shapes', T, async () => {
  const s = await stack({ alice: [], bob: [] }, [
    { key: 'user', calls: 100 },
    { key: 'endpoint', calls: 3 },
  ]);
  try {
    for (let i = 0; i < 3; i++) assert.equal((await s.call(i % 2 ? 'bob' : 'alice')).status, 200);
    let r = await s.call('bob');
    checkErrorReply(r, { status: 429, error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'Exceeded endpoint rate limit for endpoint chat-agent.' });
    const tag = crid('dbx');
    r = await s.call('alice', { route: 'invocations', tag });
    checkErrorReply(r, { status: 429, error_code: 'REQUEST_LIMIT_EXCEEDED', route: 'databricks' });
    // Retry-After: 3 calls per 60 s "minute" refill one call every 20 s.
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(ra >= 19 && ra <= 20, `Retry-After ${ra} s is the time until one call refills (20 s)`);
    const row = await waitRow(s.tables, (x) => x.client_request_id === tag && 'response' in x, 'payload row of the 429');
    assert.equal(row.rate_limit_scope, 'endpoint');
    assert.equal(row.requester, 'alice');
    const u = await waitRow(path.join(s.tables, 'endpoint_usage'), (x) => x.client_request_id === tag, 'usage row of the 429');
    assert.equal(u.rate_limit_scope, 'endpoint');
    assert.equal(u.status_code, 429);
  } finally { await s.stop(); }
});

test('tokens: admitted while the bucket is non-negative, debited at the end; calls and tokens both; Retry-After', T, async () => {
  // mock "text" reports 12 + 3 = 15 tokens; "slow" streams for ~2 s and reports 12 + 3 too.
  const s = await stack({ alice: [], bob: [] }, [
    { key: 'user', principal: 'alice', tokens: 20 },
    { key: 'user', principal: 'bob', calls: 100, tokens: 10 },
  ]);
  try {
    // Debit after the end: while a slow call runs, nothing is debited yet, so a second is admitted.
    const slowTag = crid('slow');
    const fastTag = crid('fast');
    const slow = s.call('alice', { input: 'x mock:slow', tag: slowTag });
    await waitFor(async () => (await http('GET', `${s.agate.base}/metrics`)).text.includes('agate_requests_active 2'), 5000,
      'the slow call in flight');
    assert.equal((await s.call('alice', { tag: fastTag })).status, 200, 'admitted: 20 tokens left, nothing debited yet');
    assert.equal((await slow).status, 200);
    // Both debited now (their usage rows say how much): 20 - used < 0 refuses.
    const used = (await Promise.all([slowTag, fastTag].map((t) =>
      waitRow(path.join(s.tables, 'endpoint_usage'), (x) => x.client_request_id === t, `usage row ${t}`))))
      .reduce((a, x) => a + x.input_token_count + x.output_token_count, 0);
    assert.ok(used > 20, `the two calls used ${used} tokens`);
    const r = await s.call('alice');
    checkErrorReply(r, { status: 429, message: 'Exceeded user:alice rate limit for endpoint chat-agent.' });
    // The bucket is at 20 - used (plus a little refill) and refills at 20 per 60 s.
    const ra = Number(r.headers.get('retry-after'));
    const want = Math.ceil(((used - 20) * 60) / 20);
    assert.ok(ra <= want && ra >= want - 3, `Retry-After ${ra} s = time until the token bucket is non-negative (${want} s)`);
    // bob: calls has room (100) but tokens (10) is spent after one call: the stricter one decides.
    const bobTag = crid('bob');
    assert.equal((await s.call('bob', { tag: bobTag })).status, 200);
    // The answer reaches the client before the call's finish debits it: wait for its row.
    await waitRow(path.join(s.tables, 'endpoint_usage'), (x) => x.client_request_id === bobTag, 'usage row of bob\'s call');
    const rb = await s.call('bob');
    assert.equal(rb.status, 429, 'tokens refuse although calls have room');
  } finally { await s.stop(); }
});

test('a bucket refills: refused, then admitted again after Retry-After (1 s "minute")', T, async () => {
  const s = await stack({ alice: [] }, [{ key: 'user', calls: 2 }], { period: 1000 });
  try {
    const [n, r] = await s.until429('alice');
    assert.equal(n, 2);
    const ra = Number(r.headers.get('retry-after'));
    assert.equal(ra, 1, 'one call refills in 500 ms: Retry-After rounds up to 1 s');
    let last;
    await waitFor(async () => { last = await s.call('alice'); return last.status === 200; }, 5000, 'admitted again after the refill',
      { seen: () => last?.status });
  } finally { await s.stop(); }
});

test('--workers 2: one limit across the process\'s workers (shared memory)', T, async () => {
  // An "hour" of 60 x 60 s: refill is negligible over the test, so exactly `calls` are admitted.
  const s = await stack({ alice: [] }, [{ key: 'endpoint', calls: 10, renewal_period: 'hour' }], { args: ['--workers', '2'] });
  try {
    const rs = await Promise.all(Array.from({ length: 40 }, () => s.call('alice', { input: 'x mock:bench_slow50' })));
    const ok = rs.filter((r) => r.status === 200).length;
    const limited = rs.filter((r) => r.status === 429).length;
    assert.equal(ok, 10, `admitted ${ok} of 40 (limit 10 shared by both workers)`);
    assert.equal(limited, 30);
    const rows = await waitFor(() => { const x = readTable(s.tables).filter((y) => 'response' in y); return x.length >= 40 ? x : null; }, 8000, '40 rows');
    const workers = new Set(rows.map((x) => x.gateway_instance));
    assert.equal(workers.size, 2, `both workers took requests (${[...workers]})`);
  } finally { await s.stop(); }
});

test('rate_limits validation names the rule', T, async () => {
  const dir = makeTempDir('agate-it-rlcfg-');
  try {
    const check = (rules, auth = { keys_file: '/dev/null' }) => {
      const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.json`);
      fs.writeFileSync(f, JSON.stringify({ ...(auth ? { auth } : {}), endpoints: [{ name: 'e', upstreams: [{ url: 'http://127.0.0.1:1/v1' }], rate_limits: rules }] }));
      return spawnSync(process.env.AGATE_BIN, ['--check-config', f], { encoding: 'utf8' });
    };
    const cases = [
      [Array.from({ length: 21 }, (_, i) => ({ key: 'user', principal: `u${i}`, calls: 1 })), /endpoints\[0\]\.rate_limits: at most 20 rules/],
      [Array.from({ length: 6 }, (_, i) => ({ key: 'user_group', principal: `g${i}`, calls: 1 })), /endpoints\[0\]\.rate_limits\[5\]: at most 5 user_group rules/],
      [[{ key: 'user_group', calls: 1 }], /rate_limits\[0\]\.principal: required with key "user_group"/],
      [[{ key: 'endpoint', principal: 'x', calls: 1 }], /rate_limits\[0\]\.principal: not allowed/],
      [[{ key: 'endpoint' }], /rate_limits\[0\]: needs calls/],
      [[{ key: 'endpoint', calls: 1.5 }], /rate_limits\[0\]: calls and tokens must be integers/],
      [[{ key: 'endpoint', calls: 1, renewal_period: 'day' }], /rate_limits\[0\]\.renewal_period: must be "minute" or "hour"/],
      [[{ key: 'team', calls: 1 }], /rate_limits\[0\]\.key: must be/],
      [[{ key: 'user', calls: 1 }, { key: 'user', calls: 2 }], /rate_limits\[1\]: same key, principal and renewal_period as rate_limits\[0\]/],
    ];
    for (const [rules, want] of cases) {
      const r = check(rules);
      assert.equal(r.status, 1, `${JSON.stringify(rules).slice(0, 80)} refused`);
      assert.match(r.stderr, want);
    }
    const r = check([{ key: 'user', calls: 1 }], false);
    assert.match(r.stderr, /rate_limits\[0\]: key "user" needs the auth block/);
    assert.equal(check([{ key: 'endpoint', calls: 5, tokens: 100, renewal_period: 'hour' }]).status, 0);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});
