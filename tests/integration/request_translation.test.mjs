// Responses request → upstream ChatCompletions request (PROTOCOL.md §6.1, §7.1), read back from
// the mock's GET /last-request.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, postJSON, sse } from './lib.mjs';

let stack;
let base;
before(async () => {
  stack = await startStack();
  base = stack.agate.base;
});
after(async () => { await stack?.stop(); });

const T = { timeout: 15_000 };

/** Sends a Responses request (non-streaming unless body.stream) and returns the upstream body. */
async function upstreamFor(body, { route = 'openai' } = {}) {
  const url = route === 'openai' ? `${base}/v1/responses` : `${base}/serving-endpoints/chat-agent/invocations`;
  const full = route === 'openai' ? { model: 'chat-agent', ...body } : body;
  if (full.stream) {
    const s = await sse(url, full);
    assert.equal(s.status, 200, s.raw.slice(0, 500));
    assert.ok(s.events.some((e) => e.type === 'response.completed'), 'request completed');
  } else {
    const r = await postJSON(url, full);
    assert.equal(r.status, 200, r.text.slice(0, 500));
  }
  return stack.mock.lastRequest();
}

const weatherTool = { type: 'function', name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: true };
const fcA = { type: 'function_call', call_id: 'call_a', name: 'get_weather', arguments: '{"city":"Paris"}' };
const fcB = { type: 'function_call', call_id: 'call_b', name: 'get_time', arguments: '{"tz":"UTC"}' };
const tcA = { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };
const tcB = { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"tz":"UTC"}' } };

describe('worked example', () => {
  test('the §2 request becomes exactly the §6.1 upstream request', T, async () => {
    const up = await upstreamFor({
      model: 'chat-agent', stream: true, instructions: 'You are terse.',
      input: [
        { role: 'user', content: 'Weather in Paris and time in UTC?' },
        fcA, fcB,
        { type: 'function_call_output', call_id: 'call_a', output: '18C, cloudy' },
        { type: 'function_call_output', call_id: 'call_b', output: '14:05' },
      ],
      tools: [weatherTool, { type: 'function', name: 'get_time', parameters: { type: 'object' } }],
      tool_choice: 'auto', parallel_tool_calls: true, temperature: 0.2, top_p: 1, max_output_tokens: 512,
      text: { format: { type: 'json_schema', name: 'answer', schema: { type: 'object' }, strict: true } },
      reasoning: { effort: 'low' }, metadata: { ticket: 'T-17' }, user: 'u-7',
    });
    assert.deepEqual(up, {
      model: 'mock-model', stream: true, stream_options: { include_usage: true },
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Weather in Paris and time in UTC?' },
        { role: 'assistant', content: null, tool_calls: [tcA, tcB] },
        { role: 'tool', tool_call_id: 'call_a', content: '18C, cloudy' },
        { role: 'tool', tool_call_id: 'call_b', content: '14:05' },
      ],
      tools: [
        { type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: true } },
        { type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } },
      ],
      tool_choice: 'auto', parallel_tool_calls: true, temperature: 0.2, top_p: 1, max_tokens: 512,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } },
      reasoning_effort: 'low', user: 'u-7',
    });
  });
});

