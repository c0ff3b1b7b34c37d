// Raw SSE checks from the PROTOCOL.md §9 checklist, read byte-for-byte with fetch (no SDK).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, sse, sseUntil, http, crid, rowFor, checkEventSequence, checkOpenAIFraming,
  checkDatabricksFraming, checkResponseObject, outputText,
} from './lib.mjs';
import { SUCCESS, MIDSTREAM_ERRORS, HTTP_ERRORS, checkScenarioResponse } from './scenarios.mjs';

let stack;
let base;
before(async () => {
  stack = await startStack();
  base = stack.agate.base;
});
after(async () => { await stack?.stop(); });

const T = { timeout: 20_000 };
const openai = (scenario, extra = {}) => sse(`${base}/v1/responses`, { model: 'chat-agent', input: `hello mock:${scenario}`, stream: true, ...extra });
const dbx = (scenario, extra = {}) => sse(`${base}/serving-endpoints/chat-agent/invocations`, { input: [{ role: 'user', content: `hello mock:${scenario}` }], stream: true, ...extra });
const types = (events) => events.map((e) => e.type);

describe('OpenAI route: every success scenario passes the §4.3 invariants', () => {
  for (const [name, exp] of Object.entries(SUCCESS)) {
    test(name, T, async () => {
      const s = await openai(name);
      checkOpenAIFraming(s);
      const r = checkEventSequence(s.events);
      assert.equal(r.terminal.type, exp.status === 'incomplete' ? 'response.incomplete' : 'response.completed');
      checkScenarioResponse(r.terminal.response, exp, { where: `${name} terminal` });
      assert.equal(r.created.model, 'chat-agent', 'response.created carries the client model');
    });
  }
});

