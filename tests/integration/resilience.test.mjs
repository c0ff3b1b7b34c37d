// Proxy behaviour with timers and slow peers (PROTOCOL.md §7.2, §8; STYLE.md §8): upstream idle
// and first-event timeouts, SSE keepalives (own and forwarded), client disconnect aborting the
// upstream at once, and backpressure from a client that stops reading.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, baseConfig, crid, sleep, waitFor, sse, postJSON, rowFor,
  checkEventSequence, checkErrorReply, checkOpenAIFraming, checkDatabricksFraming, outputText,
} from './lib.mjs';
import { connect, buildRequest, sseEvents, mockStats, mockOpenConns, startSilentUpstream, rssBytes } from './rawhttp.mjs';

const T = { timeout: 20_000 };
const deltas = (events) => events.filter((e) => e.type === 'response.output_text.delta');

/** Opens a raw streaming POST /v1/responses; returns the connection. */
async function rawStream(port, body, { pause = false } = {}) {
  const c = await connect(port);
  if (pause) c.sock.pause();
  await c.write(buildRequest('POST', '/v1/responses', { body: { model: 'chat-agent', stream: true, ...body }, headers: { Accept: 'text/event-stream' } }));
  return c;
}

describe('(a) upstream stall after the first delta, endpoint timeouts.idle_ms 300', () => {
  let stack;
  before(async () => { stack = await startStack({ endpointExtra: { timeouts: { idle_ms: 300 } } }); });
  after(async () => { await stack?.stop(); });

  test('stream: response.failed + error event upstream_timeout / DEADLINE_EXCEEDED; upstream connection closed', T, async (t) => {
    const baseline = await mockOpenConns(stack.mock);
    const c = await rawStream(stack.agate.port, { input: 'hello mock:stall' });
    try {
      await c.waitText('"type":"response.output_text.delta"', 5000, 'the first delta');
      const deltaAt = Date.now();
      const during = await mockOpenConns(stack.mock);
      assert.ok(during >= 1, `the stalled upstream transfer holds a connection at the mock (open ${during}, baseline ${baseline})`);
      await c.waitResponses(1, 5000);
      const endAt = Date.now();
      const [res] = c.parse().responses;
      assert.equal(res.status, 200, 'committed before the stall');
      assert.match(res.headers['content-type'], /^text\/event-stream/);
      const ev = sseEvents(res.body);
      const seq = checkEventSequence(ev.events);
      assert.equal(seq.terminal.type, 'response.failed');
      assert.equal(seq.texts[0], 'Hi', 'partial output kept');
      assert.equal(seq.terminal.response.error.code, 'server_error');
      assert.ok(seq.error, 'error event');
      assert.equal(seq.error.error.code, 'upstream_timeout', 'nested error.code');
      assert.equal(seq.error.error.type, 'server_error', 'nested error.type');
      assert.equal(seq.error.databricks_output.error.error_code, 'DEADLINE_EXCEEDED');
      const stalled = endAt - deltaAt;
      assert.ok(stalled >= 200 && stalled < 3000, `failure ~300 ms after the last upstream byte (took ${stalled} ms)`);
      const now = await waitFor(async () => {
        const n = await mockOpenConns(stack.mock);
        return n < during ? { n } : null;
      }, 5000, `the mock's open connections to drop below ${during} (the stalled transfer closed)`, { seen: async () => `${await mockOpenConns(stack.mock)} open` });
      assert.ok(now.n <= baseline, `back to baseline ${baseline} (now ${now.n})`);
      t.diagnostic(`stall→failure ${stalled} ms; mock open conns baseline ${baseline}, during ${during}, after ${now.n}`);
    } finally {
      c.destroy();
    }
  });

  test('non-stream: HTTP 504 upstream_timeout / DEADLINE_EXCEEDED; upstream connection closed', T, async () => {
    const baseline = await mockOpenConns(stack.mock);
    const before = await mockStats(stack.mock);
    const t0 = Date.now();
    const pending = postJSON(`${stack.agate.url}/responses`, { model: 'chat-agent', input: 'hello mock:stall' });
    pending.catch(() => {});
    await waitFor(async () => (await mockStats(stack.mock)).requests === before.requests + 1, 3000, 'the mock to get the request');
    const during = await mockOpenConns(stack.mock);
    const r = await pending;
    const took = Date.now() - t0;
    checkErrorReply(r, { status: 504, type: 'server_error', code: 'upstream_timeout', error_code: 'DEADLINE_EXCEEDED' });
    assert.ok(took >= 250 && took < 3000, `504 after the idle timeout (took ${took} ms)`);
    assert.ok(during >= 1, `the stalled transfer held a connection (open ${during})`);
    // The stalled transfer's connection closes (earlier /stats connections of ours may close too,
    // so the state waited for is "fewer than during", then "back to baseline").
    await waitFor(async () => (await mockOpenConns(stack.mock)) < during, 5000, `open connections to drop below ${during}`, { seen: async () => `${await mockOpenConns(stack.mock)} open` });
    await waitFor(async () => (await mockOpenConns(stack.mock)) <= baseline, 5000, 'back to baseline', { seen: async () => `${await mockOpenConns(stack.mock)} open, baseline ${baseline}` });
  });
});

