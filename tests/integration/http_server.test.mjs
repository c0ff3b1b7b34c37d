// Raw-socket checks of agate's HTTP/1.1 server (STYLE.md §6): request smuggling guards, limits,
// timeouts, lingering close, keep-alive, pipelining, HTTP/1.0 streaming, 100-continue, HEAD and the
// connection cap. Every refusal is checked byte-exact: status, the §5.4 JSON error shape, the
// server's close, and the inference-table row it leaves behind.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  startStack, startAgate, baseConfig, makeTempDir, crid, sleep, waitFor, rowFor, rowForRequestId,
  checkEventSequence, checkOpenAIFraming, outputText, ERROR_CODE_HTTP,
} from './lib.mjs';
import { connect, buildRequest, checkRawError, finals, sseEvents, mockStats } from './rawhttp.mjs';

const LIMITS = { max_header_bytes: 1024, header_timeout_ms: 300, max_body_bytes: 1024 };
const T = { timeout: 15_000 };
const INV = '/serving-endpoints/chat-agent/invocations';
const BAD = { status: 400, type: 'invalid_request_error', error_code: 'BAD_REQUEST' };

let stack;
let port;
before(async () => {
  stack = await startStack({ extra: { limits: LIMITS } });
  port = stack.agate.port;
});
after(async () => { await stack?.stop(); });

/** A request from raw header lines (joined with CRLF) plus an optional body. */
const H = (lines, body = '') => Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body, 'latin1');

/** The table row of a refused request, found by the x-request-id of the reply. */
async function expectRejectedRow(res, { routed, tablesDir = stack.tablesDir }) {
  const id = res.headers['x-request-id'];
  assert.ok(id, 'x-request-id on the error reply');
  const row = await rowForRequestId(tablesDir, id, 5000);
  assert.equal(row.status_code, res.status, 'row status_code is the status sent');
  assert.equal(row.finish_status, 'rejected', 'row finish_status');
  const prefix = routed ? 'chat-agent_payload/' : 'unrouted_payload/';
  assert.ok(row.__file.startsWith(prefix), `row file ${row.__file} is under ${prefix}`);
  if (routed) assert.equal(row.endpoint_name, 'chat-agent');
  else assert.equal(row.endpoint_name, null);
  return row;
}

/**
 * Writes `bytes` on a fresh connection and expects exactly one error reply, with
 * `Connection: close`, after which the server closes; then checks the table row.
 */
async function refused(bytes, want, { routed = false } = {}) {
  const c = await connect(port);
  try {
    await c.write(bytes);
    const [res] = await c.waitResponses(1, 5000);
    const body = checkRawError(res, want);
    assert.match(res.headers.connection ?? '', /\bclose\b/i, 'Connection: close on the error reply');
    await c.waitEnd(3000);
    assert.equal(c.len, res.end, 'nothing follows the error reply');
    assert.equal(finals(c.parse().responses).length, 1, 'exactly one response');
    await expectRejectedRow(res, { routed });
    return { res, body };
  } finally {
    c.destroy();
  }
}

