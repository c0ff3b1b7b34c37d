// The command line: --help, --version, --check-config (good file, every shipped example, and a
// bad key named by its path), bad flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from './lib.mjs';

const bin = process.env.AGATE_BIN;
const src = process.env.AGATE_SRC || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const T = { timeout: 20_000 };

function run(args, env = process.env) {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 10_000, env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function writeConfig(obj) {
  const f = path.join(makeTempDir('agate-cli-'), 'c.json');
  fs.writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

test('--help and --version', T, () => {
  const h = run(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.out, /usage: agate/);
  assert.match(h.out, /--check-config/);
  // Both upstream protocols and both table sinks are named.
  for (const w of [/ChatCompletions/, /Responses \(adapter responses/, /JSONL/, /PostgreSQL/, /OpenTelemetry traces/]) assert.match(h.out, w);
  const v = run(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.out, /^agate \d+\.\d+\.\d+/);
});

test('unknown flag and stray argument exit 2 with usage', T, () => {
  assert.equal(run(['--nope']).code, 2);
  const r = run(['extra']);
  assert.equal(r.code, 2);
  assert.match(r.err, /unexpected argument 'extra'/);
});

test('every shipped config example passes --check-config', T, () => {
  const dir = path.join(src, 'deploy');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 1, 'deploy/ has config examples');
  for (const f of files) {
    // The container config takes its PostgreSQL DSN from DATABASE_URL, as compose and the pod set it.
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    const env = cfg.tables?.sink === 'postgres' && !cfg.tables.dsn
      ? { ...process.env, DATABASE_URL: 'postgresql://agate@db:5432/agate' } : process.env;
    const r = run(['--check-config', path.join(dir, f)], env);
    assert.equal(r.code, 0, `${f}: ${r.err}`);
    assert.match(r.out, /config ok: \d+ endpoint/);
  }
});

test('--check-config names the offending key', T, () => {
  const base = { endpoints: [{ name: 'a', upstreams: [{ url: 'http://127.0.0.1:1/v1' }] }] };
  const cases = [
    [{ ...base, bogus: 1 }, /config: bogus: unknown key/],
    [{ endpoints: [{ name: 'a', upstreams: [{}] }] }, /endpoints\[0\]\.upstreams\[0\]\.url: required key missing/],
    [{ endpoints: [{ name: 'a', upstreams: [{ url: 'ftp://x' }] }] }, /endpoints\[0\]\.upstreams\[0\]\.url: must start with http/],
    [{ endpoints: [{ name: 'a', upstreams: [{ url: 'http://h/v1' }], params: { temperature: 'hot' } }] }, /endpoints\[0\]\.params\.temperature: must be a number/],
    [{ endpoints: [{ name: 'a', upstreams: [{ url: 'http://h/v1' }], fallbacks: ['zzz'] }] }, /endpoints\[0\]\.fallbacks\[0\]: "zzz" is not another endpoint/],
    ['{"endpoints": [', /config: invalid JSON/],
  ];
  for (const [cfg, re] of cases) {
    const r = run(['--check-config', writeConfig(cfg)]);
    assert.equal(r.code, 1, `exit code for ${re}`);
    assert.match(r.err, re);
  }
  const missing = run(['--check-config', '/nonexistent/agate.json']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /cannot open/);
});

test('a bad config refuses to start (exit 1, message on stderr)', T, () => {
  const r = run(['--config', writeConfig({ endpoints: [] })]);
  assert.equal(r.code, 1);
  assert.match(r.err, /endpoints: must list at least one endpoint/);
});
