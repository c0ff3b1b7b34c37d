// Harness for agate's integration and conformance tests (node:test + the openai SDK).
//
// Everything here is bounded: every wait has a timeout the caller states, every loop a count limit,
// every spawned process is killed in stop() (SIGTERM, then SIGKILL after STOP_GRACE_MS) and, as a last
// resort, when this test process exits.
//
// Environment: AGATE_BIN (gateway binary), MOCK_BIN (bench/mock_upstream), AGATE_SRC (repo root;
// optional). Set AGATE_IT_VERBOSE=1 to print the gateway's and mock's stderr when they stop, and
// AGATE_IT_KEEP=1 to keep the temporary directories (configs and inference tables).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after as afterFile } from 'node:test';

export const WAIT_MS = 10_000; // default bound for a single request or wait when the caller names none
const LOG_CAP = 2 * 1024 * 1024; // keep at most this many bytes of child stderr

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

// Safety net for a `finally` that missed a process: once the file's tests and hooks are over, a
// gateway or mock still alive would keep the runner waiting on its pipes until ctest's timeout.
// After the last hook a timer that does not hold the process open kills whatever is left and fails
// the file naming it; with nothing left, the process exits before the timer fires.
const LEFTOVER_GRACE_MS = 15_000;
afterFile(() => {
  setTimeout(() => {
    if (live.size === 0) return;
    const left = [...live].map((p) => `${p.agateLabel ?? 'process'} pid ${p.pid}`);
    for (const p of live) {
      try { p.kill('SIGKILL'); } catch { /* already gone */ }
    }
    process.stderr.write(`\n!!! processes left running after the tests (a finally did not stop them): ${left.join(', ')}\n`);
    process.exitCode = 1;
  }, LEFTOVER_GRACE_MS).unref();
});

