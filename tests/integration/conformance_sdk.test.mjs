// Conformance through the official openai SDK (pinned 7.57.0, the strictest stream accumulator):
// every mock success scenario through responses.stream().finalResponse(), responses.create()
// and responses.create({stream:true}); every error scenario must reject with an APIError that
// carries the upstream's message.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { APIError } from 'openai';
import { startStack, normalizeResponse, checkUsageShape } from './lib.mjs';
import { SUCCESS, MIDSTREAM_ERRORS, BROKEN_STREAMS, HTTP_ERRORS, checkScenarioResponse } from './scenarios.mjs';

let stack;
let client;

before(async () => {
  stack = await startStack();
  client = new OpenAI({ apiKey: 'test-key', baseURL: stack.agate.url, maxRetries: 0, timeout: 10_000 });
});
after(async () => { await stack?.stop(); });

const T = { timeout: 20_000 };
const params = (scenario, extra = {}) => ({ model: 'chat-agent', input: `hello mock:${scenario}`, ...extra });

/** Runs the SDK stream helper; returns {final, events, deltaText}. */
async function viaStreamHelper(p) {
  const stream = client.responses.stream(p);
  const events = [];
  let deltaText = '';
  for await (const ev of stream) {
    events.push(ev);
    if (ev.type === 'response.output_text.delta') deltaText += ev.delta;
    if (events.length > 20_000) throw new Error('too many events');
  }
  const final = await stream.finalResponse();
  return { final, events, deltaText };
}

/** Raw SDK iterator (responses.create stream:true); returns {events, terminal}. */
async function viaRawStream(p) {
  const s = await client.responses.create({ ...p, stream: true });
  const events = [];
  for await (const ev of s) {
    events.push(ev);
    if (events.length > 20_000) throw new Error('too many events');
  }
  const terminal = events.find((e) => ['response.completed', 'response.incomplete', 'response.failed'].includes(e.type));
  return { events, terminal };
}

describe('success scenarios through the openai SDK', () => {
  for (const [name, exp] of Object.entries(SUCCESS)) {
    describe(name, () => {
      let rawTerminal;
      let plain;
      test('responses.stream().finalResponse()', T, async () => {
        const streamed = await viaStreamHelper(params(name));
        checkScenarioResponse(streamed.final, exp, { sdk: true, where: `${name} stream finalResponse` });
        const text = exp.items.filter((i) => i.type === 'message' && i.text !== undefined).map((i) => i.text).join('');
        assert.ok(streamed.deltaText === text, `output_text.delta events concatenate to the text (${streamed.deltaText.length} vs ${text.length} chars)`);
        assert.equal(streamed.events[0].type, 'response.created');
        assert.ok(['response.completed', 'response.incomplete'].includes(streamed.events.at(-1).type), 'stream ends with the terminal event');
      });
      test('responses.create() non-streaming', T, async () => {
        plain = await client.responses.create(params(name));
        checkScenarioResponse(plain, exp, { sdk: true, where: `${name} create` });
      });
      test('responses.create({stream:true}) raw iterator', T, async () => {
        const { events, terminal } = await viaRawStream(params(name));
        assert.ok(terminal, 'a terminal event arrived');
        assert.equal(events.filter((e) => e.type.startsWith('response.') && ['completed', 'incomplete', 'failed'].includes(e.type.slice(9))).length, 1, 'exactly one terminal event');
        checkScenarioResponse(terminal.response, exp, { where: `${name} raw terminal` });
        rawTerminal = terminal.response;
      });
      test('non-streaming response equals the terminal event\'s response', T, async () => {
        assert.ok(rawTerminal && plain, 'earlier subtests produced both responses');
        const a = normalizeResponse(plain);
        delete a.output_text; // added by the SDK
        assert.deepEqual(a, normalizeResponse(rawTerminal));
      });
    });
  }
});

describe('request fields are echoed, never replaced by upstream values', () => {
  test('echo of model, instructions, tools, sampling params, metadata, store', T, async () => {
    const tools = [
      { type: 'function', name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: true },
      { type: 'function', name: 'get_time', parameters: { type: 'object', properties: {} }, strict: false },
    ];
    const r = await client.responses.create({
      model: 'chat-agent',
      instructions: 'You are terse.',
      input: 'hello mock:tools2',
      tools,
      tool_choice: 'auto',
      parallel_tool_calls: true,
      temperature: 0.5,
      top_p: 0.9,
      max_output_tokens: 256,
      metadata: { ticket: 'T-17' },
      user: 'u-7',
      store: true,
    });
    assert.equal(r.model, 'chat-agent');
    assert.equal(r.instructions, 'You are terse.');
    assert.deepEqual(r.tools.map((t) => ({ type: t.type, name: t.name, parameters: t.parameters })), tools.map((t) => ({ type: t.type, name: t.name, parameters: t.parameters })));
    assert.equal(r.tool_choice, 'auto');
    assert.equal(r.parallel_tool_calls, true);
    assert.equal(r.temperature, 0.5);
    assert.equal(r.top_p, 0.9);
    assert.equal(r.max_output_tokens, 256);
    assert.deepEqual(r.metadata, { ticket: 'T-17' });
    assert.equal(r.user, 'u-7');
    assert.equal(r.store, false, 'store is accepted but echoed false (nothing stored)');
    assert.equal(r.previous_response_id ?? null, null);
    assert.equal(r.output.length, 2);
  });

  test('response ids: resp_ + 32 hex, x-request-id header, fresh item ids', T, async () => {
    const { data, response } = await client.responses.create(params('tools2')).withResponse();
    assert.match(data.id, /^resp_[0-9a-f]{32}$/, 'response id is resp_ + 32 lowercase hex');
    assert.ok(response.headers.get('x-request-id'), 'x-request-id header present');
    for (const it of data.output) assert.match(it.id, /^fc_[0-9a-f]{32}$/, 'function_call ids are fc_ + 32 hex');
    const again = await client.responses.create(params('tools2'));
    assert.notEqual(again.id, data.id, 'response ids differ between requests');
    assert.notDeepEqual(again.output.map((i) => i.id), data.output.map((i) => i.id), 'item ids are fresh per request');
    assert.deepEqual(again.output.map((i) => i.call_id), data.output.map((i) => i.call_id), 'call_ids are the upstream ids verbatim');
  });

  test('usage carries both detail objects (MLflow needs them)', T, async () => {
    const r = await client.responses.create(params('text'));
    checkUsageShape(r.usage);
  });
});

