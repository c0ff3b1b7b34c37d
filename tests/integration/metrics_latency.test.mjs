// /metrics as a Prometheus server reads it: the whole exposition goes through a real text-format
// parser (parse-prometheus-text-format, a port of Prometheus' own parser), histograms are checked
// for well-formedness (cumulative buckets, +Inf = count), and the latency histograms move as the
// mock's timing scenarios say they must. That parser folds the series of a labelled histogram
// into one (it only handles unlabelled ones), so histogram samples are read line by line through
// the same parser and grouped by their labels here: slow_first_token (800 ms before the first token) lands in
// the TTFT buckets above 0.75 s, slow_delta (120 ms between tokens) in the TPOT buckets above 0.1 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startStack, baseConfig, http, waitFor } from './lib.mjs';

const T = { timeout: 60_000 };

async function scrape(base) {
  const m = await http('GET', `${base}/metrics`);
  assert.equal(m.status, 200);
  let fams;
  assert.doesNotThrow(() => { fams = parsePrometheusTextFormat(m.text); }, 'the Prometheus parser accepts /metrics');
  const byName = new Map(fams.map((f) => [f.name, f]));
  assert.equal(byName.size, fams.length, 'each family appears once');
  // Histogram families: each sample line through the parser, grouped by its non-le labels.
  const lines = m.text.split('\n');
  for (const f of fams) {
    if (f.type !== 'HISTOGRAM') continue;
    const groups = new Map();
    for (const line of lines) {
      const suffix = ['_bucket', '_sum', '_count'].find((x) => line.startsWith(f.name + x + '{') || line.startsWith(f.name + x + ' '));
      if (!suffix) continue;
      const [sample] = parsePrometheusTextFormat(line + '\n')[0].metrics;
      const { le, ...rest } = sample.labels ?? {};
      const key = JSON.stringify(rest);
      if (!groups.has(key)) groups.set(key, { labels: rest, buckets: {}, order: [] });
      const g = groups.get(key);
      if (suffix === '_bucket') {
        g.buckets[le] = sample.value;
        g.order.push(le); // exposition order (object keys would sort integer-like bounds first)
      }
      else g[suffix.slice(1)] = sample.value;
    }
    f.metrics = [...groups.values()];
  }
  return byName;
}

/** The series of family `name` whose labels include `labels`. */
function series(fams, name, labels = {}) {
  const f = fams.get(name);
  assert.ok(f, `family ${name} exists`);
  return f.metrics.find((m) => Object.entries(labels).every(([k, v]) => (m.labels ?? {})[k] === v));
}

function checkHistogram(h, what) {
  const les = h.order;
  assert.equal(les.at(-1), '+Inf', `${what}: last bucket is +Inf`);
  let prev = -1;
  let prevLe = -Infinity;
  for (const le of les) {
    const n = Number(h.buckets[le]);
    const bound = le === '+Inf' ? Infinity : Number(le);
    assert.ok(bound > prevLe, `${what}: bounds ascend (${le})`);
    assert.ok(n >= prev, `${what}: buckets are cumulative at le=${le}`);
    prev = n;
    prevLe = bound;
  }
  assert.equal(Number(h.buckets['+Inf']), Number(h.count), `${what}: +Inf bucket = count`);
}

const bucket = (h, le) => Number(h.buckets[le]);

/* A call is counted when it finishes, which can be a moment after its client got the last byte
 * (the upstream transfer drains its chunked terminator first): scrape until it is in. */
async function scrapeAfter(base, n) {
  let fams;
  await waitFor(async () => {
    fams = await scrape(base);
    const f = fams.get('agate_requests_total');
    const total = (f?.metrics ?? []).reduce((a, m) => a + Number(m.value), 0);
    return total >= n;
  }, 5000, `${n} finished requests counted in /metrics`);
  return fams;
}

async function stream(base, model, scenario) {
  const r = await http('POST', `${base}/v1/responses`, {
    body: { model, input: `go mock:${scenario}`, stream: true },
    timeoutMs: 15_000,
  });
  assert.equal(r.status, 200, `${scenario}: ${r.text.slice(0, 200)}`);
  assert.match(r.text, /response\.completed/);
  return r;
}