function requireBin(name) {
  const bin = process.env[name];
  if (!bin) throw new Error(`${name} is not set (CMake passes it; run via ctest or export it)`);
  if (!fs.existsSync(bin)) throw new Error(`${name}=${bin} does not exist (build it first)`);
  return bin;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// How long stop() waits for a clean exit after SIGTERM before SIGKILL (which fails the test). A
// clean agate exit may legitimately take: a call's upstream drain (1 s) + the PostgreSQL sink's
// final flush (up to 2 s) + sanitizer exit checks, on a loaded 2-core machine; 3 s was too tight.
const STOP_GRACE_MS = 10_000;

/**
 * Polls fn() until it returns a truthy value (returned) or `ms` elapse (throws). The bound is the
 * caller's, never shortened. The error names `what` and what was seen: the last value fn returned
 * (or opts.seen(), when given, e.g. a count or a state read at the deadline) and fn's last error.
 * opts: an interval in ms (number) or {intervalMs, seen}.
 */
export async function waitFor(fn, ms = 5000, what = 'condition', opts = {}) {
  const { intervalMs = 25, seen } = typeof opts === 'number' ? { intervalMs: opts } : opts;
  const deadline = Date.now() + ms;
  const maxIter = Math.ceil(ms / intervalMs) + 2;
  let lastErr;
  let last;
  for (let i = 0; i < maxIter; i++) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { lastErr = e; }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  let saw;
  try { saw = seen ? await seen() : JSON.stringify(last); } catch (e) { saw = `(seen() failed: ${e.message})`; }
  throw new Error(`timed out after ${ms} ms waiting for ${what}; last seen: ${saw}` + (lastErr ? ` (last error: ${lastErr.message})` : ''));
}

// Spawns a child, collects stderr/stdout (capped), calls onLine(stream, line) for each line and
// resolves when onLine returns a non-undefined value. Rejects if the child exits first or on timeout.
function spawnAndWait(bin, args, label, onLine, timeoutMs = WAIT_MS) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  proc.agateLabel = label;
  live.add(proc);
  const logs = { stdout: '', stderr: '' };
  let stopping = false;
  let unexpected = null;
  let readyOk = false;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    live.delete(proc);
    if (!stopping && readyOk) {
      // Died while tests were using it: say so at once, with its last log lines.
      unexpected = { code, signal };
      process.stderr.write(`\n!!! ${label} exited unexpectedly (code ${code}, signal ${signal}); its stderr ends with:\n${tail(logs.stderr, 80)}\n`);
    }
    resolve({ code, signal });
  }));
  proc.exitInfo = null;
  exited.then((info) => { proc.exitInfo = info; });
  let settled = false;
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      reject(new Error(`${label} did not report readiness within ${timeoutMs} ms\n--- stderr ---\n${tail(logs.stderr)}\n--- stdout ---\n${tail(logs.stdout)}`));
    }, timeoutMs);
    const partial = { stdout: '', stderr: '' };
    for (const which of ['stdout', 'stderr']) {
      proc[which].setEncoding('utf8');
      proc[which].on('data', (chunk) => {
        if (logs[which].length < LOG_CAP) logs[which] += chunk;
        if (settled) return;
        partial[which] += chunk;
        let nl;
        let guard = 0;
        while ((nl = partial[which].indexOf('\n')) >= 0 && guard++ < 10_000) {
          const line = partial[which].slice(0, nl);
          partial[which] = partial[which].slice(nl + 1);
          const v = onLine(which, line);
          if (v !== undefined && !settled) {
            settled = true;
            clearTimeout(timer);
            readyOk = true;
            resolve(v);
            return;
          }
        }
      });
    }
    proc.once('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${label} failed to start: ${err.message}`));
    });
    exited.then(({ code, signal }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${label} exited before it was ready (code ${code}, signal ${signal})\n--- stderr ---\n${tail(logs.stderr)}\n--- stdout ---\n${tail(logs.stdout)}`));
    });
  });
  const stop = async () => {
    stopping = true;
    if (proc.exitCode === null && proc.signalCode === null) {
      try { proc.kill('SIGTERM'); } catch { /* gone */ }
      let timer;
      const grace = new Promise((r) => { timer = setTimeout(() => r(null), STOP_GRACE_MS); });
      const t = await Promise.race([exited, grace]);
      clearTimeout(timer); // a pending grace timer would keep the test process alive
      if (t === null) {
        try { proc.kill('SIGKILL'); } catch { /* gone */ }
        await Promise.race([exited, sleep(2000)]);
      }
    }
    if (process.env.AGATE_IT_VERBOSE) {
      process.stderr.write(`\n===== ${label} stderr =====\n${tail(logs.stderr, 200)}\n`);
    }
    if (unexpected) {
      throw new Error(`${label} died during the tests (code ${unexpected.code}, signal ${unexpected.signal}); stderr tail:\n${tail(logs.stderr, 40)}`);
    }
    // A clean shutdown exits 0; anything else (a sanitizer's leak report at exit, a drain that
    // needed SIGKILL) is a failure the tests must see.
    const fin = await exited;
    if (fin.code !== 0) {
      throw new Error(`${label} did not shut down cleanly (code ${fin.code}, signal ${fin.signal}); stderr tail:\n${tail(logs.stderr, 40)}`);
    }
    return proc.exitInfo;
  };
  /** Ends the child on purpose (e.g. SIGKILL a dependency mid-load): not a failure of stop(). */
  const kill = async (signal = 'SIGKILL') => {
    stopping = true;
    if (proc.exitCode === null && proc.signalCode === null) {
      try { proc.kill(signal); } catch { /* gone */ }
    }
    await Promise.race([exited, sleep(STOP_GRACE_MS)]);
  };
  return { proc, logs, ready, stop, exited, kill };
}

function tail(s, lines = 60) {
  const a = s.split('\n');
  return a.slice(Math.max(0, a.length - lines)).join('\n');
}

/** Starts bench/mock_upstream on an ephemeral loopback port. */
export async function startMock(extraArgs = []) {
  const bin = requireBin('MOCK_BIN');
  const h = spawnAndWait(bin, ['--port', '0', ...extraArgs], 'mock_upstream', (which, line) => {
    if (which !== 'stdout') return undefined;
    const m = /^listening (\d+)\s*$/.exec(line);
    return m ? Number(m[1]) : undefined;
  });
  let port;
  try {
    port = await h.ready;
  } catch (e) {
    await h.stop();
    throw e;
  }
  const base = `http://127.0.0.1:${port}`;
  return {
    port,
    base,
    url: `${base}/v1`,
    proc: h.proc,
    exited: h.exited,
    logs: () => h.logs.stderr,
    stop: h.stop,
    /** Parsed body of the most recent chat request the mock received. */
    async lastRequest() {
      const r = await fetch(`${base}/last-request`, { signal: AbortSignal.timeout(WAIT_MS) });
      const text = await r.text();
      assert.equal(r.status, 200, `mock /last-request returned ${r.status}: ${text}`);
      return JSON.parse(text);
    },
    async stats() {
      const r = await fetch(`${base}/stats`, { signal: AbortSignal.timeout(WAIT_MS) });
      return r.json();
    },
  };
}

/**
 * Starts a throwaway redis-server on loopback (no persistence). port: a given one (to restart on
 * the same address), else a free ephemeral one. Resolves once it accepts connections.
 */
export async function startRedis(port) {
  const bin = process.env.REDIS_SERVER || 'redis-server';
  const p = port ?? await deadPort();
  const h = spawnAndWait(bin, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--daemonize', 'no'], 'redis-server', (which, line) =>
    (/Ready to accept connections/.test(line) ? true : undefined));
  try {
    await h.ready;
  } catch (e) {
    await h.stop().catch(() => {});
    throw e;
  }
  return { port: p, url: `redis://127.0.0.1:${p}`, proc: h.proc, logs: () => h.logs.stdout + h.logs.stderr, stop: h.stop, kill: h.kill };
}

/**
 * Stops every given process handle (undefined/null skipped), each even when an earlier one threw,
 * then rethrows the first failure: a `finally` that calls this never leaves a process behind.
 */
export async function stopEach(...items) {
  let first = null;
  for (const x of items) {
    if (!x) continue;
    try { await x.stop(); } catch (e) { first ??= e; }
  }
  if (first) throw first;
}

export function makeTempDir(prefix = 'agate-it-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A loopback port that nothing listens on (bound then released). */
export async function deadPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The standard config: endpoint "chat-agent" (chat_completions adapter) in front of the mock,
 * JSONL tables in a temp dir flushed every 50 ms. `extra` is merged at top level; `endpointExtra`
 * into the endpoint; `moreEndpoints` appended.
 */
export function baseConfig(mock, tablesDir, { extra = {}, endpointExtra = {}, moreEndpoints = [] } = {}) {
  return {
    listen: '127.0.0.1:0',
    endpoints: [
      {
        name: 'chat-agent',
        adapter: 'chat_completions',
        upstreams: [{ url: mock.url }],
        model: 'mock-model',
        params: { temperature: 0.2 },
        ...endpointExtra,
      },
      ...moreEndpoints,
    ],
    tables: { sink: 'jsonl', dir: tablesDir, flush_ms: 50 },
    ...extra,
  };
}

/** Writes config to a temp dir and starts AGATE_BIN --config <file> [args]; resolves once listening. */
export async function startAgate(config, { args = [] } = {}) {
  const bin = requireBin('AGATE_BIN');
  const dir = makeTempDir('agate-it-cfg-');
  const file = path.join(dir, 'agate.json');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  const h = spawnAndWait(bin, ['--config', file, ...args], 'agate', (which, line) => {
    if (which !== 'stderr' && which !== 'stdout') return undefined;
    if (!/event=listening/.test(line)) return undefined;
    const m = /addr=127\.0\.0\.1:(\d+)/.exec(line);
    return m ? Number(m[1]) : undefined;
  });
  let port;
  try {
    port = await h.ready;
  } catch (e) {
    await h.stop();
    throw e;
  }
  const base = `http://127.0.0.1:${port}`;
  return {
    port,
    base,
    url: `${base}/v1`,
    configFile: file,
    proc: h.proc,
    logs: () => h.logs.stderr,
    async stop() {
      try {
        return await h.stop();
      } finally {
        if (!process.env.AGATE_IT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    /** Ends it on purpose (SIGKILL by default: a crash), not a failure; stop() after it is a no-op. */
    async kill(signal = 'SIGKILL') {
      await h.kill(signal);
      if (!process.env.AGATE_IT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
      this.stop = async () => {};
    },
  };
}

/**
 * Starts a mock and a gateway in front of it. Returns {mock, agate, tablesDir, stop}.
 * opts.config(mock, tablesDir) may return a full config instead of baseConfig.
 */
export async function startStack(opts = {}) {
  const mock = await startMock();
  const tablesDir = makeTempDir('agate-it-tables-');
  let agate;
  try {
    const cfg = opts.config ? await opts.config(mock, tablesDir) : baseConfig(mock, tablesDir, opts);
    agate = await startAgate(cfg);
  } catch (e) {
    await mock.stop();
    throw e;
  }
  return {
    mock,
    agate,
    tablesDir,
    async stop() {
      try {
        await agate.stop(); // throws if the gateway died during the tests
      } finally {
        await mock.stop();
        if (!process.env.AGATE_IT_KEEP) fs.rmSync(tablesDir, { recursive: true, force: true });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

let cridCounter = 0;
/** A fresh client_request_id for correlating table rows. */
export function crid(tag = 'it') {
  cridCounter += 1;
  return `${tag}-${process.pid}-${Date.now().toString(36)}-${cridCounter}`;
}

/**
 * One HTTP request with a bounded time. body: object (sent as JSON), string or Buffer.
 * Returns {status, headers, text, json (or undefined), bytes}.
 */
export async function http(method, url, { body, headers = {}, timeoutMs = WAIT_MS, contentType } = {}) {
  const h = { ...headers };
  let payload;
  if (body !== undefined) {
    if (typeof body === 'string' || Buffer.isBuffer(body)) payload = body;
    else payload = JSON.stringify(body);
    if (contentType !== null) h['content-type'] = contentType ?? 'application/json';
  }
  const res = await fetch(url, { method, headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs) });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json, bytes };
}

export const postJSON = (url, body, opts = {}) => http('POST', url, { ...opts, body });

/**
 * Incremental SSE parser (WHATWG rules: LF, CRLF or CR line ends; ':' comments; 'field: value'
 * with one optional space). Returns frames [{event, data, id, retry, other}] for every dispatched
 * event (an event is dispatched at a blank line when it has data), plus the comment lines.
 * Also reports "empty dispatches": blank-line-terminated blocks that had fields but no data.
 */
export function parseSSE(text) {
  const frames = [];
  const comments = [];
  let emptyDispatches = 0;
  const lines = text.split(/\r\n|\r|\n/);
  // The last element is '' after a final line end, or a partial line: neither is dispatched.
  const complete = lines.slice(0, -1);
  let cur = null;
  for (const line of complete) {
    if (line === '') {
      if (cur) {
        if (cur.dataLines.length) {
          frames.push({ event: cur.event, data: cur.dataLines.join('\n'), id: cur.id, retry: cur.retry, other: cur.other });
        } else {
          emptyDispatches += 1;
        }
      }
      cur = null;
      continue;
    }
    if (line.startsWith(':')) { comments.push(line); continue; }
    cur ??= { event: undefined, dataLines: [], id: undefined, retry: undefined, other: [] };
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') cur.dataLines.push(value);
    else if (field === 'event') cur.event = value;
    else if (field === 'id') cur.id = value;
    else if (field === 'retry') cur.retry = value;
    else cur.other.push(line);
  }
  return { frames, comments, emptyDispatches, trailing: cur !== null };
}

/**
 * POSTs a streaming request and reads the whole SSE body (bounded). Returns
 * {status, headers, raw, bytes, frames, events (parsed JSON, '[DONE]' excluded), done (saw [DONE]),
 *  comments, emptyDispatches, json (if the reply was not SSE)}.
 */
export async function sse(url, body, { headers = {}, timeoutMs = WAIT_MS } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const raw = bytes.toString('utf8');
  const out = { status: res.status, headers: res.headers, raw, bytes, frames: [], events: [], done: false, comments: [], emptyDispatches: 0 };
  const ct = res.headers.get('content-type') || '';
  if (!ct.startsWith('text/event-stream')) {
    try { out.json = JSON.parse(raw); } catch { out.json = undefined; }
    return out;
  }
  const p = parseSSE(raw);
  out.frames = p.frames;
  out.comments = p.comments;
  out.emptyDispatches = p.emptyDispatches;
  out.trailing = p.trailing;
  let afterDone = 0;
  for (const f of p.frames) {
    if (out.done) { afterDone += 1; continue; }
    if (f.data === '[DONE]') { out.done = true; continue; }
    out.events.push(JSON.parse(f.data));
  }
  out.framesAfterDone = afterDone;
  return out;
}

/**
 * Opens a stream and reads events until stopWhen(events) is true, then aborts the connection.
 * Returns the events read so far and the response headers.
 */
export async function sseUntil(url, body, stopWhen, { timeoutMs = WAIT_MS } = {}) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('sseUntil timeout')), timeoutMs);
  const events = [];
  let headers;
  let status;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal: ac.signal,
    });
    headers = res.headers;
    status = res.status;
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (let i = 0; i < 100_000; i++) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let sep;
      while ((sep = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        if (data && data !== '[DONE]') events.push(JSON.parse(data));
      }
      if (stopWhen(events)) break;
    }
    ac.abort();
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  return { status, headers, events };
}

// ---------------------------------------------------------------------------------------------
// Inference tables

/** Reads every *.jsonl under dir (recursively); returns parsed rows (torn last line skipped). */
export function readTable(dir) {
  const rows = [];
  const files = [];
  const walk = (d, depth) => {
    if (depth > 8) return;
    let ents;
    try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.isFile() && e.name.endsWith('.jsonl')) files.push(p);
    }
  };
  walk(dir, 0);
  for (const file of files) {
    let text;
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (line.trim() === '') continue;
      const isLast = i === lines.length - 1; // no trailing newline: may be torn
      let row;
      try {
        row = JSON.parse(line);
      } catch (e) {
        if (isLast) continue;
        throw new Error(`bad JSONL line ${i + 1} in ${file}: ${e.message}`);
      }
      Object.defineProperty(row, '__file', { value: path.relative(dir, file), enumerable: false });
      rows.push(row);
    }
  }
  return rows;
}