describe('messages', () => {
  test('string input → one user message; model is the configured upstream model', T, async () => {
    const up = await upstreamFor({ input: 'hello there' });
    assert.equal(up.model, 'mock-model');
    assert.deepEqual(up.messages, [{ role: 'user', content: 'hello there' }]);
  });

  test('instructions and the system/developer messages after them merge into one system message', T, async () => {
    const up = await upstreamFor({
      instructions: 'Be brief.',
      input: [
        { role: 'developer', content: 'dev rule' },
        { role: 'system', content: 'sys rule' },
        { type: 'message', role: 'user', content: 'q' },
      ],
    });
    // system_messages "merge" (default): strict chat templates accept one system message first;
    // developer → system for non-OpenAI backends; joined by a blank line.
    assert.deepEqual(up.messages, [
      { role: 'system', content: 'Be brief.\n\ndev rule\n\nsys rule' },
      { role: 'user', content: 'q' },
    ]);
  });

  test('consecutive function_call items → one assistant message with several tool_calls', T, async () => {
    const up = await upstreamFor({ input: [{ role: 'user', content: 'q' }, fcA, fcB, { type: 'function_call_output', call_id: 'call_a', output: 'o1' }, { type: 'function_call_output', call_id: 'call_b', output: 'o2' }] });
    const assistants = up.messages.filter((m) => m.role === 'assistant');
    assert.equal(assistants.length, 1);
    assert.deepEqual(assistants[0], { role: 'assistant', content: null, tool_calls: [tcA, tcB] });
  });

  test('function calls merge into a directly preceding assistant text message', T, async () => {
    const up = await upstreamFor({
      input: [
        { role: 'user', content: 'q' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Let me check.', annotations: [] }] },
        fcA, fcB,
        { type: 'function_call_output', call_id: 'call_a', output: 'o1' },
        { type: 'function_call_output', call_id: 'call_b', output: 'o2' },
      ],
    });
    assert.deepEqual(up.messages, [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'Let me check.', tool_calls: [tcA, tcB] },
      { role: 'tool', tool_call_id: 'call_a', content: 'o1' },
      { role: 'tool', tool_call_id: 'call_b', content: 'o2' },
    ]);
  });

  test('function_call_output → tool messages in input order', T, async () => {
    const up = await upstreamFor({
      input: [{ role: 'user', content: 'q' }, fcA, fcB,
        { type: 'function_call_output', call_id: 'call_b', output: 'second-first' },
        { type: 'function_call_output', call_id: 'call_a', output: 'first-second' }],
    });
    assert.deepEqual(up.messages.filter((m) => m.role === 'tool'), [
      { role: 'tool', tool_call_id: 'call_b', content: 'second-first' },
      { role: 'tool', tool_call_id: 'call_a', content: 'first-second' },
    ]);
  });

  test('nothing merges across user turns', T, async () => {
    const up = await upstreamFor({
      input: [
        { role: 'user', content: 'turn one' },
        fcA,
        { type: 'function_call_output', call_id: 'call_a', output: 'o1' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Sunny.', annotations: [] }] },
        { role: 'user', content: 'turn two' },
        { role: 'user', content: 'and more' },
        fcB,
        { type: 'function_call_output', call_id: 'call_b', output: 'o2' },
      ],
    });
    assert.deepEqual(up.messages, [
      { role: 'user', content: 'turn one' },
      { role: 'assistant', content: null, tool_calls: [tcA] },
      { role: 'tool', tool_call_id: 'call_a', content: 'o1' },
      { role: 'assistant', content: 'Sunny.' },
      { role: 'user', content: 'turn two' },
      { role: 'user', content: 'and more' },
      { role: 'assistant', content: null, tool_calls: [tcB] },
      { role: 'tool', tool_call_id: 'call_b', content: 'o2' },
    ]);
  });

  test('history as frameworks send it: ids, statuses and reasoning items (dropped)', T, async () => {
    const up = await upstreamFor({
      input: [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'q' }] },
        { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'thinking' }] },
        { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'get_weather', arguments: '{"city":"Paris"}', status: 'completed' },
        { type: 'function_call_output', call_id: 'call_a', output: '18C', status: 'completed' },
      ],
    });
    assert.deepEqual(up.messages, [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: null, tool_calls: [tcA] },
      { role: 'tool', tool_call_id: 'call_a', content: '18C' },
    ]);
  });

  test('text parts join with \\n; images keep a part list; empty arguments become "{}"', T, async () => {
    const up = await upstreamFor({
      input: [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'line one' }, { type: 'input_text', text: 'line two' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'a1', annotations: [] }, { type: 'output_text', text: 'a2', annotations: [] }] },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'What is this?' }, { type: 'input_image', image_url: 'https://example.com/cat.png', detail: 'auto' }] },
        { type: 'function_call', call_id: 'call_e', name: 'noop', arguments: '' },
        { type: 'function_call_output', call_id: 'call_e', output: [{ type: 'input_text', text: 'out1' }, { type: 'input_text', text: 'out2' }] },
      ],
    });
    assert.deepEqual(up.messages, [
      { role: 'user', content: 'line one\nline two' },
      { role: 'assistant', content: 'a1\na2' },
      { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'auto' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_e', type: 'function', function: { name: 'noop', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_e', content: 'out1\nout2' },
    ]);
  });
});