describe('malformed requests → 400, connection closed, row logged', () => {
  const cases = [
    ['bare CR inside a header value', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'X-Test: one\rtwo', 'Content-Length: 0']), false],
    ['bare CR used as a header line end', H(['GET /healthz HTTP/1.1', 'Host: a\rX-Test: b']), false],
    ['obs-fold: header line starting with a space', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'X-Test: one', ' folded', 'Content-Length: 0']), false],
    ['obs-fold: header line starting with a tab', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'X-Test: one', '\tfolded', 'Content-Length: 0']), false],
    ['NUL byte in a header value', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'X-Test: a\x00b', 'Content-Length: 0']), false],
    ['CTL 0x01 in a header value', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'X-Test: a\x01b', 'Content-Length: 0']), false],
    ['DEL 0x7f in a header name', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'X-Te\x7fst: b', 'Content-Length: 0']), false],
    ['missing Host on HTTP/1.1', H([`POST ${INV} HTTP/1.1`, 'Content-Type: application/json', 'Content-Length: 2'], '{}'), true],
    ['two Host headers', H([`POST ${INV} HTTP/1.1`, 'Host: a', 'Host: b', 'Content-Type: application/json', 'Content-Length: 2'], '{}'), true],
    ['Transfer-Encoding on HTTP/1.0', H([`POST ${INV} HTTP/1.0`, 'Host: a', 'Content-Type: application/json', 'Transfer-Encoding: chunked'], '2\r\n{}\r\n0\r\n\r\n'), true],
    ['Content-Length together with Transfer-Encoding', H([`POST ${INV} HTTP/1.1`, 'Host: a', 'Content-Type: application/json', 'Content-Length: 2', 'Transfer-Encoding: chunked'], '2\r\n{}\r\n0\r\n\r\n'), true],
    ['duplicate Content-Length (equal values)', H([`POST ${INV} HTTP/1.1`, 'Host: a', 'Content-Type: application/json', 'Content-Length: 2', 'Content-Length: 2'], '{}'), true],
    ['bad chunk size', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'Content-Type: application/json', 'Transfer-Encoding: chunked'], 'zz\r\n{}\r\n0\r\n\r\n'), false],
  ];
  for (const [name, bytes, routed] of cases) {
    test(`${name} → 400 (${routed ? 'chat-agent_payload' : 'unrouted_payload'} row)`, T, async () => {
      const { res } = await refused(bytes, BAD, { routed });
      assert.equal(res.status, ERROR_CODE_HTTP.BAD_REQUEST, 'status is the one bound to BAD_REQUEST');
    });
  }

  test('control: HTTP/1.0 without Host is accepted (Host is only mandatory in HTTP/1.1)', T, async () => {
    const c = await connect(port);
    try {
      await c.write(H(['GET /healthz HTTP/1.0']));
      const [res] = await c.waitResponses(1);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body.toString('utf8')), { status: 'ok' });
      await c.waitEnd(3000); // HTTP/1.0 without keep-alive: the server closes
    } finally {
      c.destroy();
    }
  });
});

describe('limits', () => {
  test('header block over max_header_bytes (1024) → 431, server closes, row logged', T, async () => {
    const bytes = buildRequest('POST', '/v1/responses', { headers: { 'X-Pad': 'a'.repeat(1500) }, body: { model: 'chat-agent', input: 'hi' } });
    const { res } = await refused(bytes, { status: 431, type: 'invalid_request_error' });
    assert.equal(res.status, 431);
  });

  test('control: a header block under max_header_bytes is served', T, async () => {
    const c = await connect(port);
    try {
      await c.write(buildRequest('GET', '/healthz', { headers: { 'X-Pad': 'a'.repeat(700) } }));
      const [res] = await c.waitResponses(1);
      assert.equal(res.status, 200);
    } finally {
      c.destroy();
    }
  });

  test('oversized chunked body (max_body_bytes 1024) → 413 readable while the client keeps sending (lingering close)', T, async () => {
    const c = await connect(port, { allowHalfOpen: true });
    const chunk = (n) => `${n.toString(16)}\r\n${'x'.repeat(n)}\r\n`;
    let stop = false;
    let writeErr = null;
    let sent = 0;
    let sentAfterAnswer = 0;
    let answeredAt = 0;
    try {
      await c.write('POST /v1/responses HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' + chunk(512).repeat(16));
      sent = 16 * 512;
      const pump = (async () => {
        for (let i = 0; i < 400 && !stop; i++) {
          try {
            await c.write(chunk(512));
          } catch (e) { writeErr = e; break; }
          sent += 512;
          if (answeredAt) sentAfterAnswer += 512;
          await sleep(5);
        }
      })();
      const [res] = await c.waitResponses(1, 5000);
      answeredAt = Date.now();
      await sleep(400); // the client is still sending after it got the answer
      stop = true;
      await pump;
      checkRawError(res, { status: 413, type: 'invalid_request_error' });
      assert.match(res.headers.connection ?? '', /\bclose\b/i, 'Connection: close');
      assert.equal(writeErr, null, `no write error (reset) while still sending: ${writeErr?.code}`);
      assert.equal(c.error, null, `no socket error: ${c.error?.code}`);
      assert.ok(sentAfterAnswer > 0, `the client kept sending after the answer (${sentAfterAnswer} bytes)`);
      assert.ok(sent > LIMITS.max_body_bytes * 4, `sent ${sent} body bytes`);
      assert.ok(c.ended, 'the server half-closed after its answer');
      assert.equal(c.len, res.end, 'nothing follows the 413');
      c.sock.end();
      await c.wait((x) => x.closed, 4000, 'the connection to close after the client is done');
      await expectRejectedRow(res, { routed: false });
    } finally {
      stop = true;
      c.destroy();
    }
  });

  test('oversized body on the Databricks route → 400 BAD_REQUEST (status bound to error_code), routed row', T, async () => {
    const body = JSON.stringify({ input: [{ role: 'user', content: 'x'.repeat(2000) }] });
    const c = await connect(port, { allowHalfOpen: true });
    try {
      await c.write(buildRequest('POST', INV, { body }));
      const [res] = await c.waitResponses(1, 5000);
      checkRawError(res, { status: 400, error_code: 'BAD_REQUEST' });
      await c.waitEnd(3000);
      await expectRejectedRow(res, { routed: true });
    } finally {
      c.destroy();
    }
  });
});

