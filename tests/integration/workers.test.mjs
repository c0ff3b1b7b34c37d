// --workers N: N single-loop processes share the listening socket; the parent restarts a worker
// that dies and forwards SIGTERM (each worker drains and flushes its tables, then all exit 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, makeTempDir, http, readTable, waitFor, sleep } from './lib.mjs';

const T = { timeout: 40_000 };

test('two workers serve, a killed worker is replaced, SIGTERM drains both', T, async () => {
  const mock = await startMock();
  const dir = makeTempDir('agate-workers-');
  const cfgFile = path.join(dir, 'agate.json');
  fs.writeFileSync(cfgFile, JSON.stringify({
    listen: '127.0.0.1:0',
    endpoints: [{ name: 'w', upstreams: [{ url: mock.url }] }],
    tables: { sink: 'jsonl', dir: path.join(dir, 'tables'), flush_ms: 50 },
  }));
  const proc = spawn(process.env.AGATE_BIN, ['--config', cfgFile, '--workers', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  try {
    await waitFor(() => /event=listening addr=127\.0\.0\.1:\d+ .*workers=2/.test(log), 5000, 'listening');
    const port = Number(/addr=127\.0\.0\.1:(\d+)/.exec(log)[1]);
    const url = `http://127.0.0.1:${port}/v1/responses`;
    const burst = async (n) => {
      const rs = await Promise.all(Array.from({ length: n }, () =>
        http('POST', url, { body: { model: 'w', input: 'x mock:bench_slow50' } })));
      for (const r of rs) assert.equal(r.status, 200);
    };
    // Concurrent slow requests spread over both workers (the kernel hands accepts to whichever
    // worker is waiting).
    await burst(16);
    await waitFor(() => readTable(path.join(dir, 'tables')).length >= 16, 5000, 'rows');
    const pids = [...new Set(readTable(path.join(dir, 'tables')).map((r) => r.gateway_instance.split(':').pop()))];
    assert.equal(pids.length, 2, `both workers answered (${pids})`);
    // Kill one worker: the parent starts a new one; service continues.
    process.kill(Number(pids[0]), 'SIGKILL');
    await waitFor(() => /event=worker_died worker=\d/.test(log), 5000, 'death noticed');
    // The replacement is up once a third worker_started line (two at start, one restart) is logged.
    await waitFor(() => (log.match(/event=worker_started worker=\d/g) ?? []).length >= 3, 5000, 'the replacement worker started',
      { seen: () => `${(log.match(/event=worker_started worker=\d/g) ?? []).length} worker_started lines` });
    await burst(8);
    // SIGTERM: every worker drains, flushes and exits; the parent exits 0.
    proc.kill('SIGTERM');
    const fin = await Promise.race([exited, sleep(10_000).then(() => null)]);
    assert.ok(fin, 'parent exited');
    assert.equal(fin.code, 0);
    const rows = readTable(path.join(dir, 'tables'));
    assert.equal(rows.length, 24, 'every request has its row');
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await Promise.race([exited, sleep(3000)]);
    }
    await mock.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
