// What the gateway must produce for each mock scenario: the upstream facts come from
// bench/MOCK_SCENARIOS.md and the scenario steps in bench/mock_upstream.c (usage numbers, ids);
// the expected translation from PROTOCOL.md §7.2-§7.4.

import assert from 'node:assert/strict';
import { checkItem, expectedUsage } from './lib.mjs';

const msg = (text, status) => ({ type: 'message', text, status });
const refusal = (text) => ({ type: 'message', refusal: text });
const fc = (call_id, name, args) => ({ type: 'function_call', call_id, name, arguments: args });
const rs = (summary) => ({ type: 'reasoning', summary });
const tools = (n) => Array.from({ length: n }, (_, i) => fc(`call_${i}`, `tool_${i}`, `{"i":${i}}`));

const TEXT = { items: [msg('Hi there!')], usage: expectedUsage(12, 3) };

/** Success scenarios: items, usage (object, null, or undefined = not checked), status, reason. */
export const SUCCESS = {
  text: TEXT,
  tools2: { items: tools(2), usage: expectedUsage(85, 31) },
  tools3: { items: tools(3), usage: expectedUsage(85, 31) },
  tools5: { items: tools(5), usage: expectedUsage(85, 31) },
  text_then_tools: { items: [msg('Let me check.'), fc('call_a', 'get_weather', '{"city":"Paris"}'), fc('call_b', 'get_time', '{"tz":"UTC"}')], usage: expectedUsage(40, 25) },
  tool_args_once: { items: [fc('call_x', 'lookup', '{"q":"x"}')], usage: expectedUsage(20, 8) },
  tool_args_empty: { items: [fc('call_e', 'noop', '{}')], usage: expectedUsage(20, 5) },
  tool_args_late: { items: [fc('call_l', 'set_flag', '{"late":true}')], usage: expectedUsage(20, 7) },
  utf8_split: { items: [msg('héllo wörld 😀 日本語')], usage: expectedUsage(12, 8) },
  reasoning: { items: [rs('Thinking...'), msg('Answer.')], usage: expectedUsage(12, 5, { reasoning: 2 }) },
  reasoning_field: { items: [rs('Thinking...'), msg('Answer.')], usage: expectedUsage(12, 5, { reasoning: 2 }) },
  refusal: { items: [refusal("I can't help.")], usage: expectedUsage(12, 4) },
  length: { items: [msg('Truncat', 'incomplete')], status: 'incomplete', reason: 'max_output_tokens', usage: expectedUsage(12, 2) },
  content_filter: { items: [msg('Blocked', 'incomplete')], status: 'incomplete', reason: 'content_filter', usage: expectedUsage(12, 1) },
  no_usage: { items: [msg('Hi there!')], usage: null },
  json: { items: [msg('Plain JSON answer.')], usage: expectedUsage(5, 4) },
  crlf: TEXT,
  nospace: TEXT,
  comments: TEXT,
  multiline: TEXT,
  unknown_fields: TEXT,
  eof_after_finish: TEXT,
  slow: { items: [msg('tick '.repeat(10))], usage: expectedUsage(12, 10) },
  long: { items: [msg(('x'.repeat(99) + ' ').repeat(5000))], usage: expectedUsage(12, 5000), big: true },
};

/** Mid-stream failures (after the first normal chunk): the upstream message reaches the client. */
export const MIDSTREAM_ERRORS = {
  error_openai: 'Tool XYZ failed to execute.',
  error_vllm: 'vLLM engine died',
  error_sglang: 'SGLang request aborted',
  error_llamacpp: 'llama.cpp context overflow',
  error_openrouter: 'Provider returned error',
};

/** Other stream breakages: no fixed message, but the stream must fail (§7.3, §8). */
export const BROKEN_STREAMS = ['abrupt_close', 'huge_line'];

/**
 * Pre-stream upstream errors → plain HTTP errors (§7.6): OpenAI-route status, error type/code,
 * Databricks error_code (whose §5.4 status the Databricks route must use), upstream message.
 */