describe('connection reuse', () => {
  test('keep-alive: two sequential requests on one socket are both answered', T, async () => {
    const ids = [crid('ka'), crid('ka')];
    const c = await connect(port);
    try {
      await c.write(buildRequest('POST', '/v1/responses', { body: { model: 'chat-agent', input: 'hello mock:text', client_request_id: ids[0] } }));
      const [r1] = await c.waitResponses(1);
      assert.equal(r1.status, 200);
      assert.doesNotMatch(r1.headers.connection ?? '', /close/i, 'first answer keeps the connection');
      assert.equal(outputText(JSON.parse(r1.body.toString('utf8'))), 'Hi there!');
      await sleep(50);
      assert.ok(!c.ended && !c.closed, 'connection still open after the first answer');
      await c.write(buildRequest('POST', '/v1/responses', { body: { model: 'chat-agent', input: 'hello mock:text', client_request_id: ids[1] } }));
      const rs = await c.waitResponses(2);
      assert.equal(rs[1].status, 200);
      assert.equal(outputText(JSON.parse(rs[1].body.toString('utf8'))), 'Hi there!');
      assert.notEqual(rs[0].headers['x-request-id'], rs[1].headers['x-request-id'], 'two distinct requests');
      for (const [i, id] of ids.entries()) {
        const row = await rowFor(stack.tablesDir, id, 5000);
        assert.equal(row.status_code, 200);
        assert.equal(row.databricks_request_id, rs[i].headers['x-request-id']);
      }
    } finally {
      c.destroy();
    }
  });

  test('pipelining: two requests in one write are answered in order, the second only after the first', T, async () => {
    const ids = [crid('pipe'), crid('pipe')];
    const before = await mockStats(stack.mock);
    const c = await connect(port);
    try {
      await c.write(Buffer.concat([
        buildRequest('POST', '/v1/responses', { body: { model: 'chat-agent', input: 'hello mock:slow', stream: true, client_request_id: ids[0] } }),
        buildRequest('POST', '/v1/responses', { body: { model: 'chat-agent', input: 'hello mock:text', client_request_id: ids[1] } }),
      ]));
      // While the first (≈2 s) stream runs, the second must not have reached the upstream.
      await c.waitText('response.output_text.delta', 5000, 'the first delta of the first response');
      const mid = await mockStats(stack.mock);
      assert.equal(mid.requests - before.requests, 1, 'only the first request was sent upstream while its response streams');
      assert.equal(finals(c.parse().responses).length, 1, 'only the first response has started');
      const rs = await c.waitResponses(2, 8000);
      const [first, second] = finals(rs);
      assert.equal(first.status, 200);
      assert.equal(first.framing, 'chunked');
      assert.match(first.headers['content-type'], /^text\/event-stream/);
      const ev = sseEvents(first.body);
      const seq = checkEventSequence(ev.events);
      assert.equal(seq.terminal.type, 'response.completed');
      assert.equal(seq.texts[0], 'tick '.repeat(10));
      assert.equal(second.status, 200);
      assert.match(second.headers['content-type'], /^application\/json/);
      assert.equal(outputText(JSON.parse(second.body.toString('utf8'))), 'Hi there!');
      assert.ok(second.start >= first.end, 'the second response starts after the first ends');
      const after = await mockStats(stack.mock);
      assert.equal(after.requests - before.requests, 2, 'both reached the upstream in the end');
      const rows = [await rowFor(stack.tablesDir, ids[0], 5000), await rowFor(stack.tablesDir, ids[1], 5000)];
      assert.equal(rows[0].databricks_request_id, first.headers['x-request-id']);
      assert.equal(rows[1].databricks_request_id, second.headers['x-request-id']);
      assert.ok(Date.parse(rows[1].request_time) >= Date.parse(rows[0].request_time), 'second request accepted after the first');
    } finally {
      c.destroy();
    }
  });
});

