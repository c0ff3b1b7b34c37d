// HTTP/1.1 leniencies of llhttp 8.1.0 that the header pre-scan alone did not catch (issue 15),
// each with its defined answer: chunk framing checked byte by byte (the CRLF after chunk data,
// trailer lines held to the header rules and never merged into the headers), field names that
// are tokens, `chunked` as the only transfer coding, over-limit bodies refused before they are
// sent (no 100 Continue, 2^63 chunk sizes), absolute-form targets, Upgrade ignored, and the header
// timeout for a connection that never sends a byte.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, rowForRequestId } from './lib.mjs';
import { connect, buildRequest, checkRawError, finals, sseEvents } from './rawhttp.mjs';

const LIMITS = { max_body_bytes: 1024, header_timeout_ms: 3000, keepalive_timeout_ms: 60_000 };
const T = { timeout: 15_000 };
const BAD = { status: 400, type: 'invalid_request_error', error_code: 'BAD_REQUEST' };

let stack;
let port;
before(async () => {
  stack = await startStack({ extra: { limits: LIMITS } });
  port = stack.agate.port;
});
after(async () => { await stack?.stop(); });

const CHUNKED_HEAD = ['POST /v1/responses HTTP/1.1', 'Host: a', 'Content-Type: application/json', 'Transfer-Encoding: chunked'];
const H = (lines, body = '') => Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body, 'latin1');
const BODY = JSON.stringify({ model: 'chat-agent', input: 'hello' });
const chunk = (s) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;

/** Sends bytes; expects exactly one final reply, then the server's close; checks the row. */
async function refused(bytes, want, { maxMs = 5000, closes = true } = {}) {
  const c = await connect(port);
  try {
    const t0 = Date.now();
    await c.write(bytes);
    const [res] = finals(await c.waitResponses(1, maxMs));
    const took = Date.now() - t0;
    checkRawError(res, want);
    if (closes) {
      assert.match(res.headers.connection ?? '', /\bclose\b/i, 'Connection: close on the error reply');
      await c.waitEnd(3000);
    }
    assert.equal(finals(c.parse().responses).length, 1, 'exactly one response: nothing smuggled ran');
    const row = await rowForRequestId(stack.tablesDir, res.headers['x-request-id'], 5000);
    assert.equal(row.status_code, want.status, 'row status_code');
    assert.equal(row.finish_status, 'rejected');
    return { res, took, c };
  } finally {
    c.destroy();
  }
}

describe('chunked framing and trailers → 400', () => {
  const smuggled = 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n';
  const cases = [
    ['two arbitrary bytes in place of the CRLF after chunk data, a request smuggled behind them',
      H(CHUNKED_HEAD, `${Buffer.byteLength(BODY).toString(16)}\r\n${BODY}XX${smuggled}0\r\n\r\n`)],
    ['a bare LF after chunk data', H(CHUNKED_HEAD, `${Buffer.byteLength(BODY).toString(16)}\r\n${BODY}\n0\r\n\r\n`)],
    ['a bare LF ending the chunk-size line', H(CHUNKED_HEAD, `${Buffer.byteLength(BODY).toString(16)}\n${BODY}\r\n0\r\n\r\n`)],
    ['a chunk-size line without digits', H(CHUNKED_HEAD, `;ext\r\n${BODY}\r\n0\r\n\r\n`)],
    ['obs-fold inside the trailers', H(CHUNKED_HEAD, `${chunk(BODY)}0\r\nX-Trailer: one\r\n folded\r\n\r\n`)],
    ['a bare CR inside a trailer value', H(CHUNKED_HEAD, `${chunk(BODY)}0\r\nX-Trailer: one\rtwo\r\n\r\n`)],
    ['a trailer name with a space', H(CHUNKED_HEAD, `${chunk(BODY)}0\r\nX Trailer: one\r\n\r\n`)],
    ['an empty trailer name', H(CHUNKED_HEAD, `${chunk(BODY)}0\r\n: one\r\n\r\n`)],
  ];
  for (const [name, bytes] of cases) {
    test(name, T, async () => { await refused(bytes, BAD); });
  }
  test('a trailer Content-Type is not merged into the headers: the 415 check still sees text/plain', T, async () => {
    const head = ['POST /v1/responses HTTP/1.1', 'Host: a', 'Content-Type: text/plain', 'Transfer-Encoding: chunked'];
    await refused(H(head, `${chunk(BODY)}0\r\nContent-Type: application/json\r\n\r\n`), { status: 415 }, { closes: false });
  });
  test('control: valid chunks, extensions and a well-formed trailer are accepted', T, async () => {
    const c = await connect(port);
    try {
      await c.write(H(CHUNKED_HEAD, `${Buffer.byteLength(BODY).toString(16)};name=value\r\n${BODY}\r\n0\r\nX-Trailer: ok\r\n\r\n`));
      const [res] = await c.waitResponses(1, 5000);
      assert.equal(res.status, 200, res.body.toString());
    } finally {
      c.destroy();
    }
  });
});

