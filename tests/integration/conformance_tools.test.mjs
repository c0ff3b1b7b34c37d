// The Responses tool surface through both openai SDKs (issue 10): the pinned 7.57.0 and the
// newest release (7.59.0, as "openai-latest"). Each parses what agate renders for a
// ChatCompletions model's calls — custom_tool_call items and their custom_tool_call_input events,
// function calls with `namespace`, local_shell_call items — through responses.stream()
// (the accumulating helper), create({stream:true}) and create(); and the items a client sends
// back on the next turn (as Codex does, with their ids and statuses) reach the model as
// tool_calls and tool messages. The "model" is the mock's codex_* scenarios (bench/mock_codex.c).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAIPinned from 'openai';
import OpenAILatest from 'openai-latest';
import { startStack } from './lib.mjs';

const T = { timeout: 20_000 };
const PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+hello from agate \u00e9\u{1F600} "ok"\n*** End Patch\n';
const FINAL_TEXT = 'All done: the command ran and hello.txt was created.';

const execCommand = { type: 'function', name: 'exec_command', description: 'Run a command', parameters: { type: 'object', properties: { cmd: { type: 'string' } }, required: ['cmd'] }, strict: false };
const applyPatch = { type: 'custom', name: 'apply_patch', description: 'Edit files.', format: { type: 'grammar', syntax: 'lark', definition: 'start: begin_patch hunk+ end_patch' } };
// A turn after one exec_command call: the mock's codex_custom then calls apply_patch.
const afterShell = (scenario) => [
  { role: 'user', content: `patch mock:${scenario}` },
  { type: 'function_call', id: 'fc_1', status: 'completed', call_id: 'call_codex_1', name: 'exec_command', arguments: '{"cmd":"true"}' },
  { type: 'function_call_output', id: 'fco_1', call_id: 'call_codex_1', output: 'Process exited with code 0' },
];

let stack;
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

async function streamHelper(client, p) {
  const s = client.responses.stream(p);
  const events = [];
  for await (const ev of s) {
    events.push(ev);
    if (events.length > 5000) throw new Error('too many events');
  }
  return { final: await s.finalResponse(), events };
}

async function rawStream(client, p) {
  const s = await client.responses.create({ ...p, stream: true });
  const events = [];
  for await (const ev of s) {
    events.push(ev);
    if (events.length > 5000) throw new Error('too many events');
  }
  return events;
}