describe('protocol details', () => {
  test('HTTP/1.0 with stream:true → SSE without chunked coding, closed at the end', T, async () => {
    const c = await connect(port);
    try {
      await c.write(buildRequest('POST', '/v1/responses', { version: '1.0', body: { model: 'chat-agent', input: 'hello mock:text', stream: true } }));
      await c.waitEnd(8000);
      const [res] = c.parse().responses;
      assert.equal(res.status, 200);
      assert.equal(res.headers['transfer-encoding'], undefined, 'no Transfer-Encoding for HTTP/1.0');
      assert.equal(res.headers['content-length'], undefined, 'no Content-Length: the body ends at close');
      assert.match(res.headers.connection ?? '', /\bclose\b/i, 'Connection: close');
      assert.equal(res.framing, 'close');
      assert.ok(res.complete);
      const ev = sseEvents(res.body);
      assert.ok(ev.raw.startsWith('event: response.created\n'), `body is raw SSE (no chunk sizes): ${JSON.stringify(ev.raw.slice(0, 40))}`);
      checkOpenAIFraming({ status: res.status, headers: { get: (k) => res.headers[k.toLowerCase()] ?? null }, raw: ev.raw, emptyDispatches: 0 });
      const seq = checkEventSequence(ev.events);
      assert.equal(seq.terminal.type, 'response.completed');
      assert.equal(seq.texts[0], 'Hi there!');
    } finally {
      c.destroy();
    }
  });

  test('Expect: 100-continue → "HTTP/1.1 100 Continue" before the final response', T, async () => {
    const body = JSON.stringify({ model: 'chat-agent', input: 'hello mock:text' });
    const c = await connect(port);
    try {
      await c.write(`POST /v1/responses HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`);
      await c.waitText('\r\n\r\n', 3000, 'an interim response before the body is sent');
      assert.ok(c.text().startsWith('HTTP/1.1 100 Continue\r\n\r\n'), `interim response: ${JSON.stringify(c.text().slice(0, 60))}`);
      await c.write(body);
      await c.waitResponses(1);
      const rs = c.parse().responses;
      assert.equal(rs[0].status, 100);
      assert.equal(rs[1].status, 200);
      assert.equal(outputText(JSON.parse(rs[1].body.toString('utf8'))), 'Hi there!');
    } finally {
      c.destroy();
    }
  });

  test('HEAD /healthz → 200 without a body', T, async () => {
    const c = await connect(port);
    try {
      await c.write(buildRequest('HEAD', '/healthz'));
      await c.waitText('\r\n\r\n', 3000, 'the HEAD response head');
      await sleep(200);
      const [head] = c.parse({ headFor: () => true }).responses;
      assert.equal(head.status, 200);
      assert.equal(c.len, head.end, 'no body bytes after the HEAD response head');
      // The connection stays usable: the next bytes are the next response's status line.
      await c.write(buildRequest('GET', '/healthz'));
      const rs = await c.waitResponses(2, 3000, { headFor: (i) => i === 0 });
      assert.equal(rs[1].status, 200);
      assert.equal(rs[1].start, head.end, 'GET response follows the HEAD head directly');
      assert.deepEqual(JSON.parse(rs[1].body.toString('utf8')), { status: 'ok' });
      if (head.headers['content-length'] !== undefined) {
        assert.equal(Number(head.headers['content-length']), rs[1].body.length, 'HEAD Content-Length is the GET body size');
      }
    } finally {
      c.destroy();
    }
  });
});