export const HTTP_ERRORS = {
  http400: { status: 400, type: 'invalid_request_error', code: 'upstream_bad_request', error_code: 'BAD_REQUEST', message: 'bad request from upstream' },
  http401: { status: 502, type: 'server_error', code: 'upstream_config', error_code: 'INTERNAL_ERROR', message: 'invalid api key' },
  http429: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded', error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'rate limited by upstream', retryAfter: '7' },
  http500: { status: 502, type: 'server_error', code: 'upstream_error', error_code: 'INTERNAL_ERROR', message: 'upstream exploded' },
  http503: { status: 502, type: 'server_error', code: 'upstream_error', error_code: 'INTERNAL_ERROR', message: 'service unavailable' },
  error_first: { status: 502, type: 'server_error', code: 'upstream_error', error_code: 'INTERNAL_ERROR', message: 'model overloaded' },
};

/**
 * Asserts that a Responses object (from the wire or from the SDK) matches a SUCCESS entry.
 * `sdk` = the object came through the openai SDK (which adds output_text).
 */
export function checkScenarioResponse(r, exp, { sdk = false, where = 'response' } = {}) {
  const status = exp.status ?? 'completed';
  assert.equal(r.status, status, `${where}.status`);
  assert.equal(r.model, 'chat-agent', `${where}.model echoes the client model, never the upstream one`);
  assert.equal(r.error, null, `${where}.error`);
  if (exp.reason) assert.deepEqual(r.incomplete_details, { reason: exp.reason }, `${where}.incomplete_details`);
  else assert.equal(r.incomplete_details, null, `${where}.incomplete_details`);
  assert.equal(r.output.length, exp.items.length, `${where}.output has ${exp.items.length} items (got ${r.output.map((i) => i.type).join(',')})`);
  for (const [i, want] of exp.items.entries()) {
    const got = r.output[i];
    const at = `${where}.output[${i}]`;
    checkItem(got, at);
    assert.equal(got.type, want.type, `${at}.type`);
    assert.equal(got.status, want.status ?? (status === 'completed' ? 'completed' : 'incomplete'), `${at}.status`);
    if (want.type === 'message') {
      if (want.refusal !== undefined) {
        assert.deepEqual(got.content.map((c) => ({ type: c.type, refusal: c.refusal })), [{ type: 'refusal', refusal: want.refusal }], `${at}.content is one refusal part`);
      } else {
        assert.equal(got.content.length, 1, `${at} has one part`);
        assert.equal(got.content[0].type, 'output_text', `${at}.content[0].type`);
        if (exp.big) assert.ok(got.content[0].text === want.text, `${at} text (${got.content[0].text.length} chars) equals the ${want.text.length}-char upstream text`);
        else assert.equal(got.content[0].text, want.text, `${at} text`);
        assert.deepEqual(got.content[0].annotations, [], `${at} annotations []`);
      }
    } else if (want.type === 'function_call') {
      assert.equal(got.call_id, want.call_id, `${at}.call_id is the upstream id verbatim`);
      assert.equal(got.name, want.name, `${at}.name`);
      assert.equal(got.arguments, want.arguments, `${at}.arguments`);
    } else if (want.type === 'reasoning') {
      assert.deepEqual(got.summary, [{ type: 'summary_text', text: want.summary }], `${at}.summary`);
    }
  }
  if (exp.usage !== undefined) assert.deepEqual(r.usage, exp.usage, `${where}.usage`);
  if (sdk) {
    const text = exp.items.filter((i) => i.type === 'message' && i.text !== undefined).map((i) => i.text).join('');
    assert.ok(r.output_text === text, `${where}.output_text (SDK) equals the streamed text (${String(r.output_text).length} vs ${text.length} chars)`);
  }
}

export const SCENARIO_NAMES = Object.keys(SUCCESS);
