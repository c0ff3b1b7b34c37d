// Every front-side error: exact HTTP status and the one body shape of PROTOCOL.md §5.4,
// {"error":{"message","type","param","code"},"error_code","message"}, on both routes.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, baseConfig, deadPort, http, postJSON, checkErrorReply } from './lib.mjs';
import { HTTP_ERRORS } from './scenarios.mjs';

let stack;
let base;
before(async () => {
  const dead = await deadPort();
  stack = await startStack({
    config: (mock, dir) => baseConfig(mock, dir, {
      extra: { limits: { max_body_bytes: 1024 } },
      moreEndpoints: [{ name: 'dead-agent', adapter: 'chat_completions', upstreams: [{ url: `http://127.0.0.1:${dead}/v1` }], model: 'mock-model' }],
    }),
  });
  base = stack.agate.base;
});
after(async () => { await stack?.stop(); });

const T = { timeout: 15_000 };
const RESP = () => `${base}/v1/responses`;
const INV = (name = 'chat-agent') => `${base}/serving-endpoints/${name}/invocations`;
const ok = (extra = {}) => ({ model: 'chat-agent', input: 'hi', ...extra });
const okDbx = (extra = {}) => ({ input: [{ role: 'user', content: 'hi' }], ...extra });

describe('health', () => {
  test('/healthz 200', T, async () => {
    const r = await http('GET', `${base}/healthz`);
    assert.equal(r.status, 200);
  });
  test('/readyz 200', T, async () => {
    const r = await http('GET', `${base}/readyz`);
    assert.equal(r.status, 200);
  });
});

describe('routing errors', () => {
  test('unknown path → 404 not_found / RESOURCE_DOES_NOT_EXIST', T, async () => {
    for (const [method, path] of [['GET', '/nope'], ['POST', '/v1/chat/completionsx'], ['GET', '/v1/modelsx'], ['POST', '/v1/responsesx'], ['POST', '/serving-endpoints/chat-agent/other']]) {
      const r = await http(method, `${base}${path}`, method === 'POST' ? { body: ok() } : {});
      checkErrorReply(r, { status: 404, type: 'invalid_request_error', code: 'not_found', error_code: 'RESOURCE_DOES_NOT_EXIST' });
    }
  });
  test('wrong method on /v1/responses → 405', T, async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const r = await http(method, RESP());
      checkErrorReply(r, { status: 405, type: 'invalid_request_error' });
    }
  });
  test('unknown model → 404 not_found / RESOURCE_DOES_NOT_EXIST', T, async () => {
    const r = await postJSON(RESP(), ok({ model: 'no-such-model' }));
    const b = checkErrorReply(r, { status: 404, type: 'invalid_request_error', code: 'not_found', error_code: 'RESOURCE_DOES_NOT_EXIST' });
    assert.match(b.error.message, /no-such-model/, 'message names the model');
  });
  test('unknown endpoint on the Databricks route → 404 RESOURCE_DOES_NOT_EXIST', T, async () => {
    const r = await postJSON(INV('no-such-endpoint'), okDbx());
    checkErrorReply(r, { status: 404, code: 'not_found', error_code: 'RESOURCE_DOES_NOT_EXIST', route: 'databricks' });
  });
});

