// GET /metrics: Prometheus text with per-endpoint request/response/attempt counters, replica
// availability and table row counters; the route itself is never logged in the tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, waitFor, readTable } from './lib.mjs';

const T = { timeout: 30_000 };

function metric(text, name, labels = '') {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

test('/metrics counts requests by class, attempts and table rows', T, async () => {
  const s = await startStack();
  try {
    const url = `${s.agate.base}/v1/responses`;
    for (let i = 0; i < 3; i++) assert.equal((await http('POST', url, { body: { model: 'chat-agent', input: 'hi' } })).status, 200);
    assert.equal((await http('POST', url, { body: { model: 'chat-agent', input: [] } })).status, 400);
    assert.equal((await http('POST', url, { body: { model: 'chat-agent', input: 'x mock:http500' } })).status, 502);
    await waitFor(() => readTable(s.tablesDir).length >= 5, 5000, 'rows flushed');
    const m = await http('GET', `${s.agate.base}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type'), /^text\/plain/);
    const ep = '{endpoint="chat-agent"}';
    assert.equal(metric(m.text, 'agate_requests_total', ep), 5);
    assert.equal(metric(m.text, 'agate_responses_2xx_total', ep), 3);
    assert.equal(metric(m.text, 'agate_responses_4xx_total', ep), 1);
    assert.equal(metric(m.text, 'agate_responses_5xx_total', ep), 1);
    // The 400 never went upstream; the 500 had no other replica to retry on.
    assert.equal(metric(m.text, 'agate_upstream_attempts_total', ep), 4);
    assert.equal(metric(m.text, 'agate_upstream_retries_total', ep), 0);
    assert.equal(metric(m.text, 'agate_replica_available', `{endpoint="chat-agent",replica="${s.mock.url}"}`), 1);
    assert.equal(metric(m.text, 'agate_table_rows_written_total'), 5);
    assert.equal(metric(m.text, 'agate_table_rows_dropped_total'), 0);
    assert.equal(metric(m.text, 'agate_requests_active'), 1, 'only this /metrics request is in flight');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(readTable(s.tablesDir).length, 5, '/metrics is not logged');
  } finally {
    await s.stop();
  }
});