describe('(b) first_event_ms 300 with an upstream that never answers', () => {
  let stack;
  let silent;
  before(async () => {
    silent = await startSilentUpstream();
    stack = await startStack({
      config: (mock, dir) => baseConfig(mock, dir, {
        moreEndpoints: [{ name: 'silent-agent', adapter: 'chat_completions', upstreams: [{ url: silent.url }], model: 'm', timeouts: { first_event_ms: 300 } }],
      }),
    });
  });
  after(async () => {
    try { await stack?.stop(); } finally { await silent?.stop(); }
  });

  for (const stream of [true, false]) {
    test(`${stream ? 'stream' : 'non-stream'}: 504 DEADLINE_EXCEEDED (nothing committed); the upstream connection is dropped`, T, async () => {
      const reqsBefore = silent.requests;
      const t0 = Date.now();
      const body = { model: 'silent-agent', input: 'hello', stream };
      const r = stream ? await sse(`${stack.agate.url}/responses`, body) : await postJSON(`${stack.agate.url}/responses`, body);
      const took = Date.now() - t0;
      assert.equal(silent.requests, reqsBefore + 1, 'the silent upstream received the request');
      if (stream) {
        assert.match(r.headers.get('content-type') || '', /^application\/json/, 'plain JSON, not SSE (nothing was committed)');
        r.json = r.json ?? JSON.parse(r.raw);
        r.text = r.raw;
      }
      checkErrorReply(r, { status: 504, type: 'server_error', code: 'upstream_timeout', error_code: 'DEADLINE_EXCEEDED' });
      assert.ok(took >= 250 && took < 3000, `504 after the 300 ms first-event timeout (took ${took} ms)`);
      await waitFor(() => silent.open === 0, 2000, 'the gateway to close its connection to the silent upstream');
    });
  }
});

