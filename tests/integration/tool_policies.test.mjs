// Issue 10 through the running gateway: model names routed by endpoint aliases and
// default_endpoint (the client's model still echoed), hosted tools dropped (table row
// dropped_tools, /metrics agate_dropped_tools_total) or rejected with a 400 in each route's
// error shape, tool_choice naming a dropped tool → 400, and system_messages: keep.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, baseConfig, postJSON, http, crid, rowFor, checkErrorReply } from './lib.mjs';

const T = { timeout: 20_000 };
let stack;

before(async () => {
  stack = await startStack({
    config: (mock, tablesDir) => {
      const c = baseConfig(mock, tablesDir, {
        endpointExtra: { aliases: ['gpt-5.4-nano', 'gpt-5*'] },
        moreEndpoints: [
          { name: 'strict', adapter: 'chat_completions', upstreams: [{ url: mock.url }], model: 'mock-model', hosted_tools: 'reject', system_messages: 'keep' },
        ],
      });
      return { ...c, default_endpoint: 'strict' };
    },
  });
});
after(async () => { await stack?.stop(); });

const url = () => `${stack.agate.url}/responses`;
const dbxUrl = (name) => `${stack.agate.base}/serving-endpoints/${name}/invocations`;

describe('model names clients insist on', () => {
  test('a glob alias routes a catalog name; the client model is echoed', T, async () => {
    const id = crid('alias');
    const res = await postJSON(url(), { model: 'gpt-5.5', input: 'hi mock:text', client_request_id: id });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.model, 'gpt-5.5');
    const row = await rowFor(stack.tablesDir, id);
    assert.equal(row.endpoint_name, 'chat-agent');
    assert.equal(JSON.parse(row.response).model, 'gpt-5.5');
  });

  test('an exact alias and default_endpoint', T, async () => {
    const a = crid('exact');
    assert.equal((await postJSON(url(), { model: 'gpt-5.4-nano', input: 'hi mock:text', client_request_id: a })).status, 200);
    assert.equal((await rowFor(stack.tablesDir, a)).endpoint_name, 'chat-agent');
    const d = crid('default');
    const res = await postJSON(url(), { model: 'some-local-model', input: 'hi mock:text', client_request_id: d });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.model, 'some-local-model');
    assert.equal((await rowFor(stack.tablesDir, d)).endpoint_name, 'strict');
  });
});

describe('hosted tools', () => {
  const tools = [
    { type: 'function', name: 'lookup', parameters: { type: 'object' } },
    { type: 'web_search', external_web_access: true },
    { type: 'tool_search', execution: 'client', parameters: { type: 'object' } },
  ];

  test('dropped by default: the request goes on, the row lists them, /metrics counts them', T, async () => {
    const before = await http('GET', `${stack.agate.base}/metrics`);
    const count = (text, tool) => Number((new RegExp(`^agate_dropped_tools_total\\{tool="${tool}"\\} (\\d+)$`, 'm').exec(text) || [0, 0])[1]);
    const id = crid('drop');
    const res = await postJSON(url(), { model: 'chat-agent', input: 'hi mock:text', tools, client_request_id: id });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.tools, tools, 'tools echoed as sent');
    const up = await stack.mock.lastRequest();
    assert.deepEqual(up.tools.map((t) => t.function.name), ['lookup']);
    const row = await rowFor(stack.tablesDir, id);
    assert.deepEqual(row.dropped_tools, ['web_search', 'tool_search']);
    const afterM = await http('GET', `${stack.agate.base}/metrics`);
    assert.equal(count(afterM.text, 'web_search'), count(before.text, 'web_search') + 1);
    assert.equal(count(afterM.text, 'tool_search'), count(before.text, 'tool_search') + 1);
    const plain = crid('none');
    await postJSON(url(), { model: 'chat-agent', input: 'hi mock:text', client_request_id: plain });
    assert.deepEqual((await rowFor(stack.tablesDir, plain)).dropped_tools, []);
  });

  test('hosted_tools: reject → 400 naming the tool, on both routes', T, async () => {
    const res = await postJSON(url(), { model: 'strict', input: 'hi mock:text', tools });
    checkErrorReply(res, { status: 400, code: 'unsupported_parameter', error_code: 'INVALID_PARAMETER_VALUE', param: 'tools[1]', message: /web_search/ });
    const dbx = await postJSON(dbxUrl('strict'), { input: 'hi mock:text', tools });
    checkErrorReply(dbx, { status: 400, error_code: 'INVALID_PARAMETER_VALUE', message: /web_search/, route: 'databricks' });
  });

  test('tool_choice naming a dropped tool → 400', T, async () => {
    const res = await postJSON(url(), { model: 'chat-agent', input: 'hi mock:text', tools, tool_choice: { type: 'web_search' } });
    checkErrorReply(res, { status: 400, code: 'invalid_value', param: 'tool_choice', message: /dropped/ });
  });
});

describe('system messages', () => {
  test('system_messages: keep sends each message as it came', T, async () => {
    const input = [{ role: 'developer', content: 'd1' }, { role: 'developer', content: 'd2' }, { role: 'user', content: 'u mock:text' }];
    await postJSON(url(), { model: 'strict', instructions: 'I', input });
    let up = await stack.mock.lastRequest();
    assert.deepEqual(up.messages.map((m) => m.content), ['I', 'd1', 'd2', 'u mock:text']);
    await postJSON(url(), { model: 'chat-agent', instructions: 'I', input });
    up = await stack.mock.lastRequest();
    assert.deepEqual(up.messages, [{ role: 'system', content: 'I\n\nd1\n\nd2' }, { role: 'user', content: 'u mock:text' }]);
  });
});
