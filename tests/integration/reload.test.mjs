// SIGHUP reloads the config for new requests; requests in flight finish under the old one;
// a broken file is refused and the running config stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startMock, startAgate, makeTempDir, http, sse, waitFor, checkEventSequence, stopEach } from './lib.mjs';

const T = { timeout: 30_000 };

test('SIGHUP: new endpoint served, in-flight stream unaffected, bad file refused', T, async () => {
  const mock = await startMock();
  const tables = makeTempDir('agate-reload-');
  const cfg = (names) => ({
    listen: '127.0.0.1:0',
    endpoints: names.map((name) => ({ name, upstreams: [{ url: mock.url }], model: 'mock-model' })),
    tables: { sink: 'jsonl', dir: tables, flush_ms: 50 },
  });
  const agate = await startAgate(cfg(['first']));
  try {
    const url = `${agate.base}/v1/responses`;
    assert.equal((await http('POST', url, { body: { model: 'second', input: 'hi' } })).status, 404);
    // A slow stream (2 s) starts under the old config and must complete after the reload.
    const inflight = sse(url, { model: 'first', input: 'x mock:slow', stream: true });
    await new Promise((r) => setTimeout(r, 200));
    fs.writeFileSync(agate.configFile, JSON.stringify(cfg(['first', 'second'])));
    agate.proc.kill('SIGHUP');
    await waitFor(() => /event=reloaded/.test(agate.logs()), 5000, 'reload logged');
    const r = await http('POST', url, { body: { model: 'second', input: 'hi' } });
    assert.equal(r.status, 200);
    assert.equal(r.json.model, 'second');
    const s = await inflight;
    assert.equal(s.status, 200);
    checkEventSequence(s.events);
    assert.equal(s.events.at(-1).type, 'response.completed');
    // A broken file is refused: the error is logged and 'second' is still served.
    fs.writeFileSync(agate.configFile, '{"endpoints": [');
    agate.proc.kill('SIGHUP');
    await waitFor(() => /event=reload_failed/.test(agate.logs()), 5000, 'reload failure logged');
    assert.equal((await http('POST', url, { body: { model: 'second', input: 'hi' } })).status, 200);
  } finally {
    await stopEach(agate, mock);
    fs.rmSync(tables, { recursive: true, force: true });
  }
});

test('20 SIGHUP reloads in a row are all applied (a fixed table of 16 old configs refused the 17th)', T, async () => {
  const mock = await startMock();
  const tables = makeTempDir('agate-reload20-');
  const cfg = (i) => ({
    listen: '127.0.0.1:0',
    endpoints: [{ name: `ep${i}`, upstreams: [{ url: mock.url }], model: 'mock-model' }],
    tables: { sink: 'jsonl', dir: tables, flush_ms: 50 },
  });
  let agate;
  try {
    agate = await startAgate(cfg(0));
    const url = `${agate.base}/v1/responses`;
    for (let i = 1; i <= 20; i++) {
      fs.writeFileSync(agate.configFile, JSON.stringify(cfg(i)));
      agate.proc.kill('SIGHUP');
      const want = new RegExp(`event=reloaded config_version=\\S+ reloads=${i}\\b`);
      await waitFor(() => want.test(agate.logs()), 5000, `reload ${i} logged`,
        { seen: () => agate.logs().split('\n').filter((l) => /reload/.test(l)).slice(-2).join(' | ') });
      const r = await http('POST', url, { body: { model: `ep${i}`, input: 'hi' } });
      assert.equal(r.status, 200, `reload ${i}: the new endpoint ep${i} answers`);
      assert.equal((await http('POST', url, { body: { model: `ep${i - 1}`, input: 'hi' } })).status, 404, `reload ${i}: ep${i - 1} is gone`);
    }
    assert.doesNotMatch(agate.logs(), /reload_refused/);
  } finally {
    await stopEach(agate, mock);
    fs.rmSync(tables, { recursive: true, force: true });
  }
});