/** Waits for exactly-one row matching pred; returns it. */
export async function waitRow(dir, pred, what = 'table row', ms = 8000) {
  return waitFor(() => {
    const rows = readTable(dir).filter(pred);
    return rows.length ? rows[0] : null;
  }, ms, what, 50);
}

export const rowFor = (dir, clientRequestId, ms) =>
  waitRow(dir, (r) => r.client_request_id === clientRequestId, `table row with client_request_id=${clientRequestId}`, ms);

export const rowForRequestId = (dir, requestId, ms) =>
  waitRow(dir, (r) => r.databricks_request_id === requestId, `table row with databricks_request_id=${requestId}`, ms);

// ---------------------------------------------------------------------------------------------
// Wire-protocol checks (PROTOCOL.md §4.3, §5.3, §9)

export const LIFECYCLE = new Set(['response.created', 'response.in_progress', 'response.completed', 'response.incomplete', 'response.failed']);
export const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);
export const ITEM_STATUSES = new Set(['in_progress', 'completed', 'incomplete']);
export const KNOWN_EVENT_TYPES = new Set([
  'response.created', 'response.in_progress', 'response.output_item.added', 'response.output_item.done',
  'response.content_part.added', 'response.content_part.done', 'response.output_text.delta', 'response.output_text.done',
  'response.refusal.delta', 'response.refusal.done', 'response.function_call_arguments.delta',
  'response.function_call_arguments.done', 'response.reasoning_summary_part.added', 'response.reasoning_summary_part.done',
  'response.reasoning_summary_text.delta', 'response.reasoning_summary_text.done', 'response.reasoning_text.delta',
  'response.reasoning_text.done', 'response.output_text.annotation.added',
  'response.completed', 'response.incomplete', 'response.failed', 'error',
]);
export const RESPONSE_REQUIRED_KEYS = ['id', 'object', 'created_at', 'status', 'error', 'incomplete_details', 'instructions',
  'model', 'tools', 'output', 'parallel_tool_calls', 'metadata', 'tool_choice', 'temperature', 'top_p', 'usage'];