describe('OpenAI route: scenario specifics', () => {
  test('headers: 200, text/event-stream; charset=utf-8, no-cache, x-request-id', T, async () => {
    const s = await openai('text');
    assert.equal(s.status, 200);
    assert.equal(s.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(s.headers.get('cache-control'), 'no-cache');
    assert.ok(s.headers.get('x-request-id'));
  });

  test('text: worked example (a) event sequence and deltas', T, async () => {
    const s = await openai('text');
    assert.deepEqual(types(s.events), [
      'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      'response.output_text.delta', 'response.output_text.delta', 'response.output_text.done',
      'response.content_part.done', 'response.output_item.done', 'response.completed',
    ]);
    assert.deepEqual(s.events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta), ['Hi', ' there!']);
    const created = s.events[0].response;
    assert.equal(created.status, 'in_progress');
    assert.equal(created.usage, null);
    assert.equal(created.error, null);
  });

  for (const n of [2, 3, 5]) {
    test(`tools${n}: interleaved calls give ${n} items with unmixed arguments, forwarded one-to-one`, T, async () => {
      const s = await openai(`tools${n}`);
      const r = checkEventSequence(s.events);
      assert.equal(r.items.length, n);
      r.items.forEach((it, i) => {
        assert.equal(it.type, 'function_call');
        assert.equal(it.call_id, `call_${i}`, 'call_id is the upstream id');
        assert.equal(it.name, `tool_${i}`);
        assert.equal(it.arguments, `{"i":${i}}`);
      });
      const deltas = s.events.filter((e) => e.type === 'response.function_call_arguments.delta' && e.delta !== '');
      const idx = [...Array(n).keys()];
      assert.deepEqual(deltas.map((e) => e.output_index), [...idx, ...idx], 'fragments keep the upstream round-robin order');
      assert.deepEqual(deltas.map((e) => e.delta), [...idx.map(() => '{"i":'), ...idx.map((i) => `${i}}`)]);
      const firstDelta = s.events.indexOf(deltas[0]);
      const added = s.events.filter((e) => e.type === 'response.output_item.added');
      assert.ok(added.every((e) => s.events.indexOf(e) < firstDelta), 'all calls announced (with call_id and name) before the first fragment');
      const doneIdx = s.events.filter((e) => e.type === 'response.output_item.done').map((e) => e.output_index);
      assert.deepEqual(doneIdx, idx, 'calls closed in output_index order');
    });
  }

  test('text_then_tools: message closed before the calls are added', T, async () => {
    const s = await openai('text_then_tools');
    const r = checkEventSequence(s.events);
    assert.deepEqual(r.items.map((i) => i.type), ['message', 'function_call', 'function_call']);
    const msgDone = s.events.findIndex((e) => e.type === 'response.output_item.done' && e.output_index === 0);
    const fcAdded = s.events.findIndex((e) => e.type === 'response.output_item.added' && e.output_index === 1);
    assert.ok(msgDone >= 0 && msgDone < fcAdded, 'message done before first call added');
  });

  test('tool_args_empty: a "{}" delta before arguments.done', T, async () => {
    const s = await openai('tool_args_empty');
    checkEventSequence(s.events);
    const deltas = s.events.filter((e) => e.type === 'response.function_call_arguments.delta');
    assert.equal(deltas.map((e) => e.delta).join(''), '{}');
    const done = s.events.find((e) => e.type === 'response.function_call_arguments.done');
    assert.equal(done.arguments, '{}');
    assert.equal(done.name, 'noop');
  });

  test('tool_args_once: whole arguments in the announcing piece give one delta', T, async () => {
    const s = await openai('tool_args_once');
    checkEventSequence(s.events);
    const deltas = s.events.filter((e) => e.type === 'response.function_call_arguments.delta' && e.delta !== '');
    assert.deepEqual(deltas.map((e) => e.delta), ['{"q":"x"}']);
    const added = s.events.find((e) => e.type === 'response.output_item.added');
    assert.equal(added.item.call_id, 'call_x');
    assert.equal(added.item.name, 'lookup');
  });

  test('tool_args_late: arguments arriving with finish_reason are not lost', T, async () => {
    const s = await openai('tool_args_late');
    const r = checkEventSequence(s.events);
    assert.equal(r.items.length, 1);
    assert.equal(r.items[0].arguments, '{"late":true}');
  });

  for (const name of ['reasoning', 'reasoning_field']) {
    test(`${name}: reasoning item with summary events, closed before the message`, T, async () => {
      const s = await openai(name);
      const r = checkEventSequence(s.events);
      assert.deepEqual(r.items.map((i) => i.type), ['reasoning', 'message']);
      const deltas = s.events.filter((e) => e.type === 'response.reasoning_summary_text.delta');
      assert.equal(deltas.map((e) => e.delta).join(''), 'Thinking...');
      assert.ok(deltas.every((e) => e.output_index === 0 && e.summary_index === 0));
      assert.ok(s.events.some((e) => e.type === 'response.reasoning_summary_part.added'));
      assert.equal(r.terminal.response.usage.output_tokens_details.reasoning_tokens, 2);
    });
  }

  test('refusal: refusal part with refusal.delta/.done, no output_text events', T, async () => {
    const s = await openai('refusal');
    const r = checkEventSequence(s.events);
    const deltas = s.events.filter((e) => e.type === 'response.refusal.delta');
    assert.deepEqual(deltas.map((e) => e.delta), ["I can't", ' help.']);
    const done = s.events.find((e) => e.type === 'response.refusal.done');
    assert.equal(done.refusal, "I can't help.");
    assert.ok(!s.events.some((e) => e.type.startsWith('response.output_text')), 'no output_text events');
    const partAdded = s.events.find((e) => e.type === 'response.content_part.added');
    assert.equal(partAdded.part.type, 'refusal');
    assert.equal(r.items[0].content[0].refusal, "I can't help.");
  });

  for (const [name, reason] of [['length', 'max_output_tokens'], ['content_filter', 'content_filter']]) {
    test(`${name}: response.incomplete with reason ${reason}`, T, async () => {
      const s = await openai(name);
      const r = checkEventSequence(s.events);
      assert.equal(r.terminal.type, 'response.incomplete');
      assert.deepEqual(r.terminal.response.incomplete_details, { reason });
      assert.equal(r.items[0].status, 'incomplete');
    });
  }

  test('usage: from the trailing usage chunk with both detail objects; none upstream → null', T, async () => {
    const a = await openai('text');
    assert.deepEqual(a.events.at(-1).response.usage, {
      input_tokens: 12, input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 15,
    });
    const b = await openai('no_usage');
    assert.equal(b.events.at(-1).type, 'response.completed');
    assert.equal(b.events.at(-1).response.usage, null, 'never invent numbers');
  });

  test('utf8_split: characters split across reads arrive intact, no U+FFFD', T, async () => {
    const s = await openai('utf8_split');
    new TextDecoder('utf-8', { fatal: true }).decode(s.bytes); // throws on invalid UTF-8
    const r = checkEventSequence(s.events);
    const deltas = s.events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
    assert.ok(deltas.every((d) => !d.includes('\uFFFD')), 'no replacement characters');
    assert.ok(deltas.every((d) => !/[\uD800-\uDBFF]$/.test(d) && !/^[\uDC00-\uDFFF]/.test(d)), 'no split surrogate pairs');
    assert.equal(deltas.join(''), 'héllo wörld 😀 日本語');
    assert.equal(r.texts[0], 'héllo wörld 😀 日本語');
  });

  test('crlf / nospace / comments / multiline / unknown_fields behave exactly like text', T, async () => {
    const ref = await openai('text');
    const refTypes = types(ref.events);
    const refDeltas = ref.events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
    for (const name of ['crlf', 'nospace', 'comments', 'multiline', 'unknown_fields']) {
      const s = await openai(name);
      checkOpenAIFraming(s);
      checkEventSequence(s.events);
      assert.deepEqual(types(s.events), refTypes, `${name}: same event types as text`);
      assert.deepEqual(s.events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta), refDeltas, `${name}: same deltas`);
      assert.deepEqual(s.events.at(-1).response.usage, ref.events.at(-1).response.usage, `${name}: same usage`);
    }
  });

  test('json: a non-SSE ChatCompletion to a stream request is synthesised into events', T, async () => {
    const s = await openai('json');
    checkOpenAIFraming(s);
    const r = checkEventSequence(s.events);
    assert.equal(r.terminal.type, 'response.completed');
    assert.equal(outputText(r.terminal.response), 'Plain JSON answer.');
  });

  test('eof_after_finish: EOF after finish_reason without [DONE] → response.completed', T, async () => {
    const s = await openai('eof_after_finish');
    const r = checkEventSequence(s.events);
    assert.equal(r.terminal.type, 'response.completed');
    assert.equal(outputText(r.terminal.response), 'Hi there!');
  });

  test('long: 5000 deltas stream through intact', T, async () => {
    const s = await openai('long');
    const r = checkEventSequence(s.events);
    assert.equal(r.terminal.type, 'response.completed');
    assert.equal(r.texts[0].length, 500_000);
    assert.ok(r.texts[0] === ('x'.repeat(99) + ' ').repeat(5000), 'text intact');
  });
});

