// The response-store tests every backend passes (store.test.mjs runs them on SQLite,
// store_pg.test.mjs on PostgreSQL), through the official openai SDK (pinned):
// responses.retrieve / inputItems.list (both directions) / delete, previous_response_id and
// item_reference resolution, conversations (every route), read-your-writes after the terminal
// event, store:false, a 100-turn chain (one row read per turn: the last turn's cost is measured
// against the first's), isolation between two API keys, and the ttl purge. Each backend's file
// passes start(storeExtra, extra), which starts a mock + agate whose `store` block is that
// backend's merged with storeExtra (startStore below does the rest).

import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { APIError } from 'openai';
import { startMock, startAgate, baseConfig, makeTempDir, waitFor, http, postJSON, readTable, stopEach } from './lib.mjs';

export const T = { timeout: 60_000 };

/**
 * A mock + agate (JSONL tables in a temp dir) with this `store` block; extra merges into the
 * config's top level; cleanup() runs after both stopped. Returns {mock, agate, tablesDir, client, stop}.
 */
export async function startStore(store, extra = {}, { cleanup = () => {} } = {}) {
  const mock = await startMock();
  const tablesDir = makeTempDir('agate-it-store-tables-');
  let agate;
  try {
    agate = await startAgate(baseConfig(mock, tablesDir, { extra: { store, ...extra } }));
  } catch (e) {
    await mock.stop();
    fs.rmSync(tablesDir, { recursive: true, force: true });
    cleanup();
    throw e;
  }
  const client = new OpenAI({ apiKey: 'k', baseURL: agate.url, maxRetries: 0, timeout: 15_000 });
  return {
    mock, agate, tablesDir, client,
    async stop() {
      try {
        await stopEach(agate, mock);
      } finally {
        fs.rmSync(tablesDir, { recursive: true, force: true });
        cleanup();
      }
    },
  };
}

/** The value of one sample on /metrics (name may hold a label set, regex-escaped); 0 if absent. */
export async function metric(base, name) {
  const r = await http('GET', `${base}/metrics`);
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.text);
  return m ? Number(m[1]) : 0;
}