/** Checks a full Responses object (§3). */
export function checkResponseObject(r, where = 'response') {
  assert.equal(typeof r, 'object', `${where} is an object`);
  for (const k of RESPONSE_REQUIRED_KEYS) assert.ok(Object.hasOwn(r, k), `${where} has key ${k}`);
  assert.equal(r.object, 'response', `${where}.object`);
  assert.match(r.id, /^resp_/, `${where}.id starts with resp_`);
  assert.ok(Number.isInteger(r.created_at), `${where}.created_at is an integer`);
  assert.ok(!Object.hasOwn(r, 'output_text'), `${where} must not carry the SDK-computed output_text`);
  assert.ok(Array.isArray(r.output), `${where}.output is an array`);
  const ids = new Set();
  for (const [i, item] of r.output.entries()) {
    checkItem(item, `${where}.output[${i}]`);
    assert.ok(!ids.has(item.id), `${where}.output ids unique`);
    ids.add(item.id);
  }
  if (r.usage !== null) checkUsageShape(r.usage, `${where}.usage`);
}

export function checkUsageShape(u, where = 'usage') {
  for (const k of ['input_tokens', 'output_tokens', 'total_tokens']) assert.ok(Number.isInteger(u[k]), `${where}.${k} integer`);
  assert.ok(u.input_tokens_details && Number.isInteger(u.input_tokens_details.cached_tokens), `${where}.input_tokens_details.cached_tokens`);
  assert.ok(Number.isInteger(u.input_tokens_details.cache_write_tokens), `${where}.input_tokens_details.cache_write_tokens`);
  assert.ok(u.output_tokens_details && Number.isInteger(u.output_tokens_details.reasoning_tokens), `${where}.output_tokens_details.reasoning_tokens`);
}