describe('(c) SSE keepalive: limits.sse_keepalive_ms 100 with the `slow` scenario', () => {
  let stack;
  before(async () => { stack = await startStack({ extra: { limits: { sse_keepalive_ms: 100 } } }); });
  after(async () => { await stack?.stop(); });

  test('OpenAI route: `: keepalive` comments between 200 ms-apart deltas; the stream still validates', T, async (t) => {
    const s = await sse(`${stack.agate.url}/responses`, { model: 'chat-agent', input: 'hello mock:slow', stream: true });
    checkOpenAIFraming(s);
    const ka = s.comments.filter((l) => l === ': keepalive');
    assert.ok(ka.length >= 1, `keepalive comments present (got ${ka.length}; comments ${JSON.stringify(s.comments.slice(0, 5))})`);
    assert.equal(ka.length, s.comments.length, 'only `: keepalive` comments');
    assert.match(s.raw, /\n\n: keepalive\n\n/, 'keepalive sits between events as its own block');
    const seq = checkEventSequence(s.events);
    assert.equal(seq.terminal.type, 'response.completed');
    assert.equal(seq.texts[0], 'tick '.repeat(10));
    assert.equal(deltas(s.events).length, 10);
    t.diagnostic(`${ka.length} keepalive comments in the slow stream`);
  });

  test('Databricks route: keepalives too, framing and sequence valid, ends with [DONE]', T, async () => {
    const s = await sse(`${stack.agate.base}/serving-endpoints/chat-agent/invocations`, { input: [{ role: 'user', content: 'hello mock:slow' }], stream: true });
    checkDatabricksFraming(s);
    assert.ok(s.comments.filter((l) => l === ': keepalive').length >= 1, 'keepalive comments present');
    const seq = checkEventSequence(s.events, { route: 'databricks' });
    assert.equal(seq.terminal.type, 'response.completed');
    assert.equal(seq.texts[0], 'tick '.repeat(10));
  });
});

describe('default limits (sse_keepalive_ms 15 s)', () => {
  let stack;
  before(async () => { stack = await startStack(); });
  after(async () => { await stack?.stop(); });

  test('(e) client disconnect aborts the upstream at once; row finish_status cancelled', T, async (t) => {
    const baseline = await mockOpenConns(stack.mock);
    const id = crid('disc');
    const c = await rawStream(stack.agate.port, { input: 'hello mock:slow', client_request_id: id });
    let closedAt;
    let requestId;
    try {
      await c.waitText('"type":"response.output_text.delta"', 5000, 'the first delta');
      requestId = c.parse().responses[0]?.headers['x-request-id'];
      const during = await mockOpenConns(stack.mock);
      assert.equal(during, baseline + 1, `the slow transfer holds one upstream connection (baseline ${baseline}, during ${during})`);
      // The mock treats a FIN mid-response as a half-close and only drops the connection when a
      // write fails, i.e. on its second 200 ms tick after the close. Leaving ~100 ms after the
      // first delta's tick keeps that detection lag well inside the 500 ms budget; a gateway that
      // kept the transfer would hold the connection for the remaining ~1.8 s and then pool it.
      await sleep(100);
    } finally {
      c.destroy();
      closedAt = Date.now();
    }
    const drop = await waitFor(async () => {
      const n = await mockOpenConns(stack.mock);
      return n === baseline ? { n, at: Date.now() } : null;
    }, 500, `the mock's open connections to return to ${baseline} within 500 ms of the client leaving`, 20);
    assert.ok(drop.at - closedAt <= 500, `upstream closed ${drop.at - closedAt} ms after the client left`);
    t.diagnostic(`upstream connection gone ${drop.at - closedAt} ms after the client disconnect (baseline ${baseline})`);
    // It stays closed: not merely returned to a pool, not still streaming.
    await sleep(300);
    assert.equal(await mockOpenConns(stack.mock), baseline, 'no upstream connection reappears');
    const row = await rowFor(stack.tablesDir, id, 5000);
    assert.equal(row.finish_status, 'cancelled');
    assert.equal(row.databricks_request_id, requestId);
    // The gateway itself reacted at once: its client_closed log line is stamped at the disconnect.
    const line = stack.agate.logs().split('\n').find((l) => l.includes(`rid=${requestId}`) && l.includes('event=client_closed'));
    assert.ok(line, `event=client_closed logged for ${requestId}`);
    const ts = Date.parse(/ts=(\S+)/.exec(line)[1]);
    assert.ok(Math.abs(ts - closedAt) < 200, `client_closed logged ${ts - closedAt} ms after the disconnect`);
    assert.equal(row.stream, true);
    assert.ok(row.total_duration_ms < 1800, `logged at abandonment (total_duration_ms ${row.total_duration_ms})`);
    if (row.response !== null) assert.ok(outputText(JSON.parse(row.response)).startsWith('tick '), 'partial output logged');
  });

  test('(d) upstream heartbeats are forwarded: `comments` scenario → `: keepalive` in the raw stream', T, async () => {
    const s = await sse(`${stack.agate.url}/responses`, { model: 'chat-agent', input: 'hello mock:comments', stream: true });
    checkOpenAIFraming(s);
    const ka = s.comments.filter((l) => l === ': keepalive');
    assert.ok(ka.length >= 1, `forwarded keepalive comments (raw: ${JSON.stringify(s.raw.slice(0, 600))})`);
    const seq = checkEventSequence(s.events);
    assert.equal(seq.terminal.type, 'response.completed');
    assert.equal(seq.texts[0], 'Hi there!');
    // Control: the same text stream without upstream comments carries none (the gateway's own timer is 15 s).
    const plain = await sse(`${stack.agate.url}/responses`, { model: 'chat-agent', input: 'hello mock:text', stream: true });
    assert.equal(plain.comments.length, 0, 'no comments without upstream heartbeats');
  });
});