describe('body errors', () => {
  test('non-JSON body → 400 invalid_json / BAD_REQUEST', T, async () => {
    const r = await http('POST', RESP(), { body: '{"model": "chat-agent", "input": ' });
    checkErrorReply(r, { status: 400, type: 'invalid_request_error', code: 'invalid_json', error_code: 'BAD_REQUEST' });
  });
  test('JSON that is not an object → 400 invalid_json', T, async () => {
    for (const body of ['[1,2]', '"hello"', '42', 'null']) {
      const r = await http('POST', RESP(), { body });
      checkErrorReply(r, { status: 400, type: 'invalid_request_error', code: 'invalid_json', error_code: 'BAD_REQUEST' });
    }
  });
  test('wrong content-type → 415', T, async () => {
    const r = await http('POST', RESP(), { body: JSON.stringify(ok()), contentType: 'text/plain' });
    checkErrorReply(r, { status: 415, type: 'invalid_request_error', error_code: 'BAD_REQUEST' });
  });
  test('media types are case-insensitive: Application/JSON; charset=UTF-8 is accepted', T, async () => {
    const r = await http('POST', RESP(), { body: JSON.stringify(ok()), contentType: 'Application/JSON; Charset=UTF-8' });
    assert.equal(r.status, 200, r.text?.slice(0, 200));
  });
  test('wrong content-type on the Databricks route → 400 BAD_REQUEST', T, async () => {
    const r = await http('POST', INV(), { body: JSON.stringify(okDbx()), contentType: 'text/plain' });
    checkErrorReply(r, { status: 400, error_code: 'BAD_REQUEST', route: 'databricks' });
  });
  test('oversized body → 413 request_too_large', T, async () => {
    const r = await postJSON(RESP(), ok({ input: 'x'.repeat(4096) }));
    checkErrorReply(r, { status: 413, type: 'invalid_request_error', code: 'request_too_large', error_code: 'BAD_REQUEST' });
  });
  test('oversized body on the Databricks route → 400 BAD_REQUEST', T, async () => {
    const r = await postJSON(INV(), okDbx({ input: 'x'.repeat(4096) }));
    checkErrorReply(r, { status: 400, code: 'request_too_large', error_code: 'BAD_REQUEST', route: 'databricks' });
  });
  test('body just under the limit is accepted', T, async () => {
    const body = ok({ input: 'hello mock:text ' });
    const pad = 1000 - JSON.stringify(body).length;
    body.input += 'y'.repeat(pad);
    assert.ok(JSON.stringify(body).length <= 1024);
    const r = await postJSON(RESP(), body);
    assert.equal(r.status, 200, r.text);
  });
});