/** The exact usage object the gateway must produce for upstream prompt/completion counts (§7.4). */
export function expectedUsage(p, c, { reasoning = 0, cached = 0 } = {}) {
  return {
    input_tokens: p,
    input_tokens_details: { cached_tokens: cached, cache_write_tokens: 0 },
    output_tokens: c,
    output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: p + c,
  };
}

/** Checks one finished output item (§3). */
export function checkItem(item, where = 'item', { final = true } = {}) {
  assert.equal(typeof item.id, 'string', `${where}.id is a string`);
  assert.ok(item.id.length > 0, `${where}.id non-empty`);
  assert.ok(ITEM_STATUSES.has(item.status), `${where}.status ${item.status} is in_progress/completed/incomplete`);
  if (final) assert.notEqual(item.status, 'in_progress', `${where}.status is final`);
  switch (item.type) {
    case 'message':
      assert.match(item.id, /^msg_/, `${where}.id starts with msg_`);
      assert.equal(item.role, 'assistant', `${where}.role`);
      assert.ok(Array.isArray(item.content), `${where}.content is an array`);
      if (final) assert.ok(item.content.length > 0, `${where}.content must not be empty`);
      for (const [j, part] of item.content.entries()) {
        if (part.type === 'output_text') {
          assert.equal(typeof part.text, 'string', `${where}.content[${j}].text`);
          assert.deepEqual(part.annotations, [], `${where}.content[${j}].annotations`);
        } else {
          assert.equal(part.type, 'refusal', `${where}.content[${j}].type is output_text or refusal`);
          assert.equal(typeof part.refusal, 'string', `${where}.content[${j}].refusal`);
        }
      }
      break;
    case 'function_call':
      assert.match(item.id, /^fc_/, `${where}.id starts with fc_`);
      assert.equal(typeof item.call_id, 'string', `${where}.call_id`);
      assert.ok(item.call_id.length > 0, `${where}.call_id non-empty`);
      assert.equal(typeof item.name, 'string', `${where}.name`);
      assert.ok(item.name.length > 0, `${where}.name non-empty`);
      assert.equal(typeof item.arguments, 'string', `${where}.arguments is a string`);
      break;
    case 'reasoning':
      assert.match(item.id, /^rs_/, `${where}.id starts with rs_`);
      assert.ok(Array.isArray(item.summary), `${where}.summary is an array`);
      break;
    default:
      assert.fail(`${where}.type ${item.type} is not message/function_call/reasoning`);
  }
}

/**
 * Validates a complete event sequence against the §4.3 invariants and the §9 checklist.
 * Returns {items (done items by index), terminal (the terminal event), error (the error event or
 * null), texts (per item: concatenated text/refusal/arguments/summary deltas), events}.
 */