describe('(f) backpressure: a client that stops reading during the `big` scenario', () => {
  let stack;
  before(async () => {
    // Under AddressSanitizer the quarantine keeps every freed block resident, so RSS would track
    // allocation churn (~14 MiB for one `long` stream even with a fast reader), not buffering.
    // For this one gateway only, the quarantine is turned off; other builds ignore the option.
    const saved = process.env.ASAN_OPTIONS;
    process.env.ASAN_OPTIONS = (saved ? `${saved}:` : '') + 'quarantine_size_mb=0';
    try {
      stack = await startStack({ extra: { log_level: 'debug' } });
    } finally {
      if (saved === undefined) delete process.env.ASAN_OPTIONS;
      else process.env.ASAN_OPTIONS = saved;
    }
  });
  after(async () => { await stack?.stop(); });

  test('stream completes intact, RSS grows < 16 MiB during the stall, upstream paused and resumed', { timeout: 60_000 }, async (t) => {
    const pid = stack.agate.proc.pid;
    // Warm up (allocator, connection pool) so the baseline is not the first request's setup.
    const warm = await sse(`${stack.agate.url}/responses`, { model: 'chat-agent', input: 'hello mock:text', stream: true });
    assert.equal(checkEventSequence(warm.events).terminal.type, 'response.completed');
    const rss0 = rssBytes(pid);
    // big (~6.6 MB of delta events) is more than loopback socket buffers hold, so the stall reaches
    // agate's own write queue whatever the kernel's buffer autotuning does.
    const c = await rawStream(stack.agate.port, { input: 'hello mock:big' }, { pause: true });
    try {
      let rssMax = rss0;
      const stallEnd = Date.now() + 1500;
      for (let i = 0; i < 40 && Date.now() < stallEnd; i++) {
        await sleep(100);
        rssMax = Math.max(rssMax, rssBytes(pid));
      }
      const logsAtStall = stack.agate.logs();
      c.sock.resume();
      await c.waitResponses(1, 40_000);
      const [res] = c.parse().responses;
      assert.equal(res.status, 200);
      const ev = sseEvents(res.body);
      const seq = checkEventSequence(ev.events);
      assert.equal(seq.terminal.type, 'response.completed', 'terminal response.completed');
      const d = deltas(ev.events);
      assert.equal(d.length, 6000, '6000 deltas');
      const want = ('x'.repeat(999) + ' ').repeat(6000);
      assert.equal(d.map((e) => e.delta).join(''), want, 'deltas concatenate to the full text');
      assert.equal(seq.texts[0], want, 'output_text.done text equals the deltas');
      const grew = rssMax - rss0;
      assert.ok(grew < 16 * 1024 * 1024, `RSS grew ${(grew / 1048576).toFixed(1)} MiB during the stall (limit 16 MiB)`);
      assert.match(logsAtStall, /event=upstream_paused/, 'debug log shows the upstream paused during the stall');
      await waitFor(() => /event=upstream_resumed/.test(stack.agate.logs()), 3000, 'event=upstream_resumed in the gateway log');
      const logs = stack.agate.logs();
      // Pause at the high watermark (256 KiB queued), resume below the low one (64 KiB) (STYLE.md §8).
      const paused = [...logs.matchAll(/event=upstream_paused queued=(\d+)/g)].map((m) => Number(m[1]));
      const resumed = [...logs.matchAll(/event=upstream_resumed queued=(\d+)/g)].map((m) => Number(m[1]));
      assert.ok(paused.length >= 1 && resumed.length >= 1, 'pause/resume lines carry queued=');
      for (const q of paused) assert.ok(q > 256 * 1024, `paused only above the 256 KiB high watermark (queued=${q})`);
      for (const q of resumed) assert.ok(q < 64 * 1024, `resumed only below the 64 KiB low watermark (queued=${q})`);
      t.diagnostic(`RSS ${(rss0 / 1048576).toFixed(1)} MiB → max ${(rssMax / 1048576).toFixed(1)} MiB during the stall; ` +
        `upstream_paused queued=[${paused.join(',')}] / upstream_resumed queued=[${resumed.join(',')}]; ${res.body.length} body bytes`);
    } finally {
      c.destroy();
    }
  });
});

