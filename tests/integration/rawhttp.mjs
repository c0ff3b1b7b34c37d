// Raw-socket helpers for http_server.test.mjs and resilience.test.mjs: a byte-exact HTTP/1.x
// client over node:net, a response parser that also decodes chunked bodies, the §5.4 error-body
// shape check for raw replies, mock connection counting, a "never answers" upstream and RSS reads.
//
// Every wait is bounded by the caller's `ms` (never silently shortened), fails naming what it
// waited for and what it saw, and costs O(new bytes) per socket read; every socket and server is
// destroyed by its test.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { parseSSE } from './lib.mjs';

/**
 * Counts complete HTTP/1.x responses in a byte stream fed chunk by chunk, in O(new bytes) per
 * feed: a small state machine over heads, Content-Length bodies and chunked bodies, so waiting for
 * a 30 MB response does not re-parse the buffer on every socket read. parseResponses() does the
 * full (checked) parse once the wait is over.
 */
class ResponseTracker {
  constructor(headFor) {
    this.headFor = headFor;
    this.state = 'head';
    this.line = '';       // partial head or chunk-size/trailer line (bounded by the server's limits)
    this.remaining = 0;   // body or chunk bytes still to come
    this.finals = 0;      // complete final (>= 200) responses
    this.seenFinals = 0;  // final heads seen (for headFor)
    this.error = null;    // framing the tracker could not follow (reported by the wait)
  }

  feed(d) {
    let i = 0;
    for (let guard = 0; i < d.length && guard < 1_000_000 && !this.error; guard++) {
      if (this.state === 'body' || this.state === 'chunk') {
        const n = Math.min(this.remaining, d.length - i);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) {
          if (this.state === 'body') this.done();
          else this.state = 'chunk-crlf';
        }
        continue;
      }
      if (this.state === 'close') return; // body until the server closes
      // Line-oriented states: take bytes up to the next LF.
      const nl = d.indexOf(0x0a, i);
      const end = nl < 0 ? d.length : nl + 1;
      this.line += d.toString('latin1', i, end);
      i = end;
      if (this.line.length > 1 << 20) { this.error = `a line longer than 1 MiB in state ${this.state}`; return; }
      if (nl < 0) return;
      const l = this.line;
      this.line = '';
      this.onLine(l.endsWith('\r\n') ? l.slice(0, -2) : l.slice(0, -1));
    }
  }

  onLine(l) {
    switch (this.state) {
      case 'head':
        if (l === '' && this.head === undefined) return; // stray blank line between responses
        if (l !== '') { this.head = (this.head ?? '') + l + '\n'; return; }
        this.startBody(this.head);
        this.head = undefined;
        return;
      case 'chunk-size': {
        const m = /^([0-9a-fA-F]+)(;.*)?$/.exec(l);
        if (!m) { this.error = `bad chunk size line ${JSON.stringify(l.slice(0, 80))}`; return; }
        this.remaining = parseInt(m[1], 16);
        this.state = this.remaining === 0 ? 'trailers' : 'chunk';
        return;
      }
      case 'chunk-crlf':
        if (l !== '') { this.error = `no CRLF after chunk data: ${JSON.stringify(l.slice(0, 80))}`; return; }
        this.state = 'chunk-size';
        return;
      case 'trailers':
        if (l === '') this.done();
        return;
      default:
        this.error = `unexpected line in state ${this.state}`;
    }
  }

  startBody(head) {
    const lines = head.split('\n');
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(lines[0]);
    if (!m) { this.error = `bad status line ${JSON.stringify(lines[0].slice(0, 80))}`; return; }
    const status = Number(m[1]);
    let te = '';
    let cl;
    for (const h of lines.slice(1)) {
      const k = h.slice(0, h.indexOf(':')).trim().toLowerCase();
      const v = h.slice(h.indexOf(':') + 1).trim();
      if (k === 'transfer-encoding') te += `,${v}`;
      if (k === 'content-length') cl = Number(v);
    }
    this.final = status >= 200;
    const isHead = this.final && this.headFor(this.seenFinals);
    if (this.final) this.seenFinals += 1;
    if (status < 200 || status === 204 || status === 304 || isHead) return this.done();
    if (/(^|,)\s*chunked\s*$/i.test(te)) { this.state = 'chunk-size'; return undefined; }
    if (cl !== undefined) {
      this.remaining = cl;
      if (cl === 0) return this.done();
      this.state = 'body';
      return undefined;
    }
    this.state = 'close';
    return undefined;
  }

  done() {
    if (this.final) this.finals += 1;
    this.final = false;
    this.state = 'head';
  }

  /** Complete final responses, counting a close-delimited one once the connection has ended. */
  count(closed) {
    return this.finals + (this.state === 'close' && closed ? 1 : 0);
  }
}