export function checkEventSequence(events, { route = 'openai' } = {}) {
  assert.ok(events.length >= 3, `at least 3 events (got ${events.length})`);
  for (const [i, ev] of events.entries()) {
    assert.equal(typeof ev.type, 'string', `event ${i} has a type`);
    assert.ok(KNOWN_EVENT_TYPES.has(ev.type), `event ${i} type ${ev.type} is in the §4.2 catalogue`);
    assert.equal(ev.sequence_number, i, `event ${i} (${ev.type}) sequence_number is ${i}`);
  }
  assert.equal(events[0].type, 'response.created', 'first event is response.created');
  assert.equal(events[1].type, 'response.in_progress', 'second event is response.in_progress');
  const created = events[0].response;
  checkResponseObject(created, 'response.created.response');
  assert.equal(created.status, 'in_progress');
  assert.deepEqual(created.output, []);
  assert.equal(events[1].response.status, 'in_progress');
  assert.deepEqual(events[1].response.output, []);

  const items = []; // by output_index: {id, type, added, done, parts:[{type,text,done}], args, argsDone, summaries}
  let terminal = null;
  let error = null;
  let openExclusive = null; // index of an open message/reasoning item
  for (const [i, ev] of events.entries()) {
    const at = `event ${i} (${ev.type})`;
    if (terminal && ev.type !== 'error') assert.fail(`${at} after the terminal event ${terminal.type}`);
    if (error) assert.fail(`${at} after the error event`);
    if (LIFECYCLE.has(ev.type)) {
      assert.equal(ev.response.id, created.id, `${at} response.id matches response.created`);
      assert.equal(ev.response.created_at, created.created_at, `${at} created_at identical in all lifecycle events`);
      assert.equal(ev.response.model, created.model, `${at} model identical`);
    }
    const itemAt = (idx) => {
      assert.ok(Number.isInteger(idx) && idx >= 0 && idx < items.length, `${at} output_index ${idx} refers to an added item`);
      return items[idx];
    };
    const scoped = () => {
      const it = itemAt(ev.output_index);
      assert.equal(ev.item_id, it.id, `${at} item_id equals the id of the item at output_index ${ev.output_index}`);
      assert.ok(!it.doneEvent, `${at} arrives after its item's output_item.done`);
      return it;
    };
    switch (ev.type) {
      case 'response.created':
      case 'response.in_progress':
        break;
      case 'response.output_item.added': {
        assert.equal(ev.output_index, items.length, `${at} output_index = number of items added before it`);
        const item = ev.item;
        checkItem(item, `${at}.item`, { final: false });
        assert.equal(item.status, 'in_progress', `${at} item status in_progress`);
        assert.ok(!items.some((x) => x.id === item.id), `${at} item id unique`);
        if (openExclusive !== null) assert.fail(`${at}: message/reasoning item ${openExclusive} must be closed before another item is added`);
        if (item.type === 'message') { assert.deepEqual(item.content, [], `${at} message content []`); openExclusive = ev.output_index; }
        if (item.type === 'reasoning') { assert.deepEqual(item.summary, [], `${at} reasoning summary []`); openExclusive = ev.output_index; }
        if (item.type === 'function_call') {
          assert.equal(item.arguments, '', `${at} function_call arguments ""`);
          assert.ok(!items.some((x) => x.type === 'function_call' && x.added.call_id === item.call_id), `${at} call_id unique`);
        }
        items.push({ id: item.id, type: item.type, added: item, doneEvent: null, parts: [], args: '', argsDone: null, summaries: [] });
        break;
      }
      case 'response.content_part.added': {
        const it = scoped();
        assert.equal(it.type, 'message', `${at} targets a message`);
        assert.equal(ev.content_index, it.parts.length, `${at} content_index = number of parts`);
        assert.ok(it.parts.every((p) => p.done), `${at} previous part closed`);
        if (ev.part.type === 'output_text') {
          assert.equal(ev.part.text, '', `${at} part starts empty`);
          assert.deepEqual(ev.part.annotations, [], `${at} part annotations []`);
        } else {
          assert.equal(ev.part.type, 'refusal', `${at} part type`);
          assert.equal(ev.part.refusal, '', `${at} refusal part starts empty`);
        }
        it.parts.push({ type: ev.part.type, text: '', done: false, doneText: null });
        break;
      }
      case 'response.output_text.delta':
      case 'response.refusal.delta': {
        const it = scoped();
        const part = it.parts[ev.content_index];
        assert.ok(part, `${at} content_index ${ev.content_index} refers to an added part`);
        assert.ok(!part.done, `${at} part not yet done`);
        assert.equal(part.type, ev.type === 'response.output_text.delta' ? 'output_text' : 'refusal', `${at} part type matches`);
        assert.equal(typeof ev.delta, 'string');
        assert.ok(ev.delta.length > 0, `${at} delta non-empty`);
        if (ev.type === 'response.output_text.delta') assert.deepEqual(ev.logprobs, [], `${at} logprobs []`);
        part.text += ev.delta;
        break;
      }
      case 'response.output_text.done':
      case 'response.refusal.done': {
        const it = scoped();
        const part = it.parts[ev.content_index];
        assert.ok(part && !part.done && part.doneText === null, `${at} part open`);
        const val = ev.type === 'response.output_text.done' ? ev.text : ev.refusal;
        assert.equal(val, part.text, `${at} equals the concatenated deltas`);
        if (ev.type === 'response.output_text.done') assert.deepEqual(ev.logprobs, [], `${at} logprobs []`);
        part.doneText = val;
        break;
      }
      case 'response.content_part.done': {
        const it = scoped();
        const part = it.parts[ev.content_index];
        assert.ok(part && !part.done, `${at} part open`);
        assert.equal(part.doneText, part.text, `${at} follows the text/refusal done event`);
        assert.equal(ev.part.type, part.type);
        assert.equal(part.type === 'output_text' ? ev.part.text : ev.part.refusal, part.text, `${at} part text equals deltas`);
        part.done = true;
        break;
      }
      case 'response.function_call_arguments.delta': {
        const it = scoped();
        assert.equal(it.type, 'function_call', `${at} targets a function_call`);
        assert.ok(it.argsDone === null, `${at} before arguments.done`);
        assert.equal(typeof ev.delta, 'string');
        it.args += ev.delta;
        break;
      }
      case 'response.function_call_arguments.done': {
        const it = scoped();
        assert.equal(it.type, 'function_call', `${at} targets a function_call`);
        assert.equal(ev.arguments, it.args, `${at} arguments equal the concatenated deltas`);
        assert.equal(ev.name, it.added.name, `${at} carries the name`);
        it.argsDone = ev.arguments;
        break;
      }
      case 'response.reasoning_summary_part.added': {
        const it = scoped();
        assert.equal(it.type, 'reasoning', `${at} targets a reasoning item`);
        assert.equal(ev.summary_index, it.summaries.length, `${at} summary_index`);
        assert.equal(ev.part.type, 'summary_text');
        it.summaries.push({ text: '', done: false, doneText: null });
        break;
      }
      case 'response.reasoning_summary_text.delta': {
        const it = scoped();
        const s = it.summaries[ev.summary_index];
        assert.ok(s && !s.done, `${at} summary part open`);
        s.text += ev.delta;
        break;
      }
      case 'response.reasoning_summary_text.done': {
        const it = scoped();
        const s = it.summaries[ev.summary_index];
        assert.ok(s && !s.done, `${at} summary part open`);
        assert.equal(ev.text, s.text, `${at} text equals deltas`);
        s.doneText = ev.text;
        break;
      }
      case 'response.reasoning_summary_part.done': {
        const it = scoped();
        const s = it.summaries[ev.summary_index];
        assert.ok(s && !s.done, `${at} summary part open`);
        assert.equal(ev.part.text, s.text, `${at} part text equals deltas`);
        s.done = true;
        break;
      }
      case 'response.output_item.done': {
        const it = itemAt(ev.output_index);
        assert.ok(!it.doneEvent, `${at} exactly one output_item.done per item`);
        const item = ev.item;
        checkItem(item, `${at}.item`);
        assert.equal(item.id, it.id, `${at} same id as added`);
        assert.equal(item.type, it.type, `${at} same type as added`);
        if (it.type === 'message') {
          assert.ok(it.parts.every((p) => p.done), `${at} all parts closed`);
          assert.equal(item.content.length, it.parts.length, `${at} content has every streamed part`);
          for (const [j, p] of it.parts.entries()) {
            assert.equal(item.content[j].type, p.type);
            assert.equal(p.type === 'output_text' ? item.content[j].text : item.content[j].refusal, p.text, `${at} content[${j}] equals the deltas`);
          }
        } else if (it.type === 'function_call') {
          assert.equal(it.argsDone, it.args, `${at} after function_call_arguments.done`);
          assert.equal(item.arguments, it.args, `${at} arguments equal the deltas`);
          assert.equal(item.call_id, it.added.call_id, `${at} same call_id as added`);
          assert.equal(item.name, it.added.name, `${at} same name as added`);
        } else if (it.type === 'reasoning') {
          assert.ok(it.summaries.every((s) => s.done), `${at} all summary parts closed`);
          assert.deepEqual(item.summary.map((s) => s.text), it.summaries.map((s) => s.text), `${at} summary equals deltas`);
        }
        if (openExclusive === ev.output_index) openExclusive = null;
        it.doneEvent = ev;
        break;
      }
      case 'response.completed':
      case 'response.incomplete':
      case 'response.failed': {
        assert.equal(terminal, null, `${at}: exactly one terminal event`);
        terminal = ev;
        const r = ev.response;
        checkResponseObject(r, `${at}.response`);
        assert.equal(r.status, ev.type.slice('response.'.length), `${at} status matches the event type`);
        assert.ok(items.every((x) => x.doneEvent), `${at}: every added item has its output_item.done first`);
        assert.deepEqual(r.output, items.map((x) => x.doneEvent.item), `${at}: output equals the done items in index order`);
        const want = ev.type === 'response.completed' ? 'completed' : 'incomplete';
        for (const it of r.output) assert.equal(it.status, want, `${at}: item ${it.id} status ${want}`);
        if (ev.type === 'response.failed') {
          assert.ok(r.error && typeof r.error.code === 'string' && typeof r.error.message === 'string', `${at} error {code,message}`);
          assert.ok(['server_error', 'rate_limit_exceeded', 'invalid_prompt'].includes(r.error.code), `${at} error.code ${r.error.code} from the spec enum`);
        } else {
          assert.equal(r.error, null, `${at} error null`);
        }
        if (ev.type === 'response.incomplete') assert.ok(r.incomplete_details && typeof r.incomplete_details.reason === 'string', `${at} incomplete_details.reason`);
        break;
      }
      case 'error': {
        assert.ok(terminal && terminal.type === 'response.failed', `${at} follows response.failed`);
        error = ev;
        checkErrorEvent(ev, terminal.response.error, route);
        break;
      }
      default:
        break;
    }
  }
  assert.ok(terminal, 'a terminal event was sent');
  if (terminal.type === 'response.failed') assert.ok(error, 'response.failed is followed by an error event');
  if (route === 'databricks') {
    const last = events[events.length - 1];
    assert.ok(last.databricks_output && typeof last.databricks_output === 'object', 'last Databricks event carries databricks_output');
  }
  const texts = items.map((x) => (x.type === 'message' ? x.parts.map((p) => p.text).join('') : x.type === 'function_call' ? x.args : x.summaries.map((s) => s.text).join('')));
  return { items: items.map((x) => x.doneEvent.item), terminal, error, texts, events, created };
}

