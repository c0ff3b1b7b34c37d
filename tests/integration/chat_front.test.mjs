// The OpenAI surface clients probe besides /v1/responses (issue 16): GET /v1/models and
// GET /v1/models/{id}, and POST /v1/chat/completions passed through to ChatCompletions upstreams,
// checked with the official openai SDK (7.57.0) against the mock upstream: streaming and not, tools
// and parallel tool calls, the usage chunk only when asked, a killed replica retried before the
// first byte, one table row per request, and every bad request's status and body.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { APIError, NotFoundError, BadRequestError } from 'openai';
import {
  startStack, startMock, startAgate, makeTempDir, http, crid, rowFor, readTable, stopEach, parseSSE,
} from './lib.mjs';

const T = { timeout: 30_000 };
const msgs = (text) => [{ role: 'user', content: text }];
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];

let stack;
let client;

before(async () => {
  stack = await startStack({
    endpointExtra: { aliases: ['gpt-5.5', 'codex-*'] },
    moreEndpoints: [
      { name: 'resp-ep', adapter: 'responses', upstreams: [{ url: 'http://127.0.0.1:9/v1' }] },
    ],
  });
  client = new OpenAI({ apiKey: 'test-key', baseURL: stack.agate.url, maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  await stopEach(stack);
});

/** Options that tag the request for its table row. */
const tagged = (id) => ({ headers: { 'x-client-request-id': id } });

/** Collects a streamed chat completion: chunks, text, tool calls by index, finish, usage. */
async function collect(stream) {
  const out = { chunks: [], text: '', tools: [], finish: null, usage: null };
  for await (const ch of stream) {
    out.chunks.push(ch);
    if (out.chunks.length > 10_000) throw new Error('more than 10,000 chunks');
    if (ch.usage) out.usage = ch.usage;
    for (const c of ch.choices) {
      if (c.delta?.content) out.text += c.delta.content;
      for (const tc of c.delta?.tool_calls ?? []) {
        const t = (out.tools[tc.index] ??= { id: '', name: '', arguments: '' });
        if (tc.id) t.id = tc.id;
        if (tc.function?.name) t.name += tc.function.name;
        if (tc.function?.arguments) t.arguments += tc.function.arguments;
      }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

describe('GET /v1/models', () => {
  test('models.list() lists every endpoint and exact alias in the OpenAI list shape', T, async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    assert.deepEqual(ids, ['chat-agent', 'gpt-5.5', 'resp-ep'], 'names, then exact aliases; globs are not listed');
    for (const m of page.data) {
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'agate');
      assert.ok(Number.isInteger(m.created) && m.created > 1_600_000_000, `created ${m.created}`);
    }
    const raw = await http('GET', `${stack.agate.url}/models`);
    assert.equal(raw.status, 200);
    assert.equal(raw.json.object, 'list');
  });

  test('models.retrieve() returns one model; an unknown id is 404 in the OpenAI error shape', T, async () => {
    const m = await client.models.retrieve('chat-agent');
    assert.deepEqual({ id: m.id, object: m.object, owned_by: m.owned_by }, { id: 'chat-agent', object: 'model', owned_by: 'agate' });
    for (const alias of ['gpt-5.5', 'codex-mini']) { // exact and glob aliases resolve, the id is echoed
      const a = await client.models.retrieve(alias);
      assert.equal(a.id, alias);
    }
    await assert.rejects(client.models.retrieve('no-such-model'), (e) => {
      assert.ok(e instanceof NotFoundError, `NotFoundError, got ${e?.constructor?.name}`);
      assert.equal(e.status, 404);
      assert.equal(e.error?.code, 'not_found');
      assert.match(e.message, /no-such-model/);
      return true;
    });
    const res = await http('POST', `${stack.agate.url}/models`, { body: {} });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    assert.equal(res.json.error.type, 'invalid_request_error');
  });

  test('model listings are not inference-table rows', T, async () => {
    await http('GET', `${stack.agate.url}/models`, { headers: { 'x-client-request-id': 'models-probe' } });
    await http('GET', `${stack.agate.url}/models/nope`, { headers: { 'x-client-request-id': 'models-probe' } });
    // A chat request after them: once its row is there, rows of the earlier ones would be too.
    const id = crid('models-fence');
    await client.chat.completions.create({ model: 'chat-agent', messages: msgs('hi') }, tagged(id));
    await rowFor(stack.tablesDir, id);
    const rows = readTable(stack.tablesDir);
    assert.equal(rows.filter((r) => r.client_request_id === 'models-probe').length, 0);
  });
});

describe('POST /v1/chat/completions', () => {
  test('a model name from an alias is served by its endpoint', T, async () => {
    const id = crid('chat-alias');
    const r = await client.chat.completions.create({ model: 'gpt-5.5', messages: msgs('Say hi') }, tagged(id));
    assert.equal(r.choices[0].message.content, 'Hi there!');
    assert.equal((await stack.mock.lastRequest()).model, 'mock-model', 'the endpoint\'s upstream model');
    const row = await rowFor(stack.tablesDir, id);
    assert.equal(row.endpoint_name, 'chat-agent');
  });

  test('non-streaming: the upstream answer passes through; model rewritten upstream; one row', T, async () => {
    const id = crid('chat-plain');
    const { data: r, response } = await client.chat.completions
      .create({ model: 'chat-agent', messages: msgs('Say hi'), temperature: 0.5, user: 'u1' }, tagged(id))
      .withResponse();
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, 'Hi there!');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual(r.usage, { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
    assert.match(response.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
    assert.equal(response.headers.get('served-model-name'), 'chat-agent');
    const up = await stack.mock.lastRequest();
    assert.deepEqual(up, { model: 'mock-model', messages: msgs('Say hi'), temperature: 0.5, user: 'u1' },
      'the client body, only model rewritten, no stream_options without stream');
    const row = await rowFor(stack.tablesDir, id);
    assert.equal(row.front_route, 'chat_completions');
    assert.equal(row.status_code, 200);
    assert.equal(row.finish_status, 'completed');
    assert.equal(row.stream, false);
    assert.equal(row.adapter, 'chat_completions');
    assert.equal(row.endpoint_name, 'chat-agent');
    assert.deepEqual(JSON.parse(row.request), { model: 'chat-agent', messages: msgs('Say hi'), temperature: 0.5, user: 'u1' });
    assert.deepEqual(JSON.parse(row.response), r, 'non-streaming: the body sent');
    assert.equal(row.input_tokens, 12);
    assert.equal(row.output_tokens, 3);
    assert.equal(row.token_count_source, 'upstream');
  });

  test('streaming text: chunks pass through; include_usage forced upstream, usage chunk removed', T, async () => {
    const id = crid('chat-stream');
    const got = await collect(await client.chat.completions.create(
      { model: 'chat-agent', messages: msgs('Say hi'), stream: true }, tagged(id)));
    assert.equal(got.text, 'Hi there!');
    assert.equal(got.finish, 'stop');
    assert.equal(got.usage, null, 'the client did not ask for usage');
    assert.ok(got.chunks.every((c) => c.object === 'chat.completion.chunk' && c.choices.length === 1));
    const up = await stack.mock.lastRequest();
    assert.equal(up.model, 'mock-model');
    assert.deepEqual(up.stream_options, { include_usage: true });
    const row = await rowFor(stack.tablesDir, id);
    assert.equal(row.stream, true);
    assert.equal(row.finish_status, 'completed');
    assert.equal(row.input_tokens, 12, 'usage from the upstream even though the client never saw it');
    assert.equal(row.output_tokens, 3);
    assert.ok(row.time_to_first_token_ms !== null && row.time_to_first_token_ms >= 0);
    const agg = JSON.parse(row.response);
    assert.equal(agg.object, 'chat.completion');
    assert.equal(agg.choices[0].message.content, 'Hi there!');
    assert.equal(agg.choices[0].finish_reason, 'stop');
    assert.deepEqual(agg.usage, { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
  });

  test('streaming with stream_options.include_usage: the usage chunk reaches the client', T, async () => {
    const got = await collect(await client.chat.completions.create({
      model: 'chat-agent', messages: msgs('Say hi'), stream: true, stream_options: { include_usage: true },
    }));
    assert.deepEqual(got.usage, { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
    assert.equal(got.chunks.at(-1).choices.length, 0, 'the usage chunk is last, with no choices');
  });

  test('streaming parallel tool calls (tools2): deltas by index, aggregated in the row', T, async () => {
    const id = crid('chat-tools2');
    const got = await collect(await client.chat.completions.create(
      { model: 'chat-agent', messages: msgs('two tools mock:tools2'), tools: TOOLS, parallel_tool_calls: true, stream: true }, tagged(id)));
    assert.equal(got.finish, 'tool_calls');
    assert.deepEqual(got.tools, [
      { id: 'call_0', name: 'tool_0', arguments: '{"i":0}' },
      { id: 'call_1', name: 'tool_1', arguments: '{"i":1}' },
    ]);
    assert.deepEqual((await stack.mock.lastRequest()).tools, TOOLS, 'tools pass through untouched');
    const row = await rowFor(stack.tablesDir, id);
    const msg = JSON.parse(row.response).choices[0].message;
    assert.deepEqual(msg.tool_calls.map((t) => [t.id, t.type, t.function.name, t.function.arguments]), [
      ['call_0', 'function', 'tool_0', '{"i":0}'],
      ['call_1', 'function', 'tool_1', '{"i":1}'],
    ]);
    assert.equal(JSON.parse(row.response).choices[0].finish_reason, 'tool_calls');
    assert.equal(row.input_tokens, 85);
  });

  test('text then tools, streaming and not', T, async () => {
    const got = await collect(await client.chat.completions.create(
      { model: 'chat-agent', messages: msgs('weather? mock:text_then_tools'), tools: TOOLS, stream: true }));
    assert.equal(got.text, 'Let me check.');
    assert.deepEqual(got.tools.map((t) => [t.id, t.name, JSON.parse(t.arguments)]), [
      ['call_a', 'get_weather', { city: 'Paris' }],
      ['call_b', 'get_time', { tz: 'UTC' }],
    ]);
    const id = crid('chat-ttt');
    const r = await client.chat.completions.create(
      { model: 'chat-agent', messages: msgs('weather? mock:text_then_tools'), tools: TOOLS }, tagged(id));
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(r.choices[0].message.tool_calls.map((t) => t.function.name), ['get_weather', 'get_time']);
    const row = await rowFor(stack.tablesDir, id);
    assert.deepEqual(JSON.parse(row.response), r);
  });

  test('the SSE wire: data-only events ending with data: [DONE]', T, async () => {
    const res = await fetch(`${stack.agate.url}/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chat-agent', messages: msgs('hi mock:multiline'), stream: true }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const text = await res.text();
    assert.ok(text.endsWith('data: [DONE]\n\n'), text.slice(-80));
    assert.ok(!/^event:/m.test(text), 'no event: lines on the chat route');
    const { frames } = parseSSE(text);
    const content = frames.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data))
      .map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(content, 'Hi there!', 'a data value split over two lines upstream stays one event');
  });

  test('an upstream error mid-stream reaches the SDK as an APIError; row failed', T, async () => {
    const id = crid('chat-midfail');
    const stream = await client.chat.completions.create(
      { model: 'chat-agent', messages: msgs('mock:error_openai'), stream: true }, tagged(id));
    let text = '';
    await assert.rejects((async () => {
      for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    })(), (e) => {
      assert.ok(e instanceof APIError, `APIError, got ${e?.constructor?.name}: ${e?.message}`);
      assert.match(e.message, /Tool XYZ failed/);
      return true;
    });
    assert.equal(text, 'Hi');
    const row = await rowFor(stack.tablesDir, id);
    assert.equal(row.status_code, 200);
    assert.equal(row.finish_status, 'failed');
    assert.equal(JSON.parse(row.response).choices[0].message.content, 'Hi', 'partial aggregate');
  });

  test('upstream HTTP errors before the first byte map to the OpenAI error shape', T, async () => {
    const id = crid('chat-429');
    await assert.rejects(client.chat.completions.create({ model: 'chat-agent', messages: msgs('mock:http429') }, tagged(id)),
      (e) => {
        assert.equal(e.status, 429);
        assert.equal(e.error?.type, 'rate_limit_error');
        return true;
      });
    const row = await rowFor(stack.tablesDir, id);
    assert.equal(row.status_code, 429);
    assert.equal(row.front_route, 'chat_completions');
    const res = await http('POST', `${stack.agate.url}/chat/completions`, { body: { model: 'chat-agent', messages: msgs('mock:http500') } });
    assert.equal(res.status, 502);
    assert.equal(res.json.error.type, 'server_error');
  });
});

describe('bad requests on /v1/chat/completions', () => {
  const url = () => `${stack.agate.url}/chat/completions`;
  const cases = [
    ['non-JSON body', 'not json', 400, 'invalid_json', null],
    ['a JSON array', [1], 400, 'invalid_json', null],
    ['missing messages', { model: 'chat-agent' }, 400, 'invalid_value', 'messages'],
    ['empty messages', { model: 'chat-agent', messages: [] }, 400, 'invalid_value', 'messages'],
    ['messages not an array', { model: 'chat-agent', messages: 'hi' }, 400, 'invalid_json', 'messages'],
    ['missing model', { messages: msgs('hi') }, 400, 'invalid_value', 'model'],
    ['stream not a boolean', { model: 'chat-agent', messages: msgs('hi'), stream: 'yes' }, 400, 'invalid_json', 'stream'],
    ['unknown model', { model: 'nope', messages: msgs('hi') }, 404, 'not_found', 'model'],
    ['an endpoint with a Responses upstream', { model: 'resp-ep', messages: msgs('hi') }, 400, 'unsupported_parameter', 'model'],
  ];
  for (const [name, body, status, code, param] of cases) {
    test(`${name} → ${status} ${code}`, T, async () => {
      const id = crid('chat-bad');
      const res = await http('POST', url(), { body, headers: { 'x-client-request-id': id } });
      assert.equal(res.status, status, res.text);
      assert.equal(res.json.error.code, code);
      assert.equal(res.json.error.param, param);
      assert.equal(typeof res.json.error.message, 'string');
      if (name.includes('Responses')) assert.match(res.json.error.message, /resp-ep/);
      const row = await rowFor(stack.tablesDir, id);
      assert.equal(row.finish_status, 'rejected');
      assert.equal(row.status_code, status);
      assert.equal(row.front_route, 'chat_completions');
    });
  }

  test('the SDK sees 404 for an unknown model and 400 for missing messages', T, async () => {
    await assert.rejects(client.chat.completions.create({ model: 'nope', messages: msgs('hi') }), NotFoundError);
    await assert.rejects(client.chat.completions.create({ model: 'chat-agent' }), BadRequestError);
  });

  test('wrong method and media type', T, async () => {
    const get = await http('GET', url());
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    const txt = await http('POST', url(), { body: '{}', contentType: 'text/plain' });
    assert.equal(txt.status, 415);
    assert.equal(txt.json.error.code, 'unsupported_media_type');
  });
});

describe('balancing on the chat route', () => {
  test('a killed replica is retried on another before the first byte; the row shows both attempts', T, async () => {
    const ms = [await startMock(), await startMock()];
    const tablesDir = makeTempDir('agate-chat-lb-');
    let agate;
    try {
      agate = await startAgate({
        listen: '127.0.0.1:0',
        endpoints: [{ name: 'lb', adapter: 'chat_completions', strategy: 'round_robin', retries: 1, model: 'mock-model',
          upstreams: ms.map((m) => ({ url: m.url })), outlier: { consecutive_failures: 100 } }],
        tables: { sink: 'jsonl', dir: tablesDir, flush_ms: 50 },
      });
      ms[0].proc.kill('SIGKILL');
      await ms[0].exited;
      const c = new OpenAI({ apiKey: 'k', baseURL: agate.url, maxRetries: 0, timeout: 10_000 });
      const ids = [];
      for (let i = 0; i < 4; i++) {
        const id = crid('chat-lb');
        ids.push(id);
        const got = await collect(await c.chat.completions.create({ model: 'lb', messages: msgs('hi'), stream: i % 2 === 0 }, tagged(id))
          .then((r) => (r.choices ? [{ choices: [{ delta: { content: r.choices[0].message.content }, finish_reason: 'stop' }] }] : r)));
        assert.equal(got.text, 'Hi there!', `request ${i}`);
      }
      const rows = [];
      for (const id of ids) rows.push(await rowFor(tablesDir, id));
      assert.ok(rows.every((r) => r.status_code === 200 && r.finish_status === 'completed'));
      const retried = rows.filter((r) => r.attempt_count === 2);
      assert.ok(retried.length >= 1, `some request hit the dead replica first: ${rows.map((r) => r.attempt_count)}`);
      for (const r of retried) assert.deepEqual(r.attempts.map((a) => a.outcome), ['retry', 'ok']);
    } finally {
      await ms[0].stop().catch(() => {}); // killed on purpose: its stop reports the SIGKILL
      await stopEach(agate, ms[1]);
    }
  });
});
