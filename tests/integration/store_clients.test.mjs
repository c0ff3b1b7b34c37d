// Real clients that rely on the response store (issue 12), pinned in package.json:
//  - the Vercel AI SDK (`ai` + `@ai-sdk/openai`): its default tool loop over the Responses API
//    sends item_reference items for earlier output (store on by default); with a store the loop
//    completes, without one it fails with agate's clear 400;
//  - the OpenAI Agents SDK (`@openai/agents`): three turns chained by previousResponseId.
// The mock upstream is steered per turn by the body's last mock: token (a first `mock:last`).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { generateText, jsonSchema, stepCountIs, tool } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { Agent, run, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled } from '@openai/agents';
import { startMock, startAgate, baseConfig, makeTempDir, readTable, waitFor, stopEach } from './lib.mjs';

const T = { timeout: 60_000 };

async function withStack(store, fn) {
  const mock = await startMock();
  const dir = makeTempDir('agate-it-clients-');
  let agate;
  try {
    const extra = store ? { store: { path: path.join(dir, 'store.db') } } : {};
    agate = await startAgate(baseConfig(mock, path.join(dir, 'tables'), { extra }));
    await fn({ mock, agate, tablesDir: path.join(dir, 'tables') });
  } finally {
    await stopEach(agate, mock);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The AI SDK's default multi-step tool loop; the tools answer `mock:text` so step 2 is plain text. */
function toolLoop(agate) {
  const provider = createOpenAI({ baseURL: agate.url, apiKey: 'test-key' });
  const calls = [];
  const t = (name) => tool({
    description: `the ${name} tool`,
    inputSchema: jsonSchema({ type: 'object', properties: {}, additionalProperties: true }),
    execute: async (input) => { calls.push([name, input]); return 'mock:text'; },
  });
  const run1 = generateText({
    model: provider.responses('chat-agent'),
    prompt: 'mock:last mock:text_then_tools',
    tools: { get_weather: t('get_weather'), get_time: t('get_time') },
    stopWhen: stepCountIs(4),
    maxRetries: 0,
  });
  return { run: run1, calls };
}

describe('Vercel AI SDK tool loop', () => {
  test('with a store: item_reference resolves and the loop completes', T, async () => {
    await withStack(true, async ({ agate, tablesDir }) => {
      const { run: loop, calls } = toolLoop(agate);
      const result = await loop;
      assert.deepEqual(calls.map((c) => c[0]).sort(), ['get_time', 'get_weather'], 'both tools ran once');
      assert.equal(result.steps.length, 2, 'tool step, then the answer');
      assert.equal(result.text, 'Hi there!');
      const rows = await waitFor(() => { const r = readTable(tablesDir); return r.length >= 2 ? r : null; }, 8000, 'two table rows');
      const second = rows.find((r) => (r.request || '').includes('function_call_output'));
      assert.ok(second, 'the loop\'s second request reached agate');
      assert.match(second.request, /"item_reference"/, 'the SDK sent an item_reference (store on by default)');
      assert.equal(second.status_code, 200);
      assert.ok(rows.every((r) => r.stored === true), 'both turns stored');
    });
  });

  test('without a store: the clear 400 that says what to do', T, async () => {
    await withStack(false, async ({ agate }) => {
      const { run: loop } = toolLoop(agate);
      await assert.rejects(loop, (e) => {
        const msg = `${e.message} ${e.responseBody ?? ''} ${e.lastError?.responseBody ?? ''}`;
        assert.match(msg, /item_reference[\s\S]*configure a `store`/, msg);
        return true;
      });
    });
  });
});

describe('OpenAI Agents SDK', () => {
  test('three turns chained with previousResponseId', T, async () => {
    await withStack(true, async ({ agate, mock }) => {
      setDefaultOpenAIClient(new OpenAI({ baseURL: agate.url, apiKey: 'test-key', maxRetries: 0, timeout: 15_000 }));
      setOpenAIAPI('responses');
      setTracingDisabled(true);
      const agent = new Agent({ name: 'helper', instructions: 'be brief', model: 'chat-agent' });
      let prev;
      const ids = [];
      for (const text of ['turn one', 'turn two', 'turn three']) {
        const r = await run(agent, text, prev ? { previousResponseId: prev } : {});
        assert.equal(r.finalOutput, 'Hi there!');
        assert.ok(r.lastResponseId && r.lastResponseId !== prev, 'a new response id per turn');
        prev = r.lastResponseId;
        ids.push(prev);
      }
      const up = await mock.lastRequest();
      const flat = up.messages.map((m) => [m.role, typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')]);
      assert.deepEqual(flat, [['system', 'be brief'], ['user', 'turn one'], ['assistant', 'Hi there!'], ['user', 'turn two'],
        ['assistant', 'Hi there!'], ['user', 'turn three']], 'the third turn carries the two before it; instructions once');
      assert.equal(new Set(ids).size, 3);
    });
  });
});