describe('mid-stream upstream errors reject with APIError carrying the upstream message', () => {
  for (const [name, message] of Object.entries(MIDSTREAM_ERRORS)) {
    describe(name, () => {
      test('responses.stream().finalResponse() rejects', T, async () => {
        const stream = client.responses.stream(params(name));
        await assert.rejects(stream.finalResponse(), (err) => {
          assert.ok(err instanceof APIError, `APIError, got ${err?.constructor?.name}: ${err?.message ?? JSON.stringify(err)}`);
          assert.equal(err.message, message, 'message is the upstream message');
          return true;
        });
      });
      test('raw iterator yields response.failed, then throws APIError', T, async () => {
        const s = await client.responses.create({ ...params(name), stream: true });
        const seen = [];
        await assert.rejects(async () => {
          for await (const ev of s) {
            seen.push(ev);
            if (seen.length > 1000) break;
          }
        }, (err) => {
          assert.ok(err instanceof APIError, `APIError, got ${err?.constructor?.name}`);
          assert.equal(err.message, message);
          return true;
        });
        const failed = seen.find((e) => e.type === 'response.failed');
        assert.ok(failed, `response.failed was delivered before the error (saw ${seen.map((e) => e.type).join(',')})`);
        assert.equal(failed.response.status, 'failed');
        assert.equal(failed.response.error.message, message);
        assert.equal(failed.response.error.code, 'server_error');
        const msgItem = failed.response.output.find((i) => i.type === 'message');
        assert.ok(msgItem, 'the partial message is in response.failed output');
        assert.equal(msgItem.status, 'incomplete', 'open items are closed as incomplete');
        assert.ok(msgItem.content[0].text.length > 0, 'partial text kept');
      });
      test('non-streaming create rejects with 502 and the upstream message', T, async () => {
        await assert.rejects(client.responses.create(params(name)), (err) => {
          assert.ok(err instanceof APIError, `APIError, got ${err?.constructor?.name}`);
          assert.equal(err.status, 502);
          assert.equal(err.error?.message, message, 'error.message is the upstream message');
          assert.equal(err.message, `502 ${message}`);
          return true;
        });
      });
    });
  }
});

describe('broken upstream streams make the SDK raise, never resolve silently', () => {
  for (const name of BROKEN_STREAMS) {
    test(`${name}: responses.stream().finalResponse() rejects with APIError`, T, async () => {
      const stream = client.responses.stream(params(name));
      await assert.rejects(stream.finalResponse(), (err) => {
        assert.ok(err instanceof APIError, `APIError, got ${err?.constructor?.name}: ${err?.message}`);
        assert.ok(err.message.length > 0);
        return true;
      });
    });
    test(`${name}: non-streaming create rejects with 502`, T, async () => {
      await assert.rejects(client.responses.create(params(name)), (err) => {
        assert.ok(err instanceof APIError, `APIError, got ${err?.constructor?.name}`);
        assert.equal(err.status, 502);
        return true;
      });
    });
  }
  test('gateway still serves after broken streams', T, async () => {
    const r = await client.responses.create(params('text'));
    assert.equal(r.output_text, 'Hi there!');
  });
});

describe('upstream HTTP errors reject with the mapped status and the upstream message', () => {
  for (const [name, want] of Object.entries(HTTP_ERRORS)) {
    for (const mode of ['create', 'create stream', 'stream helper']) {
      test(`${name} via ${mode} → ${want.status}`, T, async () => {
        const p = params(name);
        const promise = mode === 'create' ? client.responses.create(p)
          : mode === 'create stream' ? client.responses.create({ ...p, stream: true })
            : client.responses.stream(p).finalResponse();
        await assert.rejects(promise, (err) => {
          assert.ok(err instanceof APIError, `APIError, got ${err?.constructor?.name}: ${err?.message}`);
          assert.equal(err.status, want.status, 'HTTP status');
          assert.equal(err.error?.message, want.message, 'error.message is the upstream message');
          assert.equal(err.message, `${want.status} ${want.message}`);
          assert.equal(err.code, want.code, 'error.code');
          assert.equal(err.type, want.type, 'error.type');
          if (want.retryAfter) {
            assert.ok(err instanceof OpenAI.RateLimitError, 'RateLimitError');
            assert.equal(err.headers.get('retry-after'), want.retryAfter, 'Retry-After copied from the upstream');
          }
          return true;
        });
      });
    }
  }
});