export function storeApiSuite(title, start) {
  describe(title, () => {
    let s;
    before(async () => { s = await start(); });
    after(async () => { await s?.stop(); });

    test('create then retrieve: the stored object is the answer; store:true echoed', T, async () => {
      const r = await s.client.responses.create({ model: 'chat-agent', input: 'hello' });
      assert.equal(r.store, true, 'store omitted -> store.default (true)');
      const got = await s.client.responses.retrieve(r.id);
      const { output_text: _a, ...want } = r;
      const { output_text: _b, ...have } = got;
      assert.deepEqual(have, want);
      const row = await waitFor(() => readTable(s.tablesDir).find((x) => x.databricks_request_id && JSON.parse(x.response || '{}').id === r.id), 8000, 'the table row of the stored response');
      assert.equal(row.stored, true);
    });

    test('previous_response_id: earlier input and output precede the new input; instructions do not carry over', T, async () => {
      const r1 = await s.client.responses.create({ model: 'chat-agent', input: 'first question', instructions: 'be terse' });
      const r2 = await s.client.responses.create({ model: 'chat-agent', input: 'second question', previous_response_id: r1.id });
      assert.equal(r2.previous_response_id, r1.id);
      const up = await s.mock.lastRequest();
      assert.deepEqual(up.messages.map((m) => [m.role, typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')]),
        [['user', 'first question'], ['assistant', 'Hi there!'], ['user', 'second question']],
        'no system message: the first turn\'s instructions stayed with it');
    });

    test('streaming: right after the terminal event the response is retrievable (read-your-writes)', T, async () => {
      const stream = await s.client.responses.create({ model: 'chat-agent', input: 'stream me', stream: true });
      let done;
      for await (const ev of stream) if (ev.type === 'response.completed') done = ev.response;
      assert.ok(done, 'a response.completed event arrived');
      const got = await s.client.responses.retrieve(done.id);
      assert.equal(got.id, done.id);
      assert.deepEqual(got.output, done.output);
    });

    test('inputItems.list: ids assigned, order both ways, after/before cursors, limit bounds', T, async () => {
      const input = [1, 2, 3, 4, 5].map((i) => ({ role: 'user', content: `part ${i}` }));
      const r = await s.client.responses.create({ model: 'chat-agent', input });
      const asc = await s.client.responses.inputItems.list(r.id, { order: 'asc', limit: 2 });
      assert.deepEqual(asc.data.map((i) => i.content[0].text), ['part 1', 'part 2']);
      assert.equal(asc.has_more, true);
      assert.ok(asc.data.every((i) => /^msg_[0-9a-f]{32}$/.test(i.id) && i.type === 'message' && i.role === 'user'));
      const all = [];
      for await (const item of s.client.responses.inputItems.list(r.id, { order: 'asc', limit: 2 })) all.push(item.content[0].text);
      assert.deepEqual(all, ['part 1', 'part 2', 'part 3', 'part 4', 'part 5'], 'auto-pagination forwards with after=');
      const desc = await s.client.responses.inputItems.list(r.id);
      assert.deepEqual(desc.data.map((i) => i.content[0].text), ['part 5', 'part 4', 'part 3', 'part 2', 'part 1'], 'order defaults to desc');
      const ids = asc.data.map((i) => i.id);
      const all5 = (await s.client.responses.inputItems.list(r.id, { order: 'asc' })).data;
      const back = await s.client.responses.inputItems.list(r.id, { order: 'asc', before: all5[4].id, limit: 2 });
      assert.deepEqual(back.data.map((i) => i.content[0].text), ['part 3', 'part 4'], 'before= pages backwards');
      assert.equal(back.has_more, true);
      const raw = await http('GET', `${s.agate.url}/responses/${r.id}/input_items?order=asc&before=${all5[4].id}&limit=2`);
      assert.deepEqual(Object.keys(raw.json).sort(), ['data', 'first_id', 'has_more', 'last_id', 'object']);
      assert.equal(raw.json.object, 'list');
      assert.equal(raw.json.first_id, all5[2].id);
      assert.equal(raw.json.last_id, all5[3].id);
      const mid = await s.client.responses.inputItems.list(r.id, { order: 'asc', after: ids[0], before: all5[3].id });
      assert.deepEqual(mid.data.map((i) => i.content[0].text), ['part 2', 'part 3']);
      assert.equal(mid.has_more, false);
      for (const bad of ['0', '101', 'x']) {
        const res = await http('GET', `${s.agate.url}/responses/${r.id}/input_items?limit=${bad}`);
        assert.equal(res.status, 400, `limit=${bad}`);
        assert.equal(res.json.error.param, 'limit');
      }
      const bo = await http('GET', `${s.agate.url}/responses/${r.id}/input_items?order=up`);
      assert.equal(bo.status, 400);
      assert.equal(bo.json.error.param, 'order');
    });

    test('item_reference resolves to a stored output item; unknown -> 400 naming input[i]', T, async () => {
      const r1 = await s.client.responses.create({ model: 'chat-agent', input: 'mock:text_then_tools' });
      const msg = r1.output.find((i) => i.type === 'message');
      const calls = r1.output.filter((i) => i.type === 'function_call');
      assert.ok(msg && calls.length === 2, 'text then two calls');
      // The upstream picks its scenario from the first mock: token, the new user message's here.
      const input = [{ role: 'user', content: 'go on mock:text' }, { type: 'item_reference', id: msg.id },
        ...calls.map((c) => ({ type: 'item_reference', id: c.id })),
        ...calls.map((c) => ({ type: 'function_call_output', call_id: c.call_id, output: 'sunny' }))];
      const r2 = await s.client.responses.create({ model: 'chat-agent', input });
      assert.equal(r2.status, 'completed');
      const up = await s.mock.lastRequest();
      assert.equal(up.messages[1].role, 'assistant');
      assert.ok(JSON.stringify(up.messages[1]).includes('Let me check.'), 'the referenced message reached the upstream');
      assert.deepEqual(up.messages.filter((m) => m.role === 'tool').map((m) => m.tool_call_id), calls.map((c) => c.call_id));
      await assert.rejects(s.client.responses.create({ model: 'chat-agent', input: [{ role: 'user', content: 'x' }, { type: 'item_reference', id: 'msg_nope' }] }),
        (e) => e instanceof APIError && e.status === 400 && e.error?.param === 'input[1]' && /msg_nope/.test(e.message));
    });

    test('unknown previous_response_id -> 404 not_found naming the id', T, async () => {
      const res = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'x', previous_response_id: 'resp_missing1' });
      assert.equal(res.status, 404);
      assert.equal(res.json.error.code, 'not_found');
      assert.equal(res.json.error.param, 'previous_response_id');
      assert.match(res.json.error.message, /resp_missing1/);
    });

    test('store:false is never written; delete removes; a deleted id is a clean 404', T, async () => {
      const r = await s.client.responses.create({ model: 'chat-agent', input: 'no keep', store: false });
      assert.equal(r.store, false);
      await assert.rejects(s.client.responses.retrieve(r.id), (e) => e instanceof APIError && e.status === 404);
      const k = await s.client.responses.create({ model: 'chat-agent', input: 'keep' });
      await s.client.responses.delete(k.id);
      await assert.rejects(s.client.responses.retrieve(k.id), (e) => e instanceof APIError && e.status === 404 && /not found/.test(e.message));
      const again = await http('DELETE', `${s.agate.url}/responses/${k.id}`);
      assert.equal(again.status, 404);
      const gone = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'x', previous_response_id: k.id });
      assert.equal(gone.status, 404);
    });

    test('conversations through the SDK: create, retrieve, update, items (list both ways, add, get, delete), responses append, delete', T, async () => {
      const c = await s.client.conversations.create({ metadata: { topic: 'demo' }, items: [{ type: 'message', role: 'user', content: 'remember: blue' }] });
      assert.match(c.id, /^conv_/);
      assert.deepEqual({ object: c.object, metadata: c.metadata }, { object: 'conversation', metadata: { topic: 'demo' } });
      assert.equal(typeof c.created_at, 'number');
      assert.deepEqual(await s.client.conversations.retrieve(c.id), c);
      const r = await s.client.responses.create({ model: 'chat-agent', input: 'what colour?', conversation: c.id });
      assert.deepEqual(r.conversation, { id: c.id });
      const up = await s.mock.lastRequest();
      assert.deepEqual(up.messages.map((m) => m.content), ['remember: blue', 'what colour?'], 'the conversation\'s items come first');
      const r2 = await s.client.responses.create({ model: 'chat-agent', input: 'and again?', conversation: { id: c.id } });
      assert.equal(r2.status, 'completed');
      assert.equal((await s.mock.lastRequest()).messages.length, 4, 'seed, first turn\'s input and output, then the new input');
      const added = await s.client.conversations.items.create(c.id, { items: [{ type: 'message', role: 'user', content: 'note' }] });
      assert.equal(added.data.length, 1);
      const all = [];
      for await (const it of s.client.conversations.items.list(c.id, { order: 'asc', limit: 2 })) all.push(it);
      assert.equal(all.length, 6, 'seed + two turns (input, output) + the added note');
      assert.equal(all.at(-1).id, added.data[0].id);
      const desc = await s.client.conversations.items.list(c.id, { limit: 2 });
      assert.deepEqual(desc.data.map((i) => i.id), [all[5].id, all[4].id], 'desc by default');
      const back = await http('GET', `${s.agate.url}/conversations/${c.id}/items?order=asc&before=${all[3].id}&limit=2`);
      assert.deepEqual(back.json.data.map((i) => i.id), [all[1].id, all[2].id]);
      assert.equal(back.json.has_more, true);
      const one = await s.client.conversations.items.retrieve(all[0].id, { conversation_id: c.id });
      assert.deepEqual(one, all[0]);
      const after = await s.client.conversations.items.delete(all[0].id, { conversation_id: c.id });
      assert.equal(after.id, c.id);
      await assert.rejects(s.client.conversations.items.retrieve(all[0].id, { conversation_id: c.id }), (e) => e.status === 404);
      const upd = await s.client.conversations.update(c.id, { metadata: { topic: 'renamed' } });
      assert.deepEqual(upd.metadata, { topic: 'renamed' });
      const del = await s.client.conversations.delete(c.id);
      assert.deepEqual(del, { id: c.id, object: 'conversation.deleted', deleted: true });
      await assert.rejects(s.client.conversations.retrieve(c.id), (e) => e.status === 404);
      const gone = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'x', conversation: c.id });
      assert.equal(gone.status, 404);
      assert.equal(gone.json.error.param, 'conversation');
    });

    test('conversation with previous_response_id, or with store:false -> 400; bad items -> 400', T, async () => {
      const both = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'x', previous_response_id: 'resp_1', conversation: 'conv_1' });
      assert.equal(both.status, 400);
      assert.equal(both.json.error.param, 'previous_response_id');
      const nostore = await postJSON(`${s.agate.url}/responses`, { model: 'chat-agent', input: 'x', store: false, conversation: 'conv_1' });
      assert.equal(nostore.status, 400);
      assert.equal(nostore.json.error.param, 'store');
      const bad = await postJSON(`${s.agate.url}/conversations`, { items: [{ type: 'teleport' }] });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.param, 'input[0]');
      const many = await postJSON(`${s.agate.url}/conversations`, { items: Array.from({ length: 21 }, () => ({ role: 'user', content: 'x' })) });
      assert.equal(many.status, 400);
      assert.equal(many.json.error.param, 'items');
      const notjson = await http('POST', `${s.agate.url}/conversations`, { body: '{', contentType: 'application/json' });
      assert.equal(notjson.status, 400);
    });

    test('a 100-turn chain: every turn sees the whole conversation, the last turn costs about what the first does', { timeout: 240_000 }, async () => {
      let prev;
      const ms = [];
      for (let turn = 1; turn <= 100; turn++) {
        const t0 = performance.now();
        const r = await s.client.responses.create({ model: 'chat-agent', input: `turn ${turn}`, ...(prev ? { previous_response_id: prev } : {}) });
        ms.push(performance.now() - t0);
        prev = r.id;
      }
      const up = await s.mock.lastRequest();
      assert.equal(up.messages.length, 199, '99 earlier turns (user + assistant) + the new input');
      assert.equal(up.messages[0].content, 'turn 1');
      assert.equal(up.messages[198].content, 'turn 100');
      const avg = (a) => a.reduce((x, y) => x + y, 0) / a.length;
      const first = avg(ms.slice(0, 10));
      const last = avg(ms.slice(-10));
      console.log(`# 100-turn chain: first 10 turns avg ${first.toFixed(1)} ms, last 10 turns avg ${last.toFixed(1)} ms`);
      assert.ok(last < first * 5 + 50, `turn cost stays bounded at depth 100 (first ${first.toFixed(1)} ms, last ${last.toFixed(1)} ms)`);
    });

    test('isolation: an object belongs to the requester that created it; another gets 404, never the object', T, async () => {
      const dir = makeTempDir('agate-it-store-keys-');
      const keysFile = path.join(dir, 'keys.jsonl');
      const keys = { alice: 'agk_alice_' + crypto.randomBytes(8).toString('hex'), bob: 'agk_bob_' + crypto.randomBytes(8).toString('hex') };
      const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');
      fs.writeFileSync(keysFile, [
        { key_sha256: sha(keys.alice), requester: 'alice' },
        { key_sha256: sha(keys.bob), requester: 'bob' },
      ].map((l) => JSON.stringify(l)).join('\n') + '\n');
      const s = await start({}, { auth: { keys_file: keysFile } });
      try {
        const as = (who) => new OpenAI({ apiKey: keys[who], baseURL: s.agate.url, maxRetries: 0, timeout: 15_000 });
        const alice = as('alice');
        const bob = as('bob');
        const r = await alice.responses.create({ model: 'chat-agent', input: 'secret of alice' });
        assert.equal((await alice.responses.retrieve(r.id)).id, r.id, 'the owner retrieves it');
        const notFound = async (what, fn) => {
          const e = await fn().then(() => null, (x) => x);
          assert.ok(e instanceof OpenAI.APIError, `${what}: an API error`);
          assert.equal(e.status, 404, `${what}: 404`);
          assert.doesNotMatch(JSON.stringify(e.error ?? {}), /secret of alice/, `${what}: nothing of the object leaks`);
        };
        await notFound('retrieve by another requester', () => bob.responses.retrieve(r.id));
        await notFound('input_items by another requester', () => bob.responses.inputItems.list(r.id));
        await notFound('previous_response_id by another requester', () =>
          bob.responses.create({ model: 'chat-agent', input: 'and then?', previous_response_id: r.id }));
        await notFound('delete by another requester', () => bob.responses.delete(r.id));
        assert.equal((await alice.responses.retrieve(r.id)).id, r.id, "still there after the other requester's delete");
      } finally {
        await s.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/** The ttl purge with the test-only knobs (a 1 s ttl, a purge tick every 100 ms). */
export function ttlPurgeTest(start) {
  test('ttl purge deletes expired responses on the loop (test-only short ttl)', T, async () => {
    const s = await start({ test_ttl_seconds: 1, test_purge_interval_ms: 100 });
    try {
      const r = await s.client.responses.create({ model: 'chat-agent', input: 'short-lived' });
      assert.equal((await s.client.responses.retrieve(r.id)).id, r.id, 'stored at first');
      await waitFor(async () => (await http('GET', `${s.agate.url}/responses/${r.id}`)).status === 404, 10_000, 'the purge to delete the response');
      assert.ok(await metric(s.agate.base, 'agate_store_purged_total') >= 1);
    } finally {
      await s.stop();
    }
  });
}