test('latency histograms and token counters follow slow_first_token and slow_delta; the parser accepts /metrics', T, async () => {
  const s = await startStack({
    config: (mock, dir) => baseConfig(mock, dir, {
      moreEndpoints: [{ name: 'tpot', upstreams: [{ url: mock.url }], model: 'mock-model' }],
    }),
  });
  try {
    // Before any request: the families exist and the parser reads them.
    let fams = await scrape(s.agate.base);
    for (const n of ['agate_request_duration_seconds', 'agate_time_to_first_token_seconds',
      'agate_time_per_output_token_seconds', 'agate_upstream_attempt_duration_seconds', 'agate_queue_wait_seconds']) {
      assert.equal(fams.get(n).type, 'HISTOGRAM', `${n} is a histogram`);
    }
    assert.equal(Number(series(fams, 'agate_input_tokens_total', { endpoint: 'chat-agent' }).value), 0);
    assert.equal(Number(series(fams, 'agate_replica_ejections_total', { endpoint: 'chat-agent', replica: s.mock.url }).value), 0);

    await stream(s.agate.base, 'chat-agent', 'slow_first_token');
    fams = await scrapeAfter(s.agate.base, 1);
    const ttft = series(fams, 'agate_time_to_first_token_seconds', { endpoint: 'chat-agent' });
    checkHistogram(ttft, 'ttft');
    assert.equal(Number(ttft.count), 1);
    assert.ok(Number(ttft.sum) >= 0.8 && Number(ttft.sum) < 5, `TTFT ~0.8 s, got ${ttft.sum}`);
    assert.equal(bucket(ttft, '0.75'), 0, 'not at or below 0.75 s');
    assert.equal(bucket(ttft, '2.5'), 1, 'within 2.5 s');
    const tpot1 = series(fams, 'agate_time_per_output_token_seconds', { endpoint: 'chat-agent' });
    checkHistogram(tpot1, 'tpot');
    assert.equal(Number(tpot1.count), 1, 'one observation (5 output tokens)');
    assert.equal(bucket(tpot1, '0.05'), 1, 'tokens with no gap after the first: fast per token');

    await stream(s.agate.base, 'chat-agent', 'slow_delta');
    fams = await scrapeAfter(s.agate.base, 2);
    const ttft2 = series(fams, 'agate_time_to_first_token_seconds', { endpoint: 'chat-agent' });
    assert.equal(Number(ttft2.count), 2);
    assert.equal(bucket(ttft2, '0.5'), 1, 'slow_delta: its first token is prompt');
    const tpot = series(fams, 'agate_time_per_output_token_seconds', { endpoint: 'chat-agent' });
    checkHistogram(tpot, 'tpot');
    assert.equal(Number(tpot.count), 2);
    assert.equal(bucket(tpot, '0.1'), 1, 'slow_delta is above 0.1 s per token');
    assert.equal(bucket(tpot, '0.25'), 2, 'and below 0.25 s');
    const dur = series(fams, 'agate_request_duration_seconds', { endpoint: 'chat-agent' });
    checkHistogram(dur, 'duration');
    assert.equal(Number(dur.count), 2);
    assert.ok(Number(dur.sum) >= 0.8 + 0.6, `durations add up (${dur.sum})`);
    const att = series(fams, 'agate_upstream_attempt_duration_seconds', { replica: s.mock.url });
    checkHistogram(att, 'attempt');
    assert.equal(Number(att.count), 2);
    assert.ok(Number(att.sum) >= 1.3, `attempt durations ${att.sum}`);
    assert.equal(Number(series(fams, 'agate_input_tokens_total', { endpoint: 'chat-agent' }).value), 24);
    assert.equal(Number(series(fams, 'agate_output_tokens_total', { endpoint: 'chat-agent' }).value), 11);
    assert.equal(Number(series(fams, 'agate_output_tokens_total', { endpoint: 'tpot' }).value), 0, 'other endpoint untouched');

    // Errors by error_code: one upstream 500 (502 INTERNAL_ERROR), one invalid request.
    assert.equal((await http('POST', `${s.agate.base}/v1/responses`, { body: { model: 'chat-agent', input: 'x mock:http500' } })).status, 502);
    assert.equal((await http('POST', `${s.agate.base}/v1/responses`, { body: { model: 'chat-agent', input: [] } })).status, 400);
    fams = await scrapeAfter(s.agate.base, 4);
    assert.equal(Number(series(fams, 'agate_errors_total', { error_code: 'INTERNAL_ERROR' }).value), 1);
    assert.equal(Number(series(fams, 'agate_errors_total', { error_code: 'INVALID_PARAMETER_VALUE' }).value), 1, 'input: [] is an invalid value');
    // The existing families are still there, with their values.
    assert.equal(Number(series(fams, 'agate_requests_total', { endpoint: 'chat-agent' }).value), 4);
    assert.equal(fams.get('agate_requests_active').type, 'GAUGE');
    assert.equal(fams.get('agate_table_queue_bytes').type, 'GAUGE');
  } finally {
    await s.stop();
  }
});

test('queue waits: a request that waited for a replica slot is counted and its wait observed', T, async () => {
  const s = await startStack({
    config: (mock, dir) => baseConfig(mock, dir, {
      endpointExtra: { upstreams: [{ url: mock.url, max_concurrent: 1 }], queue_timeout_ms: 5000, max_queue: 4 },
    }),
  });
  try {
    // slow holds the only slot ~2 s; the second request must be seen waiting for it (a state,
    // not a timing guess: on a loaded machine a short first stream could end before the second
    // request arrives).
    const first = stream(s.agate.base, 'chat-agent', 'slow');
    await waitFor(async () => (await s.mock.stats()).requests >= 1, 5000, 'the first request upstream');
    const second = stream(s.agate.base, 'chat-agent', 'slow_delta');
    const active = async () => {
      const m = /^agate_requests_active (\d+)/m.exec((await http('GET', `${s.agate.base}/metrics`)).text);
      return m ? Number(m[1]) - 1 : -1; // minus this scrape
    };
    await waitFor(async () => (await active()) === 2 && (await s.mock.stats()).requests === 1, 5000,
      'the second request in flight while the mock has seen only the first (waiting for the slot)',
      { seen: async () => `${await active()} active, ${(await s.mock.stats()).requests} upstream` });
    await Promise.all([first, second]);
    const fams = await scrapeAfter(s.agate.base, 2);
    assert.equal(Number(series(fams, 'agate_queue_waits_total', { endpoint: 'chat-agent' }).value), 1);
    const q = series(fams, 'agate_queue_wait_seconds', { endpoint: 'chat-agent' });
    checkHistogram(q, 'queue wait');
    assert.equal(Number(q.count), 1);
    assert.ok(Number(q.sum) >= 0.2 && Number(q.sum) < 6, `waited for the slot (${q.sum} s)`);
    assert.equal(bucket(q, '0.1'), 0, 'longer than 0.1 s');
  } finally {
    await s.stop();
  }
});