describe('OpenAI route: failures after commit (§5.3)', () => {
  for (const [name, message] of Object.entries(MIDSTREAM_ERRORS)) {
    test(`${name}: response.failed then error with flat + nested + databricks_output.error`, T, async () => {
      const s = await openai(name);
      checkOpenAIFraming(s);
      const r = checkEventSequence(s.events);
      const [failed, err] = s.events.slice(-2);
      assert.equal(failed.type, 'response.failed');
      assert.equal(err.type, 'error');
      assert.equal(err.sequence_number, failed.sequence_number + 1, 'error event numbered too');
      assert.deepEqual(failed.response.error, { code: 'server_error', message });
      assert.equal(err.code, 'server_error');
      assert.equal(err.message, message);
      assert.equal(err.param, null);
      assert.deepEqual(err.error, { type: 'server_error', code: 'upstream_error', message, param: null });
      assert.deepEqual(err.databricks_output.error, { error_code: 'INTERNAL_ERROR', message });
      const m = r.items.find((i) => i.type === 'message');
      assert.ok(m, 'partial message kept');
      assert.equal(m.status, 'incomplete');
      assert.ok(m.content[0].text.length > 0, 'partial text kept');
    });
  }

  test('abrupt_close: EOF before finish_reason → response.failed (server_error, INTERNAL_ERROR)', T, async () => {
    const s = await openai('abrupt_close');
    checkOpenAIFraming(s);
    const r = checkEventSequence(s.events);
    assert.equal(r.terminal.type, 'response.failed');
    assert.equal(r.terminal.response.error.code, 'server_error');
    assert.equal(r.error.databricks_output.error.error_code, 'INTERNAL_ERROR');
    assert.equal(r.items.length, 1);
    assert.equal(r.items[0].content[0].text, 'Hi');
    assert.equal(r.items[0].status, 'incomplete');
  });

  test('huge_line: a 2 MiB event fails the stream cleanly and the gateway keeps serving', T, async () => {
    const s = await openai('huge_line');
    checkOpenAIFraming(s);
    const r = checkEventSequence(s.events);
    assert.equal(r.terminal.type, 'response.failed');
    assert.ok(r.error, 'error event sent');
    assert.ok(s.bytes.length < 1024 * 1024, `the oversize line is not relayed (${s.bytes.length} bytes received)`);
    const after1 = await openai('text');
    assert.equal(checkEventSequence(after1.events).terminal.type, 'response.completed');
  });

  test('error_first and upstream HTTP errors on a stream request → plain JSON error, no SSE', T, async () => {
    for (const [name, want] of Object.entries(HTTP_ERRORS)) {
      const s = await openai(name);
      assert.equal(s.status, want.status, `${name} status`);
      assert.doesNotMatch(s.headers.get('content-type') || '', /event-stream/, `${name}: not SSE`);
      assert.ok(s.json && s.json.error, `${name}: JSON error body`);
      assert.equal(s.json.error.message, want.message, `${name}: upstream message`);
      assert.equal(s.json.error_code, want.error_code, `${name}: error_code`);
    }
  });
});