describe('request validation (OpenAI route)', () => {
  const cases = [
    ['missing input', { model: 'chat-agent' }, { status: 400, type: 'invalid_request_error' }, /input/],
    ['empty input list', ok({ input: [] }), { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE' }, /input/],
    ['missing model', { input: 'hi' }, { status: 400, type: 'invalid_request_error' }, /model/],
    ['previous_response_id', ok({ previous_response_id: 'resp_123' }),
      { status: 400, type: 'invalid_request_error', code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE', param: 'previous_response_id' },
      /previous_response_id[\s\S]*(stateless|full conversation)|(stateless|full conversation)[\s\S]*previous_response_id/i],
    ['conversation', ok({ conversation: 'conv_1' }), { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE' }, /conversation/],
    ['background:true', ok({ background: true }), { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE' }, /background/],
    ['prompt', ok({ prompt: { id: 'pmpt_1' } }), { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE' }, /prompt/],
    ['item_reference', ok({ input: [{ role: 'user', content: 'hi' }, { type: 'item_reference', id: 'msg_1' }] }),
      { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE', param: /^input\[1\]/ }, /item_reference[\s\S]*(full items|store)/],
    ['dangling function_call_output call_id', ok({ input: [{ role: 'user', content: 'hi' }, { type: 'function_call_output', call_id: 'call_nope', output: 'x' }] }),
      { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE' }, /call_nope|call_id/],
    ['function_call without call_id', ok({ input: [{ role: 'user', content: 'hi' }, { type: 'function_call', name: 'f', arguments: '{}' }] }),
      { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE' }, /call_id/],
    ['function_call without name', ok({ input: [{ role: 'user', content: 'hi' }, { type: 'function_call', call_id: 'c1', arguments: '{}' }] }),
      { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE' }, /name/],
    ['unknown role', ok({ input: [{ role: 'wizard', content: 'hi' }] }), { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE' }, /role|wizard/],
    ['unknown item type', ok({ input: [{ type: 'teleport', content: 'hi' }] }), { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE' }, /type|teleport/],
    ['input_file part', ok({ input: [{ role: 'user', content: [{ type: 'input_text', text: 'read' }, { type: 'input_file', file_id: 'file_1' }] }] }),
      { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE', param: 'input[0].content[1]' }, /input_file/],
    ['input_image with only file_id', ok({ input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file_1' }] }] }),
      { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE', param: 'input[0].content[0]' }, /file_id|input_image/],
    ['tool of an unknown type', ok({ tools: [{ type: 'teleport' }] }), { status: 400, error_code: 'INVALID_PARAMETER_VALUE' }, /tool|teleport/],
    ['temperature out of range', ok({ temperature: 2.5 }), { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE', param: 'temperature' }, /temperature/],
    ['top_p out of range', ok({ top_p: 1.5 }), { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE', param: 'top_p' }, /top_p/],
    ['max_output_tokens 0', ok({ max_output_tokens: 0 }), { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE', param: 'max_output_tokens' }, /max_output_tokens/],
    ['metadata with a non-string value', ok({ metadata: { n: 1 } }), { status: 400, error_code: 'INVALID_PARAMETER_VALUE' }, /metadata/],
  ];
  for (const [name, body, want, msgRe] of cases) {
    test(`${name} → ${want.status}${want.code ? ' ' + want.code : ''}`, T, async () => {
      const r = await postJSON(RESP(), body);
      const b = checkErrorReply(r, { type: 'invalid_request_error', ...want });
      assert.match(b.error.message, msgRe, `message explains the problem: ${b.error.message}`);
    });
  }
  test('validation errors are answered without calling the upstream', T, async () => {
    const before1 = await stack.mock.stats();
    await postJSON(RESP(), ok({ previous_response_id: 'resp_1' }));
    await postJSON(RESP(), ok({ input: [] }));
    const after1 = await stack.mock.stats();
    assert.equal(after1.requests, before1.requests);
  });
});

describe('request validation (Databricks route)', () => {
  test('previous_response_id → 400 INVALID_PARAMETER_VALUE', T, async () => {
    const r = await postJSON(INV(), okDbx({ previous_response_id: 'resp_1' }));
    checkErrorReply(r, { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE', route: 'databricks' });
  });
  test('non-JSON body → 400 BAD_REQUEST', T, async () => {
    const r = await http('POST', INV(), { body: 'not json' });
    checkErrorReply(r, { status: 400, code: 'invalid_json', error_code: 'BAD_REQUEST', route: 'databricks' });
  });
  test('missing input → 400', T, async () => {
    const r = await postJSON(INV(), {});
    checkErrorReply(r, { status: 400, route: 'databricks' });
  });
  test('dangling call_id → 400 INVALID_PARAMETER_VALUE', T, async () => {
    const r = await postJSON(INV(), okDbx({ input: [{ type: 'function_call_output', call_id: 'call_zz', output: 'x' }] }));
    checkErrorReply(r, { status: 400, code: 'invalid_value', error_code: 'INVALID_PARAMETER_VALUE', route: 'databricks' });
  });
});

describe('upstream errors', () => {
  for (const [name, want] of Object.entries(HTTP_ERRORS)) {
    for (const stream of [false, true]) {
      test(`${name} (stream:${stream}) → ${want.status} ${want.code}`, T, async () => {
        const r = await postJSON(RESP(), ok({ input: `hello mock:${name}`, stream }));
        checkErrorReply(r, { status: want.status, type: want.type, code: want.code, error_code: want.error_code, message: want.message });
        if (want.retryAfter) assert.equal(r.headers.get('retry-after'), want.retryAfter, 'Retry-After copied');
      });
    }
    test(`${name} on the Databricks route → status of ${want.error_code}`, T, async () => {
      const r = await postJSON(INV(), okDbx({ input: [{ role: 'user', content: `hello mock:${name}` }], stream: true }));
      checkErrorReply(r, { error_code: want.error_code, message: want.message, route: 'databricks' });
      if (want.retryAfter) assert.equal(r.headers.get('retry-after'), want.retryAfter, 'Retry-After copied');
    });
  }
  test('connect refused → 503 upstream_unavailable with Retry-After', T, async () => {
    const r = await postJSON(RESP(), { model: 'dead-agent', input: 'hi' });
    checkErrorReply(r, { status: 503, type: 'server_error', code: 'upstream_unavailable', error_code: 'TEMPORARILY_UNAVAILABLE' });
    assert.ok(r.headers.get('retry-after'), 'Retry-After present');
  });
  test('connect refused on the Databricks route → 503 TEMPORARILY_UNAVAILABLE', T, async () => {
    const r = await postJSON(INV('dead-agent'), okDbx({ stream: true }));
    checkErrorReply(r, { status: 503, error_code: 'TEMPORARILY_UNAVAILABLE', route: 'databricks' });
  });
});