describe('limits.max_connections = 2', () => {
  let ag;
  let dir;
  before(async () => {
    dir = makeTempDir('agate-it-tables-');
    ag = await startAgate(baseConfig(stack.mock, dir, { extra: { limits: { max_connections: 2 } } }));
  });
  after(async () => {
    try { await ag?.stop(); } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });

  const healthz = () => buildRequest('GET', '/healthz');

  test('a third concurrent connection gets 503 JSON with Retry-After and is closed', T, async () => {
    const held = [];
    try {
      for (let i = 0; i < 2; i++) {
        const c = await connect(ag.port);
        held.push(c);
        await c.write(healthz());
        const [r] = await c.waitResponses(1);
        assert.equal(r.status, 200, `connection ${i + 1} is served`);
      }
      const third = await connect(ag.port);
      held.push(third);
      await third.waitEnd(3000);
      const [res] = third.parse().responses;
      assert.ok(res && res.head, `a response before the close: ${JSON.stringify(third.text().slice(0, 200))}`);
      assert.equal(res.status, 503);
      const bodyStart = res.start + Buffer.byteLength(res.head, 'latin1') + 4;
      assert.equal(Number(res.headers['content-length']), third.len - bodyStart,
        `Content-Length equals the body bytes sent before the close (body: ${JSON.stringify(third.buf.subarray(bodyStart).toString('utf8'))})`);
      checkRawError(res, { status: 503, type: 'server_error', error_code: 'TEMPORARILY_UNAVAILABLE' });
      assert.equal(res.status, ERROR_CODE_HTTP.TEMPORARILY_UNAVAILABLE);
      assert.match(res.headers['retry-after'] ?? '', /^\d+$/, 'Retry-After is delta-seconds');
      assert.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After >= 1');
      assert.match(res.headers.connection ?? '', /\bclose\b/i, 'Connection: close');
      // The two held connections are still served.
      await held[0].write(healthz());
      const rs = await held[0].waitResponses(2);
      assert.equal(rs[1].status, 200, 'a held connection still works');
      // Capacity returns once they go.
      held[0].destroy();
      held[1].destroy();
      await waitFor(async () => {
        const c = await connect(ag.port);
        try {
          await c.write(healthz());
          const [r] = await c.waitResponses(1, 1000);
          return r.status === 200;
        } finally {
          c.destroy();
        }
      }, 3000, 'a new connection to be served after the held ones closed', 50);
    } finally {
      for (const c of held) c.destroy();
    }
  });
});

// On a gateway of its own: a failure here (e.g. a crash) must not take the other checks down.
describe('limits.header_timeout_ms = 300 (own gateway)', () => {
  let ag;
  let tdir;
  let tport;
  before(async () => {
    tdir = makeTempDir('agate-it-tables-');
    ag = await startAgate(baseConfig(stack.mock, tdir, { extra: { limits: LIMITS } }));
    tport = ag.port;
  });
  after(async () => {
    try { await ag?.stop(); } finally { fs.rmSync(tdir, { recursive: true, force: true }); }
  });

  test('half the headers, then a stall past header_timeout_ms (300) → 408, server closes, row logged', T, async () => {
    const c = await connect(tport);
    try {
      const t0 = Date.now();
      await c.write('POST /v1/responses HTTP/1.1\r\nHost: a\r\nContent-Ty');
      const [res] = await c.waitResponses(1, 4000);
      const took = c.arrivalOf(res.end) - t0;
      assert.ok(took >= 250, `408 only after the header timeout (took ${took} ms)`);
      assert.ok(took < 2500, `408 soon after the 300 ms header timeout (took ${took} ms)`);
      checkRawError(res, { status: 408, type: 'invalid_request_error', error_code: 'DEADLINE_EXCEEDED' });
      assert.match(res.headers.connection ?? '', /\bclose\b/i, 'Connection: close');
      await c.waitEnd(3000);
      assert.equal(c.len, res.end, 'nothing follows the 408');
      await expectRejectedRow(res, { routed: false, tablesDir: tdir });
    } finally {
      c.destroy();
    }
  });

  test('headers complete, body stalls past header_timeout_ms → 408 (routed row)', T, async () => {
    const c = await connect(tport);
    try {
      await c.write(`POST ${INV} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"input":`);
      const [res] = await c.waitResponses(1, 4000);
      checkRawError(res, { status: 408, error_code: 'DEADLINE_EXCEEDED' });
      await c.waitEnd(3000);
      await expectRejectedRow(res, { routed: true, tablesDir: tdir });
    } finally {
      c.destroy();
    }
  });
});