/** The §5.3 failure `error` event: flat code/message/param, nested error, databricks_output.error. */
export function checkErrorEvent(ev, responseError, route = 'openai') {
  assert.equal(ev.type, 'error');
  assert.equal(typeof ev.message, 'string', 'error event flat message (MLflow requires it)');
  assert.ok(ev.message.length > 0);
  assert.equal(typeof ev.code, 'string', 'error event flat code');
  assert.ok(Object.hasOwn(ev, 'param'), 'error event flat param key');
  if (responseError) {
    assert.equal(ev.code, responseError.code, 'flat code repeats response.error.code');
    assert.equal(ev.message, responseError.message, 'flat message repeats response.error.message');
  }
  assert.ok(ev.error && typeof ev.error === 'object', 'nested error object (makes the SDKs raise APIError)');
  assert.equal(ev.error.message, ev.message, 'nested error.message');
  assert.equal(typeof ev.error.type, 'string', 'nested error.type');
  assert.equal(typeof ev.error.code, 'string', 'nested error.code');
  assert.ok(Object.hasOwn(ev.error, 'param'), 'nested error.param key');
  assert.ok(ev.databricks_output && ev.databricks_output.error, 'databricks_output.error');
  assert.equal(typeof ev.databricks_output.error.error_code, 'string', 'databricks_output.error.error_code');
  assert.ok(ERROR_CODE_HTTP[ev.databricks_output.error.error_code], `error_code ${ev.databricks_output.error.error_code} is a Databricks code`);
  assert.equal(ev.databricks_output.error.message, ev.message, 'databricks_output.error.message');
}

/** Checks the raw framing of an OpenAI-route stream: `event: T\ndata: {json}\n\n` blocks only. */
export function checkOpenAIFraming(s) {
  assert.equal(s.status, 200);
  assert.match(s.headers.get('content-type') || '', /^text\/event-stream/, 'content-type text/event-stream');
  assert.match(s.headers.get('cache-control') || '', /no-cache/, 'cache-control no-cache');
  assert.ok(s.headers.get('x-request-id'), 'x-request-id header');
  assert.ok(!s.raw.includes('\r'), 'LF line ends only');
  const blocks = s.raw.split('\n\n');
  assert.equal(blocks.pop(), '', 'body ends with a blank line');
  for (const [i, b] of blocks.entries()) {
    if (b === ': keepalive') continue;
    const m = /^event: ([^\n]+)\ndata: ([^\n]+)$/.exec(b);
    assert.ok(m, `block ${i} is exactly "event: <type>\\ndata: <json>": ${JSON.stringify(b.slice(0, 200))}`);
    const obj = JSON.parse(m[2]);
    assert.equal(m[1], obj.type, `block ${i}: event line equals the JSON type`);
  }
  assert.ok(!/^(id|retry):/m.test(s.raw), 'no id:/retry: fields');
  assert.ok(!s.raw.includes('[DONE]'), 'no [DONE] on the OpenAI route');
  assert.equal(s.emptyDispatches, 0, 'no event without data');
}