/** One client TCP connection that records every byte and when it arrived. */
export class RawConn {
  constructor(sock) {
    this.sock = sock;
    this.chunks = [];
    this.parts = []; // every chunk as it arrived (never concatenated): incremental scans read these
    this.len = 0;
    this.tracker = null; // ResponseTracker, created by the first waitResponses()
    this.arrivals = []; // [{t, end}] — time at which the byte count reached `end`
    this.ended = false; // FIN from the server
    this.closed = false;
    this.error = null;
    this.waiters = new Set();
    sock.on('data', (d) => {
      this.chunks.push(d);
      this.parts.push(d);
      this.len += d.length;
      this.tracker?.feed(d);
      this.arrivals.push({ t: Date.now(), end: this.len });
      this.notify();
    });
    sock.on('end', () => { this.ended = true; this.endedAt = Date.now(); this.notify(); });
    sock.on('close', () => { this.closed = true; this.closedAt = Date.now(); this.notify(); });
    sock.on('error', (e) => { this.error = e; this.notify(); });
  }

  notify() {
    for (const w of [...this.waiters]) w();
  }

  get buf() {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  text() { return this.buf.toString('latin1'); }

  /** Time at which byte offset `off` (exclusive end) had arrived, or null. */
  arrivalOf(off) {
    const a = this.arrivals.find((x) => x.end >= off);
    return a ? a.t : null;
  }

  write(data) {
    return new Promise((resolve, reject) => {
      this.sock.write(data, (e) => (e ? reject(e) : resolve()));
    });
  }

  /** Resolves with pred's truthy value once it holds (checked on every socket event). */
  wait(pred, ms = 5000, what = 'condition', seen = () => '') {
    const limit = ms;
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        let v;
        try { v = pred(this); } catch (e) { finish(); reject(e); return; }
        if (v) { finish(); resolve(v); }
      };
      const timer = setTimeout(() => {
        if (done) return;
        finish();
        reject(new Error(`timed out after ${limit} ms waiting for ${what}; received ${this.len} bytes` +
          ` (ended=${this.ended}, closed=${this.closed}, error=${this.error?.code ?? this.error?.message ?? null})` +
          `${seen()}; first bytes:\n${JSON.stringify(this.text().slice(0, 1500))}\nlast bytes:\n` +
          JSON.stringify(this.len > 1500 ? this.buf.toString('latin1', this.len - 600) : '')));
      }, limit);
      const finish = () => { done = true; clearTimeout(timer); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for the server to end the connection (FIN, or a full close). */
  waitEnd(ms = 3000) {
    return this.wait((c) => c.ended || c.closed, ms, 'the server to close the connection');
  }

  /** Waits until `str` (latin1) has arrived; scans only bytes not scanned before. */
  waitText(str, ms = 5000, what = JSON.stringify(str)) {
    let idx = 0;
    let carry = '';
    const pred = () => {
      for (; idx < this.parts.length; idx++) {
        const s = carry + this.parts[idx].toString('latin1');
        if (s.includes(str)) { idx += 1; return true; }
        carry = s.slice(Math.max(0, s.length - (str.length - 1)));
      }
      return false;
    };
    return this.wait(pred, ms, what);
  }

  /**
   * Waits until `n` complete final (non-1xx) responses have arrived (counted incrementally);
   * returns the full parse of the buffer.
   */
  async waitResponses(n, ms = 5000, opts = {}) {
    const headFor = opts.headFor ?? (() => false);
    if (!this.tracker || this.tracker.headFor !== headFor) {
      this.tracker = new ResponseTracker(headFor);
      for (const d of this.parts) this.tracker.feed(d);
    }
    const t = this.tracker;
    await this.wait(() => {
      if (t.error) throw new Error(`while waiting for ${n} complete response(s): ${t.error}`);
      return t.count(this.ended || this.closed) >= n;
    }, ms, `${n} complete response(s)`, () => `; complete so far: ${t.count(this.ended || this.closed)}, parser state ${t.state}` +
      (t.state === 'body' || t.state === 'chunk' ? ` (${t.remaining} bytes to go)` : ''));
    return this.parse(opts).responses;
  }

  parse(opts = {}) {
    return parseResponses(this.buf, { closed: this.ended || this.closed, ...opts });
  }

  destroy() { this.sock.destroy(); }
}

/** Connects to 127.0.0.1:port; resolves once connected. */
export function connect(port, { allowHalfOpen = false, timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
    const conn = new RawConn(sock);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`connect to ${port} timed out`)); }, timeoutMs);
    sock.once('connect', () => { clearTimeout(timer); resolve(conn); });
    sock.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/**
 * Builds one well-formed request. body: object (JSON), string or Buffer; adds Content-Length.
 * headers: object or array of [name, value] (kept in order, duplicates allowed).
 */
