// Codex CLI end to end (issue 10): the pinned @openai/codex 0.169.0 runs its whole tool loop —
// a shell command through its exec_command function, a file edit through apply_patch, then the
// final answer — against agate in front of the mock upstream's Codex scenarios
// (bench/mock_codex.c). Each run happens inside `unshare -n` (codex_netns.mjs), so Codex only has
// loopback. Two model names, because Codex sends a different tool set for each:
//   - a local name (unknown to Codex's catalog): function tools, the multi_agent_v1 namespace,
//     web_search; no freeform apply_patch, so the model patches through exec_command;
//   - a catalog name (gpt-5.5): adds the custom (freeform, lark grammar) apply_patch tool and a
//     client tool_search, drops the namespace.
// Passes only if the command really ran (its file exists), the patched file has the expected
// content, and Codex exits 0 printing the final answer.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const RUN_MS = 90_000;   // one codex exec
const OUTER_MS = 150_000; // the whole namespace run (stack start + codex + stop)
const FINAL_TEXT = 'All done: the command ran and hello.txt was created.';
const PATCHED = 'hello from agate \u00e9\u{1F600} "ok"\n';

function canUnshare() {
  if (process.getuid?.() !== 0) return 'needs root for unshare -n';
  try {
    execFileSync('unshare', ['-n', 'true'], { timeout: 5000 });
    execFileSync('ip', ['-V'], { timeout: 5000 });
  } catch (e) {
    return `unshare -n / ip not usable here: ${e.message}`;
  }
  return null;
}

/** Runs codex_netns.mjs under unshare -n; resolves with the object it wrote to result.json. */
function runInNetns(args) {
  return new Promise((resolve, reject) => {
    const p = spawn('unshare', ['-n', process.execPath, path.join(here, 'codex_netns.mjs'), JSON.stringify(args)],
      { cwd: here, env: process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '', err = '';
    p.stdout.setEncoding('utf8').on('data', (c) => { if (out.length < 8 << 20) out += c; });
    p.stderr.setEncoding('utf8').on('data', (c) => { if (err.length < 1 << 20) err += c; });
    const timer = setTimeout(() => {
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`the namespace run did not finish within ${OUTER_MS} ms; stderr:\n${err.slice(-4000)}`));
    }, OUTER_MS);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('exit', (code) => {
      clearTimeout(timer);
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* nothing left in the group */ }
      let res;
      try {
        res = JSON.parse(fs.readFileSync(path.join(args.dir, 'result.json'), 'utf8'));
      } catch (e) {
        return reject(new Error(`no result from the namespace run (exit ${code}: ${e.message}); stdout:\n${out.slice(-2000)}\nstderr:\n${err.slice(-4000)}`));
      }
      if (res.error) return reject(new Error(`namespace run failed: ${res.error}\nstderr:\n${err.slice(-4000)}`));
      resolve(res);
    });
  });
}

function upstreamToolNames(req) {
  return (req.tools || []).map((t) => t.function.name).sort();
}

const skip = canUnshare();

