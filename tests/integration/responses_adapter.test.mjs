// The Responses upstream adapter (issue 5, PROTOCOL.md §7.7) end to end: the real gateway in front
// of the mock's Responses routes (/v1/responses = OpenAI flavour, /invocations = MLflow flavour),
// checked through the official openai SDK (7.57.0), on the raw wire, against a ChatCompletions
// endpoint on the Databricks route, and in a round trip: agate (responses adapter) in front of
// agate (chat_completions adapter) in front of the mock must answer like one agate alone.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI, { APIError } from 'openai';
import {
  startMock, startAgate, makeTempDir, baseConfig, sse, postJSON, crid, rowFor, WAIT_MS, stopEach,
  checkEventSequence, checkOpenAIFraming, checkDatabricksFraming, checkErrorReply, checkItem,
  checkResponseObject, expectedUsage, normalizeResponse,
} from './lib.mjs';

const T = { timeout: 15_000 };
const UP = 'upstream-model';
const FLAVORS = ['openai', 'mlflow'];
const EP = { openai: 'resp-openai', mlflow: 'resp-mlflow' };

let mock;
let gwTables;
let gw; // agate with chat-agent, resp-openai, resp-mlflow, resp-params
let outer; // agate whose only endpoint "rt" is a responses adapter in front of gw's chat-agent
const dirs = [];
const clients = {};