describe('tools, formats and parameters', () => {
  test('tools keep only present keys; named tool_choice nests under function', T, async () => {
    const up = await upstreamFor({
      input: 'q',
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }, weatherTool],
      tool_choice: { type: 'function', name: 'f' },
      parallel_tool_calls: false,
    });
    assert.deepEqual(up.tools, [
      { type: 'function', function: { name: 'f', parameters: { type: 'object' } } },
      { type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: weatherTool.parameters, strict: true } },
    ]);
    assert.deepEqual(up.tool_choice, { type: 'function', function: { name: 'f' } });
    assert.equal(up.parallel_tool_calls, false);
  });

  test('string tool_choice passes through', T, async () => {
    for (const choice of ['none', 'required', 'auto']) {
      const up = await upstreamFor({ input: 'q', tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }], tool_choice: choice });
      assert.equal(up.tool_choice, choice);
    }
  });

  test('parallel_tool_calls is only sent with tools', T, async () => {
    const up = await upstreamFor({ input: 'q', parallel_tool_calls: true });
    assert.ok(!('parallel_tool_calls' in up), 'absent without tools');
    assert.ok(!('tools' in up) || up.tools.length === 0);
  });

  test('text.format: json_schema nests (with description), json_object maps, text is omitted', T, async () => {
    let up = await upstreamFor({ input: 'q', text: { format: { type: 'json_schema', name: 'answer', description: 'The answer', schema: { type: 'object', properties: { a: { type: 'string' } } }, strict: false } } });
    assert.deepEqual(up.response_format, { type: 'json_schema', json_schema: { name: 'answer', description: 'The answer', schema: { type: 'object', properties: { a: { type: 'string' } } }, strict: false } });
    up = await upstreamFor({ input: 'q', text: { format: { type: 'json_object' } } });
    assert.deepEqual(up.response_format, { type: 'json_object' });
    up = await upstreamFor({ input: 'q', text: { format: { type: 'text' } } });
    assert.ok(!('response_format' in up), 'text format → no response_format');
  });

  test('always streams upstream with include_usage, also for non-streaming clients', T, async () => {
    const up = await upstreamFor({ input: 'q', stream: false });
    assert.equal(up.stream, true);
    assert.deepEqual(up.stream_options, { include_usage: true });
  });

  test('max_output_tokens → max_tokens (default backend setting); reasoning.effort → reasoning_effort', T, async () => {
    const up = await upstreamFor({ input: 'q', max_output_tokens: 77, reasoning: { effort: 'high' }, top_p: 0.5, user: 'alice' });
    assert.equal(up.max_tokens, 77);
    assert.ok(!('max_output_tokens' in up));
    assert.equal(up.reasoning_effort, 'high');
    assert.ok(!('reasoning' in up));
    assert.equal(up.top_p, 0.5);
    assert.equal(up.user, 'alice');
  });

  test('endpoint params are defaults that the request overrides', T, async () => {
    let up = await upstreamFor({ input: 'q' });
    assert.equal(up.temperature, 0.2, 'configured default applied');
    up = await upstreamFor({ input: 'q', temperature: 0.9 });
    assert.equal(up.temperature, 0.9, 'request value wins');
    up = await upstreamFor({ input: 'q', temperature: 0 });
    assert.equal(up.temperature, 0, 'zero is a value, not absence');
  });

  test('never sent upstream: metadata, store, n, logprobs, ignored and unknown fields', T, async () => {
    const up = await upstreamFor({
      input: 'q', metadata: { k: 'v' }, store: true, include: [], truncation: 'auto', service_tier: 'auto',
      prompt_cache_key: 'pck', safety_identifier: 'sid', top_logprobs: 2, client_request_id: 'cr-1', some_future_field: { x: 1 },
    });
    for (const k of ['metadata', 'store', 'n', 'logprobs', 'include', 'truncation', 'service_tier', 'prompt_cache_key',
      'safety_identifier', 'top_logprobs', 'client_request_id', 'some_future_field', 'input', 'instructions', 'text', 'max_output_tokens']) {
      assert.ok(!(k in up), `${k} not sent upstream`);
    }
  });

  test('what frameworks send is accepted (§8b): include [], strict null, $schema, text {}, no stream key', T, async () => {
    const up = await upstreamFor({
      input: [{ type: 'message', role: 'user', content: 'q' }],
      include: [],
      text: {},
      tool_choice: 'auto',
      tools: [
        { type: 'function', name: 'a', parameters: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: {} }, strict: null },
        { type: 'function', name: 'b', parameters: { type: 'object' }, strict: true },
      ],
    });
    assert.deepEqual(up.messages, [{ role: 'user', content: 'q' }]);
    assert.deepEqual(up.tools.map((t) => t.function.name), ['a', 'b']);
    assert.equal(up.tools[0].function.parameters.$schema, 'http://json-schema.org/draft-07/schema#', 'parameters forwarded untouched');
    assert.ok(!('response_format' in up));
  });
});

describe('Databricks route', () => {
  test('same translation; custom_inputs/context/databricks_options not sent to a chat upstream', T, async () => {
    const up = await upstreamFor({
      input: [{ role: 'user', content: 'Hello!' }], stream: true,
      custom_inputs: { thread: 'abc' }, context: { conversation_id: 'conv-42', user_id: 'u-7' }, databricks_options: { return_trace: true },
    }, { route: 'databricks' });
    assert.equal(up.model, 'mock-model');
    assert.deepEqual(up.messages, [{ role: 'user', content: 'Hello!' }]);
    assert.equal(up.temperature, 0.2);
    for (const k of ['custom_inputs', 'context', 'databricks_options']) assert.ok(!(k in up), `${k} not sent`);
  });
});