describe('Codex CLI 0.169.0 through agate', { skip: skip || false }, () => {
  // One endpoint serves both names, as the README's config does: Codex's catalog names through
  // an alias glob, anything else through default_endpoint.
  const endpoints = [{ name: 'local-coder', aliases: ['gpt-5*', 'o4-mini'] }];
  const extra = { default_endpoint: 'local-coder' };
  const runs = [
    { model: 'qwen-local', scenario: 'codex_shell', dropped: ['web_search'] },
    { model: 'gpt-5.5', scenario: 'codex_custom', dropped: ['tool_search', 'web_search'] },
  ];
  for (const r of runs) {
    test(`codex exec with model ${r.model}: shell command, apply_patch, final answer`, { timeout: OUTER_MS + 10_000 }, async () => {
      const dir = makeTempDir('agate-codex-');
      try {
        const res = await runInNetns({
          dir, model: r.model, runMs: RUN_MS, endpoints, extra,
          prompt: `Run the setup command, then add hello.txt. mock:${r.scenario}`,
        });
        const run = res.run;
        const diag = `codex exit ${run.code} signal ${run.signal} timedOut ${run.timedOut}\n--- stdout ---\n${run.stdout.slice(-3000)}\n--- stderr ---\n${run.stderr.slice(-3000)}`;
        assert.equal(run.timedOut, false, `codex did not finish within ${RUN_MS} ms\n${diag}`);
        assert.equal(run.code, 0, diag);
        assert.equal(res.files['ran.txt'], 'codex-ran\n', `the shell command did not run\n${diag}`);
        assert.equal(res.files['hello.txt'], PATCHED, `apply_patch did not create hello.txt as asked\n${diag}`);
        assert.ok(run.stdout.includes(FINAL_TEXT), `final answer missing from stdout\n${diag}`);
        // Three model turns: the command, the patch, the answer.
        assert.equal(res.mockStats.requests, 3, diag);

        // What reached the ChatCompletions model on the last turn.
        const up = res.lastUpstream;
        const names = upstreamToolNames(up);
        assert.ok(names.includes('exec_command'), names.join(','));
        assert.ok(!names.includes('web_search') && !names.includes('tool_search'), `hosted tools were sent: ${names}`);
        for (const t of up.tools) assert.match(t.function.name, /^[a-zA-Z0-9_-]{1,64}$/);
        const sys = up.messages.filter((m) => m.role === 'system');
        assert.equal(sys.length, 1, 'the developer messages merge into one system message');
        assert.equal(up.messages[0].role, 'system');
        const tools = up.messages.filter((m) => m.role === 'tool');
        assert.equal(tools.length, 2);
        assert.match(tools[0].content, /exited with code 0/);
        assert.match(tools[1].content, /Success\. Updated the following files:\nA hello\.txt/);
        const calls = up.messages.filter((m) => m.role === 'assistant' && m.tool_calls).flatMap((m) => m.tool_calls);
        assert.deepEqual(calls.map((c) => c.id), ['call_codex_1', 'call_codex_2']);
        if (r.scenario === 'codex_custom') {
          const ap = up.tools.find((t) => t.function.name === 'apply_patch');
          assert.ok(ap, 'the custom apply_patch tool is sent as a function');
          assert.deepEqual(ap.function.parameters.required, ['input']);
          assert.match(ap.function.description, /lark grammar:\nstart: begin_patch hunk\+ end_patch/);
          // Codex's custom_tool_call came back and became a tool call with {"input": ...}.
          assert.equal(calls[1].function.name, 'apply_patch');
          assert.equal(JSON.parse(calls[1].function.arguments).input,
            `*** Begin Patch\n*** Add File: hello.txt\n+${PATCHED}*** End Patch\n`);
        } else {
          // The local tool set carries the multi_agent_v1 namespace: its tools go up flattened.
          assert.ok(names.includes('spawn_agent'), names.join(','));
        }
        // Three table rows: completed, served by the one endpoint, the model echoed, and the hosted
        // tools Codex sent listed as dropped.
        assert.equal(res.rows.length, 3, JSON.stringify(res.rows.map((x) => x.finish_status)));
        for (const row of res.rows) {
          assert.equal(row.status_code, 200);
          assert.equal(row.finish_status, 'completed');
          assert.equal(row.endpoint_name, 'local-coder');
          assert.deepEqual(row.dropped_tools, r.dropped);
          assert.equal(JSON.parse(row.response).model, r.model, 'the client model is echoed');
        }
      } finally {
        if (!process.env.AGATE_IT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

test('the Codex end-to-end runs are not skipped silently', () => {
  // As root (CI and make test) they must run; elsewhere the reason is printed.
  if (skip) console.log(`# Codex CLI tests skipped: ${skip}`);
  assert.equal(process.getuid?.() === 0 ? skip : null, null);
});