before(async () => {
  mock = await startMock();
  const tables = makeTempDir('agate-it-rs-tables-');
  dirs.push(tables);
  gwTables = tables;
  const cfg = baseConfig(mock, tables, {
    moreEndpoints: [
      { name: EP.openai, adapter: 'responses', flavor: 'openai', upstreams: [{ url: mock.url }], model: UP },
      // The adapter appends /invocations; the mock serves <anything>/invocations.
      { name: EP.mlflow, adapter: 'responses', flavor: 'mlflow', upstreams: [{ url: mock.base }], model: UP },
      { name: 'resp-params', adapter: 'responses', flavor: 'openai', upstreams: [{ url: mock.url }], model: UP, params: { temperature: 0.3, max_output_tokens: 64 } },
    ],
  });
  gw = await startAgate(cfg);
  const tables2 = makeTempDir('agate-it-rs-tables-');
  dirs.push(tables2);
  outer = await startAgate({
    listen: '127.0.0.1:0',
    endpoints: [{ name: 'rt', adapter: 'responses', flavor: 'openai', upstreams: [{ url: gw.url }], model: 'chat-agent' }],
    tables: { sink: 'jsonl', dir: tables2, flush_ms: 50 },
  });
  clients.gw = new OpenAI({ apiKey: 'test-key', baseURL: gw.url, maxRetries: 0, timeout: 10_000 });
  clients.outer = new OpenAI({ apiKey: 'test-key', baseURL: outer.url, maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  try {
    await stopEach(outer, gw, mock);
  } finally {
    if (!process.env.AGATE_IT_KEEP) for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// helpers (lib.mjs is shared; these are local to this file)

const params = (flavor, scenario, extra = {}) => ({ model: EP[flavor], input: `hello mock:${scenario}`, ...extra });
const openaiURL = () => `${gw.base}/v1/responses`;
const dbxURL = (name) => `${gw.base}/serving-endpoints/${name}/invocations`;
const dbxBody = (scenario, extra = {}) => ({ input: [{ role: 'user', content: `hello mock:${scenario}` }], ...extra });

/** An SDK client whose responses.* calls go to the Databricks route of endpoint `name`. */
function dbxClient(name) {
  return new OpenAI({
    apiKey: 'test-key',
    baseURL: `${gw.base}/serving-endpoints/${name}`,
    maxRetries: 0,
    timeout: 10_000,
    fetch: (url, init) => fetch(String(url).replace(/\/responses$/, '/invocations'), init),
  });
}

const keysOf = (o) => Object.keys(o ?? {}).sort();

/** A response without its per-request ids and the fields only the SDK adds (output_text, parsed). */
function sdkFree(r) {
  const c = normalizeResponse(r);
  delete c.output_text;
  delete c.output_parsed;
  for (const it of c.output ?? []) {
    delete it.parsed_arguments;
    for (const p of it.content ?? []) delete p.parsed;
  }
  return c;
}

/** The SDK stream helper: {final, events}. */
async function viaStreamHelper(client, p) {
  const stream = client.responses.stream(p);
  const events = [];
  for await (const ev of stream) {
    events.push(ev);
    if (events.length > 5000) throw new Error('too many events');
  }
  return { final: await stream.finalResponse(), events };
}

// PROTOCOL.md §4.2: the only event types a client may see.
const CATALOGUE = new Set([
  'response.created', 'response.in_progress', 'response.output_item.added', 'response.output_item.done',
  'response.content_part.added', 'response.content_part.done', 'response.output_text.delta', 'response.output_text.done',
  'response.refusal.delta', 'response.refusal.done', 'response.function_call_arguments.delta',
  'response.function_call_arguments.done', 'response.reasoning_summary_part.added', 'response.reasoning_summary_part.done',
  'response.reasoning_summary_text.delta', 'response.reasoning_summary_text.done',
  'response.completed', 'response.incomplete', 'response.failed', 'error',
]);
const TERMINALS = new Set(['response.completed', 'response.incomplete', 'response.failed']);

/**
 * Wire checks that hold for every stream, success or failure: catalogue types only, sequence
 * numbers 0..n-1, output_index = count of added items, item_id = id of the item at output_index,
 * exactly one terminal event, only the error event after it. Returns {added, terminal, error}.
 */
function checkWire(events, { passthrough = false } = {}) {
  const added = [];
  let terminal = null;
  let error = null;
  for (const [i, ev] of events.entries()) {
    const at = `event ${i} (${ev.type})`;
    // Databricks route: unknown upstream types pass through (PROTOCOL.md §7.7), renumbered.
    if (!(passthrough && ev.type.startsWith('response.') && !CATALOGUE.has(ev.type)))
      assert.ok(CATALOGUE.has(ev.type), `${at}: type is in the §4.2 catalogue`);
    assert.equal(ev.sequence_number, i, `${at}: sequence numbers contiguous from 0`);
    if (terminal) assert.equal(ev.type, 'error', `${at}: only the error event follows the terminal event`);
    if (ev.type === 'response.output_item.added') {
      assert.equal(ev.output_index, added.length, `${at}: output_index counts added items`);
      added.push(ev.item);
    } else if (Object.hasOwn(ev, 'item_id')) {
      assert.ok(added[ev.output_index], `${at}: output_index names an added item`);
      assert.equal(ev.item_id, added[ev.output_index].id, `${at}: item_id is the id of the item at output_index`);
    } else if (ev.type === 'response.output_item.done') {
      assert.equal(ev.item.id, added[ev.output_index].id, `${at}: done item has the added item's id`);
    }
    if (TERMINALS.has(ev.type)) terminal = ev;
    if (ev.type === 'error') error = ev;
  }
  assert.equal(events[0].type, 'response.created');
  assert.equal(events.filter((e) => TERMINALS.has(e.type)).length, 1, 'exactly one terminal event');
  return { added, terminal, error };
}

// What each success scenario must produce, with the upstream ids passed through (§7.7).
const MSG = (text) => ({ type: 'message', id: 'msg_up_1', text });
const R_TEXT = [MSG('Hello from responses')];
const R_TOOLS = [
  { type: 'function_call', id: 'fc_up_1', call_id: 'call_up_1', name: 'tool_a', arguments: '{"a":1}' },
  { type: 'function_call', id: 'fc_up_2', call_id: 'call_up_2', name: 'tool_b', arguments: '{"b":2}' },
];
const R_REASONING = [{ type: 'reasoning', id: 'rs_up_1', summary: 'Thinking' }, MSG('Done.')];
const SUCCESS = {
  r_text: { items: R_TEXT, usage: { openai: expectedUsage(10, 3) } },
  r_tools: { items: R_TOOLS, usage: { openai: expectedUsage(20, 8) } },
  r_reasoning: { items: R_REASONING, usage: { openai: expectedUsage(10, 5, { reasoning: 2 }) } },
  r_custom: { items: R_TEXT, usage: { openai: expectedUsage(10, 3) } },
  r_unknown_event: { items: R_TEXT, usage: { openai: expectedUsage(10, 3) } },
  // OpenAI flavour only here: on /invocations the mock streams the OpenAI events (with usage) but
  // answers non-streaming requests with a usage-less MLflow object; its stream is checked below.
  r_two_terminal: { items: R_TEXT, usage: { openai: expectedUsage(10, 3) }, only: 'openai' },
  // No terminal event upstream: completed is synthesised, without usage.
  r_no_terminal: { items: R_TEXT, usage: { openai: null } },
};

function checkFinal(r, exp, flavor, { where, model = EP[flavor], sdk = false }) {
  assert.equal(r.status, 'completed', `${where}.status`);
  assert.equal(r.model, model, `${where}.model is the client's, never ${UP}`);
  assert.match(r.id, /^resp_[0-9a-f]{32}$/, `${where}.id is the gateway's, not resp_upstream_1`);
  assert.equal(r.error, null);
  assert.equal(r.output.length, exp.items.length, `${where}.output (${r.output.map((i) => i.type)})`);
  for (const [i, want] of exp.items.entries()) {
    const got = r.output[i];
    const at = `${where}.output[${i}]`;
    checkItem(got, at);
    assert.equal(got.type, want.type, `${at}.type`);
    assert.equal(got.id, want.id, `${at}.id: upstream item id passes through`);
    assert.equal(got.status, 'completed', `${at}.status`);
    if (want.type === 'message') {
      assert.deepEqual(got.content.map((c) => [c.type, c.text]), [['output_text', want.text]], `${at}.content`);
    } else if (want.type === 'function_call') {
      assert.equal(got.call_id, want.call_id, `${at}.call_id passes through`);
      assert.equal(got.name, want.name);
      assert.equal(got.arguments, want.arguments);
    } else {
      assert.deepEqual(got.summary, [{ type: 'summary_text', text: want.summary }], `${at}.summary`);
    }
  }
  const usage = exp.usage[flavor] ?? null; // MLflow agents report no usage
  assert.deepEqual(r.usage, usage, `${where}.usage`);
  if (sdk) {
    const text = exp.items.filter((i) => i.type === 'message').map((i) => i.text).join('');
    assert.equal(r.output_text, text, `${where}.output_text (SDK)`);
  }
}

// ---------------------------------------------------------------------------------------------
// success scenarios through the SDK (OpenAI route)

for (const flavor of FLAVORS) {
  describe(`SDK, ${flavor} flavour: success scenarios`, () => {
    for (const [name, exp] of Object.entries(SUCCESS)) {
      if (exp.only && exp.only !== flavor) continue;
      test(`${name}: responses.stream().finalResponse() and responses.create()`, T, async () => {
        const { final, events } = await viaStreamHelper(clients.gw, params(flavor, name));
        checkFinal(final, exp, flavor, { where: `${name} stream`, sdk: true });
        for (const ev of events) assert.ok(CATALOGUE.has(ev.type), `SDK saw only catalogue types (got ${ev.type})`);
        assert.equal(events.at(-1).type, 'response.completed');
        const plain = await clients.gw.responses.create(params(flavor, name));
        checkFinal(plain, exp, flavor, { where: `${name} create`, sdk: true });
        // Non-streaming equals the terminal event's response (custom_outputs aside, see below).
        const a = sdkFree(plain);
        const b = sdkFree(final);
        for (const o of [a, b]) delete o.custom_outputs;
        assert.deepEqual(a, b);
      });
    }
  });
}

describe('SDK: r_custom on the Databricks route (custom_outputs, trace when return_trace)', () => {
  for (const flavor of FLAVORS) {
    test(`${flavor}: stream helper on /serving-endpoints/${EP[flavor]}/invocations`, T, async () => {
      const client = dbxClient(EP[flavor]);
      const p = dbxBody('r_custom', { databricks_options: { return_trace: true }, custom_inputs: { thread: 'abc' } });
      const { final, events } = await viaStreamHelper(client, p);
      checkFinal(final, SUCCESS.r_custom, flavor, { where: 'dbx stream', sdk: true, model: EP[flavor] });
      const last = events.at(-1);
      assert.equal(last.type, 'response.completed');
      assert.deepEqual(last.custom_outputs, { k: 'v', n: 1.5 }, 'custom_outputs on the last event (§5.2)');
      assert.ok(last.databricks_output?.databricks_request_id, 'databricks_output.databricks_request_id');
      if (flavor === 'mlflow') assert.deepEqual(last.databricks_output.trace, { spans: [{ name: 'root' }] }, 'trace passed through');
      else assert.ok(!('trace' in last.databricks_output), 'no trace when the upstream sends none');
    });
    test(`${flavor}: responses.create() non-streaming on the Databricks route`, T, async () => {
      const client = dbxClient(EP[flavor]);
      const r = await client.responses.create(dbxBody('r_custom', { databricks_options: { return_trace: true } }));
      checkFinal(r, SUCCESS.r_custom, flavor, { where: 'dbx create', sdk: true });
      assert.deepEqual(r.custom_outputs, { k: 'v', n: 1.5 });
      assert.ok(r.databricks_output?.databricks_request_id);
      if (flavor === 'mlflow') assert.deepEqual(r.databricks_output.trace, { spans: [{ name: 'root' }] });
    });
  }
  test('mlflow: no trace unless databricks_options.return_trace is true', T, async () => {
    const s = await sse(dbxURL(EP.mlflow), dbxBody('r_custom', { stream: true }));
    checkDatabricksFraming(s);
    const last = s.events.at(-1);
    assert.ok(!('trace' in last.databricks_output), 'trace withheld');
    assert.deepEqual(last.custom_outputs, { k: 'v', n: 1.5 }, 'custom_outputs still passed through');
    const r = await postJSON(dbxURL(EP.mlflow), dbxBody('r_custom', { databricks_options: { return_trace: false } }));
    assert.equal(r.status, 200);
    assert.ok(!('trace' in r.json.databricks_output));
  });
  test('mlflow: custom_outputs numbers pass through byte-exact on the wire', T, async () => {
    const s = await sse(dbxURL(EP.mlflow), dbxBody('r_custom', { stream: true, databricks_options: { return_trace: true } }));
    assert.ok(s.raw.includes('"custom_outputs":{"k":"v","n":1.50}'), 'custom_outputs serialised as the upstream wrote it');
    const r = await postJSON(dbxURL(EP.mlflow), dbxBody('r_custom'));
    assert.ok(r.text.includes('"n":1.50'));
  });
});

describe('OpenAI route: custom_outputs of r_custom', () => {
  // PROTOCOL §3 lists custom_outputs as a top-level key of the response object and §9 requires the
  // non-streaming body to equal the terminal event's response; gateway/stream.c adds it to the
  // non-streaming body only (render_response(s, true)), not to response.completed.response.
  test('non-streaming body and terminal event response agree on custom_outputs', T, async () => {
    const plain = await clients.gw.responses.create(params('openai', 'r_custom'));
    const { final } = await viaStreamHelper(clients.gw, params('openai', 'r_custom'));
    assert.deepEqual(plain.custom_outputs, { k: 'v', n: 1.5 });
    assert.deepEqual(final.custom_outputs, plain.custom_outputs);
  });
});

// ---------------------------------------------------------------------------------------------
// failures through the SDK

const AGENT = 'agent crashed';
const DBX_MSG = 'TimeoutException: Tool XYZ failed to execute.';
const PROTO = /^upstream protocol error: /;

/** Expectations per scenario and flavour: stream = rejection of the stream helper; plain = create(). */
const FAILURES = {
  r_error: {
    openai: { stream: { message: AGENT }, plain: { status: 502, message: AGENT } },
    mlflow: { stream: { message: AGENT }, plain: { status: 502, message: AGENT } },
  },
  r_error_dbx: {
    openai: { stream: { message: DBX_MSG }, plain: { status: 400, message: DBX_MSG } },
    mlflow: { stream: { message: DBX_MSG }, plain: { status: 400, message: DBX_MSG } },
  },
  r_bad_json: {
    // OpenAI flavour: committed by response.created, then §5.3. MLflow: the first event is bad,
    // nothing committed, so a plain 502.
    openai: { stream: { message: PROTO }, plain: { status: 502, message: /^upstream protocol error: invalid JSON/ } },
    mlflow: { stream: { status: 502, message: PROTO }, plain: { status: 502, message: /^upstream protocol error: invalid JSON/ } },
  },
  r_delta_after_done: {
    openai: { stream: { message: /^upstream protocol error: .*msg_up_1.*after its output_item\.done/ } },
    mlflow: { stream: { message: /^upstream protocol error: .*msg_up_1.*after its output_item\.done/ } },
  },
  r_http500: {
    openai: { stream: { status: 502, message: 'responses upstream exploded' }, plain: { status: 502, message: 'responses upstream exploded' } },
    mlflow: { stream: { status: 502, message: 'responses upstream exploded' }, plain: { status: 502, message: 'responses upstream exploded' } },
  },
};

function checkApiError(err, want, where) {
  assert.ok(err instanceof APIError, `${where}: APIError, got ${err?.constructor?.name}: ${err?.message ?? JSON.stringify(err)}`);
  const msg = want.status ? err.error?.message : err.message;
  if (want.message instanceof RegExp) assert.match(msg, want.message, `${where}: message`);
  else assert.equal(msg, want.message, `${where}: message is the upstream message`);
  if (want.status) {
    assert.equal(err.status, want.status, `${where}: HTTP status`);
    assert.equal(err.message, `${want.status} ${msg}`);
  }
  return true;
}

for (const flavor of FLAVORS) {
  describe(`SDK, ${flavor} flavour: failures reject with APIError carrying the upstream message`, () => {
    for (const [name, byFlavor] of Object.entries(FAILURES)) {
      const want = byFlavor[flavor];
      test(`${name}: responses.stream().finalResponse()`, T, async () => {
        await assert.rejects(clients.gw.responses.stream(params(flavor, name)).finalResponse(),
          (err) => checkApiError(err, want.stream, `${name} stream`));
      });
      test(`${name}: raw iterator sees response.failed before the error`, T, async () => {
        if (want.stream.status) {
          await assert.rejects(clients.gw.responses.create({ ...params(flavor, name), stream: true }),
            (err) => checkApiError(err, want.stream, `${name} raw`));
          return;
        }
        const s = await clients.gw.responses.create({ ...params(flavor, name), stream: true });
        const seen = [];
        await assert.rejects(async () => {
          for await (const ev of s) { seen.push(ev); if (seen.length > 1000) break; }
        }, (err) => checkApiError(err, want.stream, `${name} raw`));
        const failed = seen.find((e) => e.type === 'response.failed');
        assert.ok(failed, `response.failed delivered (saw ${seen.map((e) => e.type)})`);
        const m = failed.response.error.message;
        if (want.stream.message instanceof RegExp) assert.match(m, want.stream.message);
        else assert.equal(m, want.stream.message);
      });
      if (want.plain) {
        test(`${name}: responses.create() non-streaming → ${want.plain.status}`, T, async () => {
          await assert.rejects(clients.gw.responses.create(params(flavor, name)),
            (err) => checkApiError(err, want.plain, `${name} create`));
        });
      }
    }
  });
}

describe('non-streaming forms of the remaining scenarios', () => {
  test('r_delta_after_done non-streaming: the upstream object is well-formed, so it completes', T, async () => {
    for (const flavor of FLAVORS) {
      const r = await clients.gw.responses.create(params(flavor, 'r_delta_after_done'));
      checkFinal(r, { items: R_TEXT, usage: { openai: expectedUsage(10, 3) } }, flavor, { where: `${flavor} create`, sdk: true });
    }
  });
  test('r_no_terminal non-streaming: an in_progress object becomes completed', T, async () => {
    const r = await clients.gw.responses.create(params('openai', 'r_no_terminal'));
    checkFinal(r, SUCCESS.r_no_terminal, 'openai', { where: 'create', sdk: true });
  });
  test('error replies carry the §5.4 body on both routes', T, async () => {
    checkErrorReply(await postJSON(openaiURL(), params('openai', 'r_http500')),
      { status: 502, type: 'server_error', code: 'upstream_error', error_code: 'INTERNAL_ERROR', message: 'responses upstream exploded' });
    checkErrorReply(await postJSON(dbxURL(EP.mlflow), dbxBody('r_error')),
      { status: 500, error_code: 'INTERNAL_ERROR', message: AGENT, route: 'databricks' });
    checkErrorReply(await postJSON(dbxURL(EP.mlflow), dbxBody('r_error_dbx')),
      { status: 400, error_code: 'BAD_REQUEST', message: DBX_MSG, route: 'databricks' });
    checkErrorReply(await postJSON(openaiURL(), params('mlflow', 'r_bad_json', { stream: true })),
      { status: 502, code: 'upstream_error', message: PROTO });
  });
});

// ---------------------------------------------------------------------------------------------
// raw wire

describe('raw wire (OpenAI route)', () => {
  const ids = {
    r_text: [['msg_up_1']],
    r_tools: [['fc_up_1', 'call_up_1'], ['fc_up_2', 'call_up_2']],
    r_reasoning: [['rs_up_1'], ['msg_up_1']],
  };
  for (const flavor of FLAVORS) {
    for (const [name, want] of Object.entries(ids)) {
      test(`${flavor} ${name}: framing, contiguous sequence numbers, item_ids, upstream ids kept`, T, async () => {
        const s = await sse(openaiURL(), params(flavor, name, { stream: true }));
        checkOpenAIFraming(s);
        checkEventSequence(s.events);
        const { added, terminal } = checkWire(s.events);
        assert.deepEqual(added.map((i) => (i.type === 'function_call' ? [i.id, i.call_id] : [i.id])), want);
        assert.equal(terminal.type, 'response.completed');
        assert.ok(!s.raw.includes('resp_upstream_1'), 'the upstream response id is replaced');
        assert.ok(!s.raw.includes(`"model":"${UP}"`), 'the upstream model name is replaced');
      });
    }
  }
  for (const flavor of FLAVORS) {
    test(`${flavor} r_unknown_event: only §4.2 types on the OpenAI route, passed through on Databricks`, T, async () => {
      const s = await sse(openaiURL(), params(flavor, 'r_unknown_event', { stream: true }));
      checkOpenAIFraming(s);
      checkEventSequence(s.events);
      checkWire(s.events);
      assert.ok(!s.raw.includes('custom_thing'), 'the unknown upstream event is dropped');
      const d = await sse(dbxURL(EP[flavor]), dbxBody('r_unknown_event', { stream: true }));
      checkDatabricksFraming(d);
      checkWire(d.events, { passthrough: true });
      const passed = d.events.filter((e) => e.type === 'response.custom_thing');
      assert.equal(passed.length, 1, 'passed through on the Databricks route (§7.7)');
    });
  }
  for (const flavor of FLAVORS) {
    test(`${flavor} r_two_terminal: exactly one terminal event`, T, async () => {
      const s = await sse(openaiURL(), params(flavor, 'r_two_terminal', { stream: true }));
      checkOpenAIFraming(s);
      checkEventSequence(s.events);
      const { terminal } = checkWire(s.events);
      assert.equal(terminal, s.events.at(-1));
      assert.equal(terminal.type, 'response.completed');
      assert.equal(terminal.response.output.length, 1);
      assert.deepEqual(terminal.response.usage, expectedUsage(10, 3));
    });
  }
  test('openai r_no_terminal: response.completed synthesised with the full output', T, async () => {
    const s = await sse(openaiURL(), params('openai', 'r_no_terminal', { stream: true }));
    checkOpenAIFraming(s);
    checkEventSequence(s.events);
    const last = s.events.at(-1);
    assert.equal(last.type, 'response.completed');
    assert.deepEqual(last.response.output.map((i) => i.id), ['msg_up_1']);
    assert.equal(last.response.output[0].content[0].text, 'Hello from responses');
    assert.equal(last.response.usage, null);
  });
  for (const flavor of FLAVORS) {
    for (const name of ['r_delta_after_done', 'r_error', 'r_error_dbx']) {
      test(`${flavor} ${name}: §5.3 failure sequence on the wire`, T, async () => {
        const s = await sse(openaiURL(), params(flavor, name, { stream: true }));
        checkOpenAIFraming(s);
        const { terminal, error, added } = checkWire(s.events);
        assert.equal(terminal.type, 'response.failed');
        assert.ok(error, 'the error event follows response.failed');
        assert.equal(error, s.events.at(-1));
        assert.equal(error.message, terminal.response.error.message);
        assert.equal(error.error.message, error.message, 'nested error (SDKs raise APIError)');
        assert.equal(error.databricks_output.error.message, error.message);
        assert.deepEqual(added.map((i) => i.id), ['msg_up_1']);
        checkResponseObject(terminal.response, 'response.failed.response');
        if (name === 'r_delta_after_done') {
          assert.match(error.message, PROTO);
          assert.equal(error.databricks_output.error.error_code, 'INTERNAL_ERROR');
          assert.ok(!s.raw.includes(' late'), 'the late delta never reaches the client');
        } else {
          // The partial message is closed incomplete (§5.3).
          assert.equal(terminal.response.output[0].status, 'incomplete');
          assert.equal(terminal.response.output[0].content[0].text, 'Hello');
        }
        if (name === 'r_error_dbx') {
          assert.equal(error.databricks_output.error.error_code, 'BAD_REQUEST');
          assert.equal(error.message, DBX_MSG);
        }
      });
    }
  }
  test('upstream request: model rewritten, stream as asked, Databricks fields only to MLflow', T, async () => {
    const extra = { custom_inputs: { thread: 'abc' }, context: { conversation_id: 'c-1', user_id: 'u-1' }, databricks_options: { return_trace: true }, client_request_id: 'crid-rs-1', metadata: { t: '1' } };
    await postJSON(dbxURL(EP.mlflow), dbxBody('r_text', { stream: true, ...extra }));
    let up = await mock.lastRequest();
    assert.equal(up.model, UP);
    assert.equal(up.stream, true);
    assert.deepEqual(up.custom_inputs, extra.custom_inputs);
    assert.deepEqual(up.context, extra.context);
    assert.deepEqual(up.databricks_options, extra.databricks_options);
    assert.ok(!('client_request_id' in up), 'client_request_id is the gateway\'s');
    assert.deepEqual(up.input, dbxBody('r_text').input);
    await postJSON(dbxURL(EP.openai), dbxBody('r_text', extra));
    up = await mock.lastRequest();
    assert.equal(up.model, UP);
    assert.equal(up.stream, false);
    for (const k of ['custom_inputs', 'context', 'databricks_options', 'client_request_id']) assert.ok(!(k in up), `${k} not sent to an OpenAI-flavour upstream`);
    assert.deepEqual(up.metadata, { t: '1' });
  });
  test('upstream request: endpoint params fill absent or null values, each key sent once', T, async () => {
    const rawLast = async () => {
      const r = await fetch(`${mock.base}/last-request`, { signal: AbortSignal.timeout(WAIT_MS) });
      return r.text();
    };
    const count = (text, key) => text.split(`"${key}":`).length - 1;
    await postJSON(openaiURL(), { model: 'resp-params', input: 'hello mock:r_text', temperature: null, max_output_tokens: null });
    let raw = await rawLast();
    assert.equal(count(raw, 'temperature'), 1, `temperature once: ${raw}`);
    assert.equal(count(raw, 'max_output_tokens'), 1, `max_output_tokens once: ${raw}`);
    let up = JSON.parse(raw);
    assert.equal(up.temperature, 0.3);
    assert.equal(up.max_output_tokens, 64);
    await postJSON(openaiURL(), { model: 'resp-params', input: 'hello mock:r_text', temperature: 1.25 });
    raw = await rawLast();
    assert.equal(count(raw, 'temperature'), 1);
    up = JSON.parse(raw);
    assert.equal(up.temperature, 1.25, 'the client value wins');
    assert.equal(up.max_output_tokens, 64);
  });
});

describe('inference table rows', () => {
  test('failed non-streaming Responses object: row like the chat endpoint\'s for a mid-stream failure', T, async () => {
    const idc = crid('rs-chatfail');
    const idr = crid('rs-respfail');
    const c = await postJSON(openaiURL(), { model: 'chat-agent', input: 'hello mock:error_openai', client_request_id: idc });
    const r = await postJSON(openaiURL(), { ...params('openai', 'r_error'), client_request_id: idr });
    assert.equal(c.status, 502);
    assert.equal(r.status, 502);
    const rc = await rowFor(gwTables, idc);
    const rr = await rowFor(gwTables, idr);
    assert.equal(rr.adapter, 'responses');
    assert.equal(rr.finish_status, 'failed');
    assert.equal(rr.error_message, AGENT);
    assert.equal(rr.status_code, 502);
    assert.deepEqual(rr.logging_error_codes, rc.logging_error_codes, 'same logging error codes as the chat endpoint');
    const agg = JSON.parse(rr.response);
    const aggChat = JSON.parse(rc.response);
    assert.equal(aggChat.status, 'failed');
    assert.equal(agg.status, 'failed', 'the partial output is logged, as for the chat endpoint');
    assert.equal(agg.output[0].id, 'msg_up_1');
    assert.equal(agg.output[0].status, 'incomplete');
    assert.equal(agg.output[0].content[0].text, 'Hello');
    assert.deepEqual(keysOf(agg), keysOf(aggChat));
  });
  test('streaming success row: adapter responses, upstream usage', T, async () => {
    const id = crid('rs-ok');
    const s = await sse(openaiURL(), { ...params('openai', 'r_text'), stream: true, client_request_id: id });
    assert.equal(s.status, 200);
    const row = await rowFor(gwTables, id);
    assert.equal(row.adapter, 'responses');
    assert.equal(row.finish_status, 'completed');
    assert.equal(row.upstream_model, UP);
    assert.equal(row.input_tokens, 10);
    assert.equal(row.output_tokens, 3);
    const agg = JSON.parse(row.response);
    assert.equal(agg.output[0].content[0].text, 'Hello from responses');
  });
});

// ---------------------------------------------------------------------------------------------
// Databricks route: a Responses upstream looks like a ChatCompletions upstream

/** Event types with runs of the same type collapsed (the upstreams split text differently). */
const collapsed = (events) => events.map((e) => e.type).filter((t, i, a) => i === 0 || a[i - 1] !== t);

/** One shape record per event: its keys, the keys of its response/item/part, and of the items. */
function shapes(events) {
  const out = new Map();
  for (const ev of events) {
    const s = {
      keys: keysOf(ev),
      response: ev.response ? keysOf(ev.response) : null,
      responseOutput: ev.response ? ev.response.output.map(keysOf) : null,
      item: ev.item ? keysOf(ev.item) : null,
      part: ev.part ? keysOf(ev.part) : null,
      databricks_output: ev.databricks_output ? keysOf(ev.databricks_output) : null,
    };
    if (!out.has(ev.type)) out.set(ev.type, s);
  }
  return out;
}

describe('Databricks route: responses endpoints render like the chat_completions endpoint', () => {
  for (const flavor of FLAVORS) {
    test(`${flavor} r_text vs chat text: same event types in the same order, same keys`, T, async () => {
      const chat = await sse(dbxURL('chat-agent'), dbxBody('text', { stream: true }));
      const resp = await sse(dbxURL(EP[flavor]), dbxBody('r_text', { stream: true }));
      for (const s of [chat, resp]) {
        checkDatabricksFraming(s);
        checkEventSequence(s.events, { route: 'databricks' });
        checkWire(s.events);
      }
      assert.deepEqual(collapsed(resp.events), collapsed(chat.events));
      const a = shapes(chat.events);
      const b = shapes(resp.events);
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [type, shape] of a) assert.deepEqual(b.get(type), shape, `${type}: same keys`);
    });
    test(`${flavor} r_text vs chat text: non-streaming bodies have the same keys`, T, async () => {
      const chat = await postJSON(dbxURL('chat-agent'), dbxBody('text'));
      const resp = await postJSON(dbxURL(EP[flavor]), dbxBody('r_text'));
      assert.equal(chat.status, 200);
      assert.equal(resp.status, 200);
      assert.deepEqual(keysOf(resp.json), keysOf(chat.json));
      assert.deepEqual(resp.json.output.map(keysOf), chat.json.output.map(keysOf));
      assert.deepEqual(keysOf(resp.json.databricks_output), keysOf(chat.json.databricks_output));
      checkResponseObject(resp.json);
    });
  }
  test('openai r_tools vs chat tools2: identical event type sequence and keys', T, async () => {
    const chat = await sse(dbxURL('chat-agent'), dbxBody('tools2', { stream: true }));
    const resp = await sse(dbxURL(EP.openai), dbxBody('r_tools', { stream: true }));
    for (const s of [chat, resp]) { checkDatabricksFraming(s); checkEventSequence(s.events, { route: 'databricks' }); }
    assert.deepEqual(resp.events.map((e) => e.type), chat.events.map((e) => e.type));
    const a = shapes(chat.events);
    const b = shapes(resp.events);
    for (const [type, shape] of a) assert.deepEqual(b.get(type), shape, `${type}: same keys`);
  });
});

// ---------------------------------------------------------------------------------------------
// round trip: agate (responses) → agate (chat_completions) → mock  ==  agate (chat_completions) → mock

describe('round trip through two gateways', () => {
  const scenarios = ['text', 'tools2', 'text_then_tools', 'reasoning', 'refusal', 'length', 'no_usage'];
  const direct = (s) => ({ model: 'chat-agent', input: `hello mock:${s}` });
  const viaOuter = (s) => ({ model: 'rt', input: `hello mock:${s}` });
  /** Ids and the echoed model differ by construction; everything else must be equal. */
  const norm = (r) => {
    const c = sdkFree(r);
    delete c.model;
    return c;
  };
  for (const name of scenarios) {
    test(`${name}: stream helper and create() give the same final response`, T, async () => {
      const one = await viaStreamHelper(clients.gw, direct(name));
      const two = await viaStreamHelper(clients.outer, viaOuter(name));
      assert.equal(two.final.model, 'rt', 'the outer gateway echoes its client\'s model');
      assert.deepEqual(norm(two.final), norm(one.final));
      assert.deepEqual(two.events.map((e) => e.type), one.events.map((e) => e.type), 'same event sequence');
      for (const it of two.final.output) assert.match(it.id, /^(msg|fc|rs)_[0-9a-f]{32}$/, 'the inner gateway\'s ids pass through');
      const p1 = await clients.gw.responses.create(direct(name));
      const p2 = await clients.outer.responses.create(viaOuter(name));
      assert.deepEqual(norm(p2), norm(p1));
      assert.deepEqual(norm(p2), norm(two.final), 'non-streaming equals streaming');
    });
  }
  test('mid-stream failure keeps the upstream message across both gateways', T, async () => {
    const msg = 'Tool XYZ failed to execute.';
    await assert.rejects(clients.outer.responses.stream(viaOuter('error_openai')).finalResponse(),
      (err) => checkApiError(err, { message: msg }, 'outer stream'));
    const s = await sse(`${outer.base}/v1/responses`, { ...viaOuter('error_openai'), stream: true });
    checkOpenAIFraming(s);
    const { terminal, error } = checkWire(s.events);
    assert.equal(terminal.type, 'response.failed');
    assert.equal(error.message, msg);
    assert.equal(terminal.response.output[0].status, 'incomplete');
    await assert.rejects(clients.outer.responses.create(viaOuter('error_openai')),
      (err) => checkApiError(err, { status: 502, message: msg }, 'outer create'));
  });
  test('upstream HTTP errors map the same way through both gateways', T, async () => {
    for (const [name, status] of [['http400', 400], ['http429', 429], ['http500', 502]]) {
      const one = await postJSON(`${gw.base}/v1/responses`, direct(name));
      const two = await postJSON(`${outer.base}/v1/responses`, viaOuter(name));
      assert.equal(one.status, status, `${name} direct`);
      assert.equal(two.status, status, `${name} through two gateways`);
      assert.equal(two.json.error.message, one.json.error.message);
    }
  });
});