for (const [label, OpenAI] of [['openai 7.57.0', OpenAIPinned], ['openai 7.59.0', OpenAILatest]]) {
  describe(`${label}: tool kinds beyond functions`, () => {
    let client;
    before(() => { client = new OpenAI({ apiKey: 'k', baseURL: stack.agate.url, maxRetries: 0, timeout: 10_000 }); });
    const p = (extra) => ({ model: 'chat-agent', ...extra });

    test('custom tool call: stream helper, input deltas decoded incrementally', T, async () => {
      const { final, events } = await streamHelper(client, p({ input: afterShell('codex_custom'), tools: [execCommand, applyPatch] }));
      const deltas = events.filter((e) => e.type === 'response.custom_tool_call_input.delta');
      assert.ok(deltas.length > 3, `the input streams in pieces (${deltas.length})`);
      assert.equal(deltas.map((d) => d.delta).join(''), PATCH);
      const done = events.filter((e) => e.type === 'response.custom_tool_call_input.done');
      assert.equal(done.length, 1);
      assert.equal(done[0].input, PATCH);
      assert.equal(done[0].item_id, deltas[0].item_id);
      assert.ok(!events.some((e) => e.type.startsWith('response.function_call_arguments')), 'no argument events for a custom call');
      assert.equal(final.output.length, 1);
      const it = final.output[0];
      assert.equal(it.type, 'custom_tool_call');
      assert.equal(it.name, 'apply_patch');
      assert.equal(it.call_id, 'call_codex_2');
      assert.equal(it.input, PATCH);
      assert.equal(it.status, 'completed');
      assert.match(it.id, /^ctc_[0-9a-f]{32}$/);
      assert.deepEqual(final.tools.map((t) => t.type), ['function', 'custom'], 'tools echoed as sent');
    });

    test('custom tool call: raw stream and non-streaming', T, async () => {
      const events = await rawStream(client, p({ input: afterShell('codex_custom'), tools: [execCommand, applyPatch] }));
      const added = events.find((e) => e.type === 'response.output_item.added');
      assert.equal(added.item.type, 'custom_tool_call');
      assert.equal(added.item.input, '');
      const doneItem = events.find((e) => e.type === 'response.output_item.done').item;
      assert.equal(doneItem.input, PATCH);
      assert.equal(events.at(-1).type, 'response.completed');
      const r = await client.responses.create(p({ input: afterShell('codex_custom'), tools: [execCommand, applyPatch] }));
      assert.equal(r.output[0].type, 'custom_tool_call');
      assert.equal(r.output[0].input, PATCH);
      assert.equal(r.output_text, '');
    });

    test('namespaced function call carries its namespace, streaming and not', T, async () => {
      const tools = [{ type: 'namespace', name: 'shell_tools', description: 'Shell', tools: [execCommand] }];
      const { final, events } = await streamHelper(client, p({ input: 'go mock:codex_shell', tools }));
      const fc = final.output[0];
      assert.equal(fc.type, 'function_call');
      assert.equal(fc.name, 'exec_command');
      assert.equal(fc.namespace, 'shell_tools');
      assert.deepEqual(JSON.parse(fc.arguments), { cmd: 'echo codex-ran > ran.txt' });
      assert.equal(events.find((e) => e.type === 'response.output_item.added').item.namespace, 'shell_tools');
      const r = await client.responses.create(p({ input: 'go mock:codex_shell', tools }));
      assert.equal(r.output[0].namespace, 'shell_tools');
      assert.equal(r.output[0].name, 'exec_command');
      // What the model got: the inner function, under its own (unique) name.
      const up = await stack.mock.lastRequest();
      assert.deepEqual(up.tools.map((t) => t.function.name), ['exec_command']);
    });

    test('local_shell call: stream helper, raw stream and non-streaming', T, async () => {
      const params = p({ input: 'list mock:codex_local_shell', tools: [{ type: 'local_shell' }] });
      const { final, events } = await streamHelper(client, params);
      const it = final.output[0];
      assert.equal(it.type, 'local_shell_call');
      assert.equal(it.call_id, 'call_shell_1');
      assert.deepEqual(it.action, { type: 'exec', command: ['echo', 'hi'], env: { A: '1' } });
      assert.ok(!events.some((e) => e.type.includes('arguments')));
      const raw = await rawStream(client, params);
      assert.deepEqual(raw.find((e) => e.type === 'response.output_item.done').item.action.command, ['echo', 'hi']);
      const r = await client.responses.create(params);
      assert.equal(r.output[0].type, 'local_shell_call');
      assert.match(r.output[0].id, /^lsh_[0-9a-f]{32}$/);
    });

    test('items sent back as Codex does reach the model as tool calls and tool messages', T, async () => {
      const input = [
        ...afterShell('codex_custom'),
        { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'opaque' },
        { type: 'custom_tool_call', id: 'ctc_1', status: 'completed', call_id: 'call_codex_2', name: 'apply_patch', input: PATCH },
        { type: 'custom_tool_call_output', id: 'ctco_1', call_id: 'call_codex_2', output: 'Success. Updated the following files:\nA hello.txt\n' },
        { type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'x' } },
      ];
      const tools = [execCommand, applyPatch, { type: 'web_search', external_web_access: true }];
      const { final } = await streamHelper(client, p({ input, tools, instructions: 'Be careful.' }));
      assert.equal(final.output_text, FINAL_TEXT);
      const up = await stack.mock.lastRequest();
      assert.deepEqual(up.tools.map((t) => t.function.name), ['exec_command', 'apply_patch'], 'web_search dropped');
      const calls = up.messages.filter((m) => m.tool_calls).flatMap((m) => m.tool_calls);
      assert.deepEqual(calls.map((c) => [c.id, c.function.name]), [['call_codex_1', 'exec_command'], ['call_codex_2', 'apply_patch']]);
      assert.deepEqual(JSON.parse(calls[1].function.arguments), { input: PATCH });
      const toolMsgs = up.messages.filter((m) => m.role === 'tool');
      assert.deepEqual(toolMsgs.map((m) => m.tool_call_id), ['call_codex_1', 'call_codex_2']);
      assert.equal(up.messages[0].role, 'system');
      assert.ok(!JSON.stringify(up.messages).includes('web_search_call'));
    });
  });
}