describe('Databricks route: /serving-endpoints/chat-agent/invocations', () => {
  test('text stream: data-only frames, same events, ends with data: [DONE]', T, async () => {
    const s = await dbx('text');
    checkDatabricksFraming(s);
    const r = checkEventSequence(s.events, { route: 'databricks' });
    assert.equal(r.terminal.type, 'response.completed');
    assert.equal(s.events.at(-1), r.terminal, 'terminal event is the last event before [DONE]');
    assert.equal(r.terminal.response.model, 'chat-agent', 'no model in the request: echo the endpoint name');
    assert.equal(outputText(r.terminal.response), 'Hi there!');
    assert.equal(s.events.at(-1).databricks_output.databricks_request_id, s.headers.get('x-request-id'));
  });

  test('tools3 stream on the Databricks route', T, async () => {
    const s = await dbx('tools3');
    checkDatabricksFraming(s);
    const r = checkEventSequence(s.events, { route: 'databricks' });
    assert.deepEqual(r.items.map((i) => i.call_id), ['call_0', 'call_1', 'call_2']);
    assert.deepEqual(r.items.map((i) => i.arguments), ['{"i":0}', '{"i":1}', '{"i":2}']);
  });

  test('same event types on both routes', T, async () => {
    const a = await openai('reasoning');
    const b = await dbx('reasoning');
    assert.deepEqual(types(b.events), types(a.events));
  });

  test('mid-stream failure: response.failed, error (databricks_output.error), [DONE]', T, async () => {
    const s = await dbx('error_openai');
    checkDatabricksFraming(s);
    const r = checkEventSequence(s.events, { route: 'databricks' });
    assert.equal(r.terminal.type, 'response.failed');
    assert.equal(s.events.at(-1).type, 'error', 'error event is the last before [DONE]');
    assert.deepEqual(s.events.at(-1).databricks_output.error, { error_code: 'INTERNAL_ERROR', message: 'Tool XYZ failed to execute.' });
  });

  test('non-streaming: Responses object with databricks_output.databricks_request_id', T, async () => {
    const res = await http('POST', `${base}/serving-endpoints/chat-agent/invocations`, { body: { input: [{ role: 'user', content: 'hello mock:text' }] } });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type') || '', /^application\/json/);
    checkResponseObject(res.json);
    assert.equal(res.json.model, 'chat-agent');
    assert.equal(outputText(res.json), 'Hi there!');
    assert.equal(res.json.databricks_output.databricks_request_id, res.headers.get('x-request-id'));
  });

  test('explicit model is echoed verbatim; custom_inputs/context/databricks_options accepted', T, async () => {
    const s = await dbx('text', {
      model: 'my-client-model',
      custom_inputs: { thread: 'abc' },
      context: { conversation_id: 'conv-42', user_id: 'u-7' },
      databricks_options: { return_trace: true },
    });
    checkDatabricksFraming(s);
    const r = checkEventSequence(s.events, { route: 'databricks' });
    assert.equal(r.terminal.response.model, 'my-client-model');
  });
});

describe('client disconnect', () => {
  test('disconnect mid-`slow` stream is logged with finish_status cancelled', T, async () => {
    const id = crid('cancel');
    const t0 = Date.now();
    const got = await sseUntil(`${base}/v1/responses`,
      { model: 'chat-agent', input: 'hello mock:slow', stream: true, client_request_id: id },
      (evs) => evs.filter((e) => e.type === 'response.output_text.delta').length >= 2);
    assert.equal(got.status, 200);
    assert.ok(got.events.filter((e) => e.type === 'response.output_text.delta').length >= 2, 'read two deltas before disconnecting');
    const row = await rowFor(stack.tablesDir, id, 8000);
    assert.equal(row.finish_status, 'cancelled');
    assert.equal(row.status_code, 200, 'headers had gone out');
    assert.equal(row.stream, true);
    assert.ok(Date.now() - t0 < 10_000);
    assert.ok(row.total_duration_ms < 1800, `logged at abandonment, not after the full 2 s upstream stream (total_duration_ms=${row.total_duration_ms})`);
    if (row.response !== null) {
      const agg = JSON.parse(row.response);
      assert.equal(agg.status, 'cancelled');
      assert.ok(outputText(agg).startsWith('tick tick '), 'partial output logged');
    }
    const s = await openai('text');
    assert.equal(checkEventSequence(s.events).terminal.type, 'response.completed', 'gateway keeps serving');
  });
});