export function buildRequest(method, path, { body, headers = {}, version = '1.1', host = '127.0.0.1', contentType = 'application/json' } = {}) {
  const h = Array.isArray(headers) ? [...headers] : Object.entries(headers);
  if (host !== null) h.unshift(['Host', host]);
  let payload = Buffer.alloc(0);
  if (body !== undefined) {
    payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    if (contentType) h.push(['Content-Type', contentType]);
    h.push(['Content-Length', String(payload.length)]);
  }
  const head = `${method} ${path} HTTP/${version}\r\n` + h.map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), payload]);
}

/**
 * Parses the HTTP/1.x responses in buf, in order. 1xx responses are returned as their own entries.
 * headFor(i) says whether the i-th final response answers a HEAD request (no body).
 * Each response: {version, status, reason, headers (lowercase names, joined), rawHeaders [[name, value]],
 * framing ('length'|'chunked'|'close'|'none'), body Buffer, chunkSizes, complete, start, end}.
 */
export function parseResponses(buf, { closed = false, headFor = () => false } = {}) {
  const responses = [];
  let off = 0;
  let finals = 0;
  for (let guard = 0; guard < 10_000 && off < buf.length; guard++) {
    const hEnd = buf.indexOf('\r\n\r\n', off, 'latin1');
    if (hEnd < 0) break;
    const head = buf.toString('latin1', off, hEnd);
    const lines = head.split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line at byte ${off}: ${JSON.stringify(lines[0])}`);
    const status = Number(m[2]);
    const headers = {};
    const rawHeaders = [];
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      assert.ok(i > 0, `response header line has a colon: ${JSON.stringify(l)}`);
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      rawHeaders.push([k, v]);
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    const r = { version: m[1], status, reason: m[3] ?? '', headers, rawHeaders, head, framing: 'none', body: Buffer.alloc(0), chunkSizes: [], complete: false, start: off, end: -1 };
    let p = hEnd + 4;
    const isHead = status >= 200 && headFor(finals);
    if (status >= 200) finals += 1;
    if ((status >= 100 && status < 200) || status === 204 || status === 304 || isHead) {
      r.complete = true;
    } else if (/(^|,)\s*chunked\s*$/i.test(headers['transfer-encoding'] ?? '')) {
      r.framing = 'chunked';
      const parts = [];
      for (let g = 0; g < 1_000_000; g++) {
        const le = buf.indexOf('\r\n', p, 'latin1');
        if (le < 0) break;
        const sizeLine = buf.toString('latin1', p, le);
        assert.match(sizeLine, /^[0-9a-fA-F]+(;.*)?$/, `chunk size line ${JSON.stringify(sizeLine)}`);
        const size = parseInt(sizeLine, 16);
        if (size === 0) {
          // trailers until an empty line
          let q = le + 2;
          let ok = false;
          for (let t = 0; t < 100; t++) {
            const te = buf.indexOf('\r\n', q, 'latin1');
            if (te < 0) break;
            if (te === q) { q = te + 2; ok = true; break; }
            q = te + 2;
          }
          if (ok) { r.complete = true; p = q; }
          break;
        }
        if (buf.length < le + 2 + size + 2) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        assert.equal(buf.toString('latin1', le + 2 + size, le + 4 + size), '\r\n', 'CRLF after chunk data');
        r.chunkSizes.push(size);
        p = le + 4 + size;
      }
      r.body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      r.framing = 'length';
      const cl = Number(headers['content-length']);
      assert.ok(Number.isInteger(cl) && cl >= 0, `content-length ${headers['content-length']}`);
      if (buf.length - p >= cl) {
        r.body = buf.subarray(p, p + cl);
        p += cl;
        r.complete = true;
      } else {
        r.body = buf.subarray(p);
      }
    } else {
      r.framing = 'close';
      r.body = buf.subarray(p);
      p = buf.length;
      r.complete = closed;
    }
    r.end = r.complete ? p : -1;
    responses.push(r);
    if (!r.complete) break;
    off = p;
  }
  return { responses, consumed: off };
}

/** The final (non-1xx) responses of a parse. */
export const finals = (responses) => responses.filter((r) => r.status >= 200);

/**
 * Checks a raw error reply: exact status, JSON content type, Content-Length equal to the body, and
 * exactly the §5.4 shape {"error":{"message","type","param","code"},"error_code","message"}.
 */
export function checkRawError(res, want = {}) {
  const ctx = `${res.status} ${res.body.toString('utf8').slice(0, 300)}`;
  if (want.status !== undefined) assert.equal(res.status, want.status, `HTTP status (${ctx})`);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, `JSON content type (${ctx})`);
  assert.equal(res.framing, 'length', 'error replies carry a Content-Length');
  assert.equal(Number(res.headers['content-length']), res.body.length, 'Content-Length equals the body size');
  let b;
  assert.doesNotThrow(() => { b = JSON.parse(res.body.toString('utf8')); }, `error body is JSON (${ctx})`);
  assert.deepEqual(Object.keys(b).sort(), ['error', 'error_code', 'message'], `top-level keys (${ctx})`);
  assert.deepEqual(Object.keys(b.error).sort(), ['code', 'message', 'param', 'type'], `error keys (${ctx})`);
  assert.equal(typeof b.error.message, 'string');
  assert.ok(b.error.message.length > 0, 'error.message non-empty');
  assert.equal(typeof b.error.type, 'string');
  assert.ok(b.error.param === null || typeof b.error.param === 'string', 'error.param string or null');
  assert.ok(b.error.code === null || typeof b.error.code === 'string', 'error.code string or null');
  assert.equal(typeof b.error_code, 'string');
  assert.equal(b.message, b.error.message, 'top-level message repeats error.message');
  for (const k of ['type', 'code', 'error_code']) {
    if (want[k] === undefined) continue;
    const got = k === 'error_code' ? b.error_code : b.error[k];
    assert.equal(got, want[k], `${k} (${ctx})`);
  }
  return b;
}

/** SSE events (JSON, '[DONE]' excluded) of a raw SSE body; also the parse. */
export function sseEvents(body) {
  const raw = Buffer.isBuffer(body) ? body.toString('utf8') : body;
  const p = parseSSE(raw);
  const events = [];
  let done = false;
  for (const f of p.frames) {
    if (f.data === '[DONE]') { done = true; continue; }
    if (!done) events.push(JSON.parse(f.data));
  }
  return { raw, events, done, comments: p.comments, frames: p.frames };
}

/** GET /stats from the mock on a fresh, non-pooled connection. */
export function mockStats(mock, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: mock.port, path: '/stats', agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { s += d; });
      res.on('end', () => {
        try { resolve(JSON.parse(s)); } catch (e) { reject(new Error(`bad /stats body ${s}: ${e.message}`)); }
      });
    });
    req.on('timeout', () => req.destroy(new Error('mock /stats timed out')));
    req.on('error', reject);
  });
}

/** Live TCP connections at the mock other than the /stats query's own. */
export async function mockOpenConns(mock) {
  const s = await mockStats(mock);
  assert.ok(Number.isInteger(s.open_connections), `/stats has open_connections: ${JSON.stringify(s)}`);
  return s.open_connections - 1;
}

/**
 * An upstream that accepts connections and requests and never answers. Counts requests and live
 * connections (so a test can see the gateway give up on it).
 */
export async function startSilentUpstream() {
  const sockets = new Set();
  let requests = 0;
  let connections = 0;
  const server = http.createServer();
  server.on('connection', (s) => {
    connections += 1;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('request', (req) => {
    requests += 1;
    req.resume(); // read the body, never respond
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}/v1`,
    get requests() { return requests; },
    get connections() { return connections; },
    get open() { return sockets.size; },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 2000);
        server.close(() => { clearTimeout(t); resolve(); });
      });
    },
  };
}

/** VmRSS of a process in bytes (Linux /proc). */
function procStatusBytes(pid, field) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(s);
  assert.ok(m, `${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Resident memory now. */
export const rssBytes = (pid) => procStatusBytes(pid, 'VmRSS');
/** Peak resident memory since the process started. */
export const peakRssBytes = (pid) => procStatusBytes(pid, 'VmHWM');
