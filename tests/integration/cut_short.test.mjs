// A request that reached agate always gets a table row (rule 3), also when the client ends the
// connection halfway through its body: before, a close or half-close after the headers left no
// row at all (issue 15, "rows lost").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, readTable, waitFor, crid } from './lib.mjs';
import { connect } from './rawhttp.mjs';

const T = { timeout: 30_000 };

function partial(id) {
  const body = JSON.stringify({ model: 'chat-agent', input: 'hi', client_request_id: id });
  return 'POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
    `X-Client-Request-Id: ${id}\r\nContent-Length: ${body.length + 100}\r\n\r\n${body}`;
}

test('half-close mid-body: the client reads a 400 and the request has its row', T, async () => {
  const s = await startStack();
  let c;
  try {
    const id = crid('cut-half');
    c = await connect(s.agate.port, { allowHalfOpen: true });
    await c.write(partial(id));
    c.sock.end(); // FIN: no more body will come
    await c.waitText('\r\n\r\n', 5000, 'the answer to the truncated request');
    assert.match(c.text(), /^HTTP\/1\.1 400 /);
    assert.match(c.text(), /before the request was complete/);
    const row = await waitFor(() => readTable(s.tablesDir).find((r) => r.client_request_id === id), 5000,
      `the row of ${id}`);
    assert.equal(row.status_code, 400);
    assert.equal(row.request, null, 'an incomplete body is not logged');
    assert.ok(row.logging_error_codes.includes('REQUEST_NOT_CAPTURED'), JSON.stringify(row.logging_error_codes));
    assert.equal(row.finish_status, 'rejected');
    assert.match(row.error_message, /before the request was complete/);
  } finally {
    c?.destroy();
    await s.stop();
  }
});

test('close mid-body: the request still has its row; a connection that sent nothing has none', T, async () => {
  const s = await startStack();
  try {
    const id = crid('cut-close');
    const c = await connect(s.agate.port);
    await c.write(partial(id));
    c.destroy();
    const idle = await connect(s.agate.port);
    idle.destroy();
    const row = await waitFor(() => readTable(s.tablesDir).find((r) => r.client_request_id === id), 5000,
      `the row of ${id}`);
    assert.equal(row.request, null, 'an incomplete body is not logged');
    assert.ok(row.logging_error_codes.includes('REQUEST_NOT_CAPTURED'), JSON.stringify(row.logging_error_codes));
    assert.match(row.error_message, /before the request was complete/);
    await waitFor(async () => (await fetch(`${s.agate.base}/healthz`)).ok, 2000, 'agate still serving');
    assert.equal(readTable(s.tablesDir).length, 1, 'no row for the connection that sent no byte');
  } finally {
    await s.stop();
  }
});
