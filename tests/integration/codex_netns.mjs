// One Codex CLI run against agate + the mock upstream, inside a new network namespace.
//
// Not a test file: codex_cli.test.mjs starts it as `unshare -n node codex_netns.mjs <json args>`,
// so the mock, the gateway and Codex share a namespace that has nothing but loopback, and Codex
// cannot reach any other address. Brings `lo` up, starts the stack, runs `codex exec` once with a
// temporary HOME/CODEX_HOME (analytics, feedback, update checks and plugins off), then writes
// <dir>/result.json and stops everything it started (in finally). Every wait is bounded.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startStack, baseConfig, sleep } from './lib.mjs';

const args = JSON.parse(process.argv[2]);
const { dir, model, prompt, endpoints, extra = {}, runMs } = args;

/** The native Codex binary shipped inside the pinned npm package (nothing is downloaded). */
function codexBinary() {
  const require = createRequire(import.meta.url);
  const triple = { x64: 'x86_64-unknown-linux-musl', arm64: 'aarch64-unknown-linux-musl' }[process.arch];
  const pkg = path.dirname(require.resolve(`@openai/codex-linux-${process.arch}/package.json`));
  return path.join(pkg, 'vendor', triple, 'bin', 'codex');
}

function codexConfig(baseUrl) {
  return `model = "${model}"
model_provider = "agate"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.agate]
name = "agate"
base_url = "${baseUrl}"
wire_api = "responses"
env_key = "AGATE_TEST_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
in_app_updates = false
`;
}

/** Runs codex exec, bounded by runMs: SIGKILL to its whole process group when it overruns. */
function runCodex(bin, home, work) {
  return new Promise((resolve) => {
    const env = {
      PATH: process.env.PATH, HOME: home, CODEX_HOME: path.join(home, '.codex'),
      AGATE_TEST_KEY: 'test-key', LANG: 'C.UTF-8', NO_COLOR: '1',
    };
    const p = spawn(bin, ['exec', '--skip-git-repo-check', '--color', 'never', '-C', work, prompt],
      { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '', stderr = '', timedOut = false;
    p.stdout.setEncoding('utf8').on('data', (c) => { if (stdout.length < 1 << 20) stdout += c; });
    p.stderr.setEncoding('utf8').on('data', (c) => { if (stderr.length < 1 << 20) stderr += c; });
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
    }, runMs);
    p.on('error', (e) => { clearTimeout(timer); resolve({ code: null, signal: null, stdout, stderr: stderr + String(e), timedOut }); });
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Whatever Codex left running in its group (a shell it spawned) goes with it.
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* none left */ }
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

async function main() {
  execFileSync('ip', ['link', 'set', 'lo', 'up'], { timeout: 5000 });
  const home = path.join(dir, 'home');
  const work = path.join(dir, 'work');
  fs.mkdirSync(path.join(home, '.codex'), { recursive: true });
  fs.mkdirSync(work, { recursive: true });
  const stack = await startStack({
    config: (mock, tablesDir) => {
      const base = baseConfig(mock, tablesDir);
      base.endpoints = endpoints.map((e) => ({ adapter: 'chat_completions', upstreams: [{ url: mock.url }], model: 'mock-model', ...e }));
      return { ...base, ...extra };
    },
  });
  const result = {};
  try {
    fs.writeFileSync(path.join(home, '.codex', 'config.toml'), codexConfig(stack.agate.url));
    result.run = await runCodex(codexBinary(), home, work);
    result.files = {};
    for (const f of fs.readdirSync(work)) result.files[f] = fs.readFileSync(path.join(work, f), 'utf8');
    result.mockStats = await stack.mock.stats();
    result.lastUpstream = await stack.mock.lastRequest();
    // The inference table rows of the run (JSONL, flushed every 50 ms).
    await sleep(300);
    result.rows = [];
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.jsonl')) result.rows.push(...fs.readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      }
    };
    walk(stack.tablesDir);
  } finally {
    await stack.stop();
  }
  fs.writeFileSync(path.join(dir, 'result.json'), JSON.stringify(result));
}

main().then(() => process.exit(0), (e) => {
  fs.writeFileSync(path.join(dir, 'result.json'), JSON.stringify({ error: String((e && e.stack) || e) }));
  process.exit(1);
});