describe('(g) a client that stops reading for good, limits.write_timeout_ms 500', () => {
  let stack;
  before(async () => { stack = await startStack({ extra: { limits: { write_timeout_ms: 500 } } }); });
  after(async () => { await stack?.stop(); });

  test('the connection is closed, the upstream stopped, and the row says cancelled', T, async () => {
    const id = crid('wto');
    const c = await rawStream(stack.agate.port, { input: 'hello mock:xl', client_request_id: id }, { pause: true });
    try {
      const row = await rowFor(stack.tablesDir, id, 8000);
      assert.equal(row.finish_status, 'cancelled');
      assert.equal(row.status_code, 200, 'the stream had committed');
      assert.ok(row.total_duration_ms >= 500, `closed after the write timeout (${row.total_duration_ms} ms)`);
      assert.match(stack.agate.logs(), /event=client_write_timeout/);
      await waitFor(async () => (await mockOpenConns(stack.mock)) <= 1, 5000, 'upstream connection released');
    } finally {
      c.destroy();
    }
  });
});

describe('(g) a slow reader is not the upstream\'s fault: timeouts.idle_ms 300, outlier after 1 failure', () => {
  let stack;
  before(async () => {
    stack = await startStack({
      extra: { log_level: 'debug' },
      endpointExtra: { timeouts: { idle_ms: 300 }, outlier: { consecutive_failures: 1, base_ejection_ms: 60000 } },
    });
  });
  after(async () => { await stack?.stop(); });

  test('client stops reading for 1.5 s (5 idle bounds): stream completes, attempt ok, replica still available', { timeout: 60_000 }, async () => {
    const id = crid('slowreader');
    const c = await rawStream(stack.agate.port, { input: 'hello mock:big', client_request_id: id }, { pause: true });
    try {
      await waitFor(() => /event=upstream_paused/.test(stack.agate.logs()), 10_000, 'agate to pause the upstream for the slow reader');
      await sleep(1500); // paused for backpressure well past idle_ms: the idle timer must not run
      c.sock.resume();
      await c.waitResponses(1, 40_000);
      const [res] = c.parse().responses;
      assert.equal(res.status, 200);
      const seq = checkEventSequence(sseEvents(res.body).events);
      assert.equal(seq.terminal.type, 'response.completed', 'not cut by the idle timeout while paused');
    } finally {
      c.destroy();
    }
    const row = await rowFor(stack.tablesDir, id, 5000);
    assert.equal(row.finish_status, 'completed');
    assert.equal(row.attempts[0].outcome, 'ok');
    const ready = await (await fetch(`${stack.agate.base}/readyz`, { signal: AbortSignal.timeout(5000) })).json();
    assert.equal(ready.endpoints[0].healthy, 1, 'the healthy replica was not ejected because of a slow client');
  });
});