/** Checks Databricks-route framing: `data: {json}\n\n` only, ending with `data: [DONE]\n\n`. */
export function checkDatabricksFraming(s) {
  assert.equal(s.status, 200);
  assert.match(s.headers.get('content-type') || '', /^text\/event-stream/);
  assert.ok(s.headers.get('x-request-id'), 'x-request-id header');
  assert.ok(!/^event:/m.test(s.raw), 'no event: lines on the Databricks route');
  assert.ok(!/^(id|retry):/m.test(s.raw), 'no id:/retry: fields');
  assert.ok(s.raw.endsWith('data: [DONE]\n\n'), 'ends with data: [DONE]');
  const blocks = s.raw.split('\n\n');
  blocks.pop();
  for (const [i, b] of blocks.entries()) {
    if (b === ': keepalive') continue;
    assert.match(b, /^data: [^\n]+$/, `block ${i} is one data: line`);
  }
  assert.equal(s.framesAfterDone, 0, 'nothing after [DONE]');
}

// Databricks error_code → HTTP status (PROTOCOL.md §5.4).
export const ERROR_CODE_HTTP = {
  BAD_REQUEST: 400, INVALID_PARAMETER_VALUE: 400, RESOURCE_ALREADY_EXISTS: 400,
  UNAUTHENTICATED: 401, CUSTOMER_UNAUTHORIZED: 401, PERMISSION_DENIED: 403,
  RESOURCE_DOES_NOT_EXIST: 404, NOT_FOUND: 404, ENDPOINT_NOT_FOUND: 404,
  ABORTED: 409, ALREADY_EXISTS: 409, RESOURCE_CONFLICT: 409,
  REQUEST_LIMIT_EXCEEDED: 429, RESOURCE_EXHAUSTED: 429, CANCELLED: 499,
  INTERNAL_ERROR: 500, INVALID_STATE: 500, DATA_LOSS: 500, NOT_IMPLEMENTED: 501,
  TEMPORARILY_UNAVAILABLE: 503, DEADLINE_EXCEEDED: 504,
};

/**
 * Checks a non-2xx JSON error reply (§5.4): body {"error":{message,type,param,code},"error_code","message"}.
 * want: {status, type, code, error_code, message, param, route} — any subset.
 */
export function checkErrorReply(res, want = {}) {
  const ctx = `${res.status} ${res.text.slice(0, 300)}`;
  if (want.status !== undefined) assert.equal(res.status, want.status, `HTTP status (${ctx})`);
  assert.ok(res.status >= 400, `non-2xx (${ctx})`);
  assert.match(res.headers.get('content-type') || '', /^application\/json/, `error content-type is JSON (${ctx})`);
  assert.ok(res.headers.get('x-request-id'), 'x-request-id on error replies');
  const b = res.json;
  assert.ok(b && typeof b === 'object', `error body is JSON (${ctx})`);
  assert.ok(b.error && typeof b.error === 'object', `body.error object (${ctx})`);
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(Object.hasOwn(b.error, k), `body.error.${k} present (${ctx})`);
  assert.equal(typeof b.error.message, 'string');
  assert.ok(b.error.message.length > 0, 'error.message non-empty');
  assert.equal(typeof b.error.type, 'string');
  assert.ok(b.error.param === null || typeof b.error.param === 'string', 'error.param string or null');
  assert.ok(b.error.code === null || typeof b.error.code === 'string', 'error.code string or null');
  assert.equal(typeof b.error_code, 'string', `top-level error_code (${ctx})`);
  assert.equal(b.message, b.error.message, 'top-level message equals error.message');
  assert.ok(ERROR_CODE_HTTP[b.error_code], `error_code ${b.error_code} is a Databricks code`);
  if (want.type !== undefined) assert.equal(b.error.type, want.type, `error.type (${ctx})`);
  if (want.code !== undefined) assert.equal(b.error.code, want.code, `error.code (${ctx})`);
  if (want.error_code !== undefined) assert.equal(b.error_code, want.error_code, `error_code (${ctx})`);
  if (want.message !== undefined) {
    if (want.message instanceof RegExp) assert.match(b.error.message, want.message, `error.message (${ctx})`);
    else assert.equal(b.error.message, want.message, `error.message (${ctx})`);
  }
  if (want.param instanceof RegExp) assert.match(String(b.error.param), want.param, `error.param (${ctx})`);
  else if (want.param !== undefined) assert.equal(b.error.param, want.param, `error.param (${ctx})`);
  if (want.route === 'databricks') {
    assert.equal(res.status, ERROR_CODE_HTTP[b.error_code], `Databricks route: HTTP status is the one of error_code ${b.error_code}`);
  }
  return b;
}

/** Strips per-request identifiers so two responses for the same scenario can be compared. */
export function normalizeResponse(r) {
  const c = structuredClone(r);
  delete c.id;
  delete c.created_at;
  delete c.databricks_output;
  for (const it of c.output ?? []) delete it.id;
  return c;
}

export function outputText(r) {
  return r.output.filter((i) => i.type === 'message').flatMap((i) => i.content).filter((p) => p.type === 'output_text').map((p) => p.text).join('');
}