describe('field names and transfer codings → 400', () => {
  const cases = [
    ['a header name with a space', H(['POST /v1/responses HTTP/1.1', 'Host: a', 'X Test: a', 'Content-Length: 0'])],
    ['an empty header name', H(['POST /v1/responses HTTP/1.1', 'Host: a', ': a', 'Content-Length: 0'])],
    ['Transfer-Encoding: gzip, chunked (only chunked alone is decoded)',
      H(['POST /v1/responses HTTP/1.1', 'Host: a', 'Content-Type: application/json', 'Transfer-Encoding: gzip, chunked'], `${chunk(BODY)}0\r\n\r\n`)],
    ['two Transfer-Encoding headers',
      H(['POST /v1/responses HTTP/1.1', 'Host: a', 'Content-Type: application/json', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], `${chunk(BODY)}0\r\n\r\n`)],
  ];
  for (const [name, bytes] of cases) {
    test(name, T, async () => { await refused(bytes, BAD); });
  }
});

describe('bodies over max_body_bytes (1024) are refused before they are sent → 413 at once', () => {
  const TOO_LARGE = { status: 413 };
  test('Expect: 100-continue with a declared 100 MB body: 413, no 100 Continue', T, async () => {
    const { res, took, c } = await refused(H(['POST /v1/responses HTTP/1.1', 'Host: a', 'Content-Type: application/json',
      'Content-Length: 100000000', 'Expect: 100-continue']), TOO_LARGE);
    assert.ok(!c.text().includes('100 Continue'), `no interim 100 Continue: ${JSON.stringify(c.text().slice(0, 80))}`);
    assert.equal(res.start, 0, 'the 413 is the first thing sent');
    assert.ok(took < 1500, `at once, not after the 3 s header timeout (${took} ms)`);
  });
  for (const [name, size] of [['2^63', '8000000000000000'], ['a 20-digit size (overflows 64 bits)', 'fffffffffffffffffff0'], ['1025 bytes in one chunk', '401']]) {
    test(`chunk size ${name}: 413 as soon as the size line is read`, T, async () => {
      const { took } = await refused(H(CHUNKED_HEAD, `${size}\r\n{"model":`), TOO_LARGE);
      assert.ok(took < 1500, `at once, not after the 3 s header timeout (${took} ms)`);
    });
  }
  test('chunks adding up past the limit: 413 at the chunk that crosses it', T, async () => {
    await refused(H(CHUNKED_HEAD, `200\r\n${'x'.repeat(512)}\r\n200\r\n${'x'.repeat(512)}\r\n1\r\n`), TOO_LARGE);
  });
});

describe('request targets and Upgrade', () => {
  test('absolute-form target (RFC 9112 §3.2.2) is served like its origin-form path', T, async () => {
    const c = await connect(port);
    try {
      await c.write(buildRequest('POST', `http://127.0.0.1:${port}/v1/responses`, { body: { model: 'chat-agent', input: 'hello' } }));
      await c.write(buildRequest('GET', 'http://127.0.0.1/healthz?x=1'));
      await c.write(buildRequest('GET', 'HTTP://example.com'));
      const rs = finals(await c.waitResponses(3, 5000));
      assert.equal(rs[0].status, 200, rs[0].body.toString());
      assert.equal(JSON.parse(rs[0].body.toString()).output[0].content[0].text.length > 0, true, 'a real answer');
      assert.equal(rs[1].status, 200, '/healthz via absolute-form');
      assert.equal(rs[2].status, 404, 'an authority without a path is "/"');
    } finally {
      c.destroy();
    }
  });

  test('a POST with Upgrade is answered as HTTP and the pipelined request after it is served', T, async () => {
    const c = await connect(port);
    try {
      const post = buildRequest('POST', '/v1/responses', {
        body: { model: 'chat-agent', input: 'hello', stream: true },
        headers: [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Accept', 'text/event-stream']],
      });
      await c.write(Buffer.concat([post, buildRequest('GET', '/healthz')]));
      const rs = finals(await c.waitResponses(2, 5000));
      assert.equal(rs[0].status, 200);
      assert.equal(sseEvents(rs[0].body).events.at(-1).type, 'response.completed');
      assert.notEqual(rs[0].status, 101, 'no protocol switch');
      assert.equal(rs[1].status, 200, 'the pipelined GET /healthz is answered');
    } finally {
      c.destroy();
    }
  });
});

describe('a connection that never sends a byte', () => {
  test('is closed after header_timeout_ms, not keepalive_timeout_ms', T, async () => {
    const c = await connect(port);
    try {
      const t0 = Date.now();
      await c.waitEnd(LIMITS.header_timeout_ms + 3000);
      const took = Date.now() - t0;
      assert.ok(took >= LIMITS.header_timeout_ms - 100 && took < LIMITS.header_timeout_ms + 2500, `closed after ${took} ms`);
      assert.equal(c.len, 0, 'closed without a reply (it asked nothing)');
    } finally {
      c.destroy();
    }
  });
});
