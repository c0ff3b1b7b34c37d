// Identity and access (issue 13): API keys from a keys file (Bearer, api-key, x-api-key), expired
// and unknown keys, a trusted identity header accepted only from auth.trusted_proxies, per-endpoint
// `allow`, the keys file reloaded when it changes, requester and groups in both tables, bounded
// per-requester /metrics series, and no key material anywhere agate writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import nodeHttp from 'node:http';
import path from 'node:path';
import { startMock, startAgate, stopEach, makeTempDir, http, crid, readTable, waitFor, waitRow, checkErrorReply, WAIT_MS } from './lib.mjs';

const T = { timeout: 90_000 };
const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');
const newKey = () => `agk_${crypto.randomBytes(32).toString('hex')}`;

/** One request from a chosen loopback source address (127.0.0.2 is not 127.0.0.1). */
function fromAddress(localAddress, url, body, headers) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = nodeHttp.request(url, {
      method: 'POST', localAddress, timeout: WAIT_MS,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'x-client-request-id': body.client_request_id ?? '', ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => { let json; try { json = JSON.parse(text); } catch { /* not JSON */ } resolve({ status: res.statusCode, json, text }); });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${WAIT_MS} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

test('API keys, trusted header, allow lists, reload, rows and metrics; no secret anywhere', T, async () => {
  const dir = makeTempDir('agate-it-auth-');
  const tablesDir = path.join(dir, 'tables');
  const keysFile = path.join(dir, 'keys.jsonl');
  const accessLog = path.join(dir, 'access.log');
  const keys = { alice: newKey(), bob: newKey(), carol: newKey(), dave: newKey(), erin: newKey(), frank: newKey() };
  const lines = [
    '# agate keys file',
    { key_sha256: sha(keys.alice), requester: 'alice', groups: ['eng'] },
    { key_sha256: sha(keys.bob), requester: 'bob', endpoints: ['open-agent'] },
    { key_sha256: sha(keys.carol), requester: 'carol', expires_at: '2001-01-01T00:00:00Z' },
    { key_sha256: sha(keys.dave), requester: 'dave', groups: ['ml', 'ops'] },
    { key_sha256: sha(keys.frank), requester: 'frank', expires_at: Math.floor(Date.now() / 1000) + 86400 },
  ];
  fs.writeFileSync(keysFile, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  let mock, agate;
  try {
    mock = await startMock();
    agate = await startAgate({
      listen: '127.0.0.1:0',
      access_log: accessLog,
      auth: { keys_file: keysFile, keys_poll_ms: 50, trusted_header: 'X-Forwarded-User', trusted_groups_header: 'X-Forwarded-Groups',
        trusted_proxies: ['127.0.0.1/32'], metrics_requesters: 3 },
      endpoints: [
        { name: 'chat-agent', upstreams: [{ url: mock.url }], model: 'mock-model', allow: { requesters: ['alice', 'frank', 'erin'], groups: ['ml'] } },
        { name: 'open-agent', upstreams: [{ url: mock.url }], model: 'mock-model' },
      ],
      tables: { sink: 'jsonl', dir: tablesDir, flush_ms: 50, usage_table: true },
    });
    const url = `${agate.base}/v1/responses`;
    const inv = (ep) => `${agate.base}/serving-endpoints/${ep}/invocations`;
    const call = (headers, tag, model = 'chat-agent') =>
      http('POST', url, { headers: { 'x-client-request-id': tag, ...headers }, body: { model, input: 'hi', client_request_id: tag } });
    const bearer = (k) => ({ authorization: `Bearer ${k}` });
    const ids = {};

    // 401: missing, unknown, expired, wrong scheme — each in the route's shape, with WWW-Authenticate.
    ids.missing = crid('missing');
    let r = await call({}, ids.missing);
    checkErrorReply(r, { status: 401, type: 'invalid_request_error', code: 'invalid_api_key', error_code: 'UNAUTHENTICATED', message: /missing API key/ });
    assert.match(r.headers.get('www-authenticate') || '', /^Bearer/);
    ids.unknown = crid('unknown');
    checkErrorReply(await call(bearer(newKey()), ids.unknown), { status: 401, error_code: 'UNAUTHENTICATED', message: 'invalid API key' });
    ids.expired = crid('expired');
    checkErrorReply(await call(bearer(keys.carol), ids.expired), { status: 401, message: 'API key expired' });
    checkErrorReply(await call({ authorization: `Basic ${keys.alice}` }, crid('basic')), { status: 401, message: /Bearer scheme/ });
    r = await http('POST', inv('chat-agent'), { body: { input: [{ role: 'user', content: 'hi' }] } });
    checkErrorReply(r, { status: 401, error_code: 'UNAUTHENTICATED', route: 'databricks' });
    r = await http('POST', `${agate.base}/v1/chat/completions`, { body: { model: 'chat-agent', messages: [{ role: 'user', content: 'hi' }] } });
    checkErrorReply(r, { status: 401, error_code: 'UNAUTHENTICATED' });

    // 200 with each header form; a key with a future expiry works.
    ids.alice = crid('alice');
    r = await call(bearer(keys.alice), ids.alice);
    assert.equal(r.status, 200, r.text);
    assert.equal((await call({ 'api-key': keys.alice }, crid('apikey'))).status, 200);
    assert.equal((await call({ 'x-api-key': keys.alice }, crid('xapikey'))).status, 200);
    assert.equal((await call(bearer(keys.frank), crid('frank'))).status, 200);
    r = await http('POST', inv('chat-agent'), { headers: bearer(keys.alice), body: { input: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 200, r.text);

    // 403: bob's key is limited to open-agent; chat-agent's allow list does not name him.
    ids.bob403 = crid('bob403');
    checkErrorReply(await call(bearer(keys.bob), ids.bob403), { status: 403, error_code: 'PERMISSION_DENIED', message: /bob.*chat-agent/ });
    r = await http('POST', inv('chat-agent'), { headers: bearer(keys.bob), body: { input: [{ role: 'user', content: 'hi' }] } });
    checkErrorReply(r, { status: 403, error_code: 'PERMISSION_DENIED', route: 'databricks' });
    assert.equal((await call(bearer(keys.bob), crid('bob200'), 'open-agent')).status, 200);
    // dave is allowed through his group ml.
    ids.dave = crid('dave');
    assert.equal((await call(bearer(keys.dave), ids.dave)).status, 200);

    // Trusted header: counted from 127.0.0.1 (a trusted proxy), ignored from 127.0.0.2.
    ids.trent = crid('trent');
    r = await fromAddress('127.0.0.1', url, { model: 'chat-agent', input: 'hi', client_request_id: ids.trent },
      { 'x-forwarded-user': 'trent@corp', 'x-forwarded-groups': 'ops, ml' });
    assert.equal(r.status, 200, r.text);
    ids.spoof = crid('spoof');
    r = await fromAddress('127.0.0.2', url, { model: 'chat-agent', input: 'hi', client_request_id: ids.spoof },
      { 'x-forwarded-user': 'alice' });
    assert.equal(r.status, 401, `a trusted header from an untrusted peer is ignored: ${r.text}`);
    r = await fromAddress('127.0.0.2', url, { model: 'chat-agent', input: 'hi' }, { 'x-forwarded-user': 'mallory', ...bearer(keys.alice) });
    assert.equal(r.status, 200, 'the key decides when the header is not trusted');
    ids.notinallow = crid('notinallow');
    r = await fromAddress('127.0.0.1', url, { model: 'chat-agent', input: 'hi', client_request_id: ids.notinallow }, { 'x-forwarded-user': 'zed' });
    assert.equal(r.status, 403, r.text);

    // Reload: erin's key works once the changed file is seen (stat polling), without a signal.
    ids.erinBefore = crid('erin-before');
    assert.equal((await call(bearer(keys.erin), ids.erinBefore)).status, 401);
    fs.appendFileSync(keysFile, JSON.stringify({ key_sha256: sha(keys.erin), requester: 'erin' }) + '\n');
    let last;
    await waitFor(async () => { last = await call(bearer(keys.erin), crid('erin')); return last.status === 200; }, 10_000,
      'erin admitted after the keys file changed', { seen: () => `${last?.status} ${last?.text}` });
    // A broken file keeps the keys in force and is reported.
    fs.appendFileSync(keysFile, '{"key_sha256": "nothex"}\n');
    await waitFor(() => /event=keys_reload_failed/.test(agate.logs()), 10_000, 'keys_reload_failed in the log');
    assert.equal((await call(bearer(keys.erin), crid('erin-still'))).status, 200, 'old keys still in force');

    // Rows: requester and groups in payload and usage rows; refusals are rejected rows (a 401 on
    // /v1/responses is not parsed, so it lands in unrouted_payload with the header's id).
    const payloadRow = (id) => waitRow(tablesDir, (x) => x.client_request_id === id && 'response' in x, `payload row ${id}`);
    const usageRow = (id) => waitRow(path.join(tablesDir, 'endpoint_usage'), (x) => x.client_request_id === id, `usage row ${id}`);
    for (const [id, status, requester] of [[ids.missing, 401, null], [ids.unknown, 401, null], [ids.expired, 401, null],
      [ids.bob403, 403, 'bob'], [ids.spoof, 401, null], [ids.notinallow, 403, 'zed']]) {
      const row = await payloadRow(id);
      assert.equal(row.status_code, status, id);
      assert.equal(row.finish_status, 'rejected', id);
      assert.equal(row.requester, requester, id);
      assert.equal(row.execution_duration_ms, null, 'never dispatched');
      assert.equal((await usageRow(id)).status_code, status);
    }
    const a = await payloadRow(ids.alice);
    assert.equal(a.requester, 'alice');
    assert.deepEqual(a.requester_groups, ['eng']);
    assert.equal(a.finish_status, 'completed');
    const au = await usageRow(ids.alice);
    assert.equal(au.requester, 'alice');
    assert.deepEqual(au.requester_groups, ['eng']);
    assert.deepEqual((await payloadRow(ids.dave)).requester_groups, ['ml', 'ops']);
    const t = await payloadRow(ids.trent);
    assert.equal(t.requester, 'trent@corp');
    assert.deepEqual(t.requester_groups, ['ops', 'ml']);

    // /metrics: the first 3 requesters have their own series, the rest are "other".
    const m = await http('GET', `${agate.base}/metrics`);
    const series = [...m.text.matchAll(/^agate_requester_requests_total\{requester="([^"]*)"\} (\d+)$/gm)].map((x) => x[1]);
    assert.ok(series.includes('anonymous'), m.text);
    assert.ok(series.includes('alice'), m.text);
    assert.ok(series.includes('other'), m.text);
    assert.equal(series.length, 5, `bounded: anonymous + 3 names + other, saw ${series}`);
    assert.match(m.text, /^agate_requester_tokens_total\{requester="alice"\} [1-9]\d*$/m);
    assert.match(m.text, /^agate_auth_keys 6$/m);

    // No key material in anything agate wrote: stderr, access log, tables, metrics.
    await stopEach(agate);
    const everything = [agate.logs(), fs.readFileSync(accessLog, 'utf8'), m.text,
      ...readTable(tablesDir).map((x) => JSON.stringify(x))].join('\n');
    assert.ok(everything.length > 1000, 'there is output to search');
    for (const [who, k] of Object.entries(keys)) {
      assert.ok(!everything.includes(k), `${who}'s key appears in agate's output`);
      assert.ok(!everything.includes(k.slice(4, 24)), `part of ${who}'s key appears in agate's output`);
    }
    agate = null;
  } finally {
    await stopEach(agate, mock);
    if (!process.env.AGATE_IT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('config errors name the key; --check-config reads the keys file; --new-key prints a usable key', T, async () => {
  const { spawnSync } = await import('node:child_process');
  const bin = process.env.AGATE_BIN;
  const dir = makeTempDir('agate-it-authcfg-');
  try {
    const cfg = (extra) => {
      const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.json`);
      fs.writeFileSync(f, JSON.stringify({ endpoints: [{ name: 'e', upstreams: [{ url: 'http://127.0.0.1:1/v1' }], ...extra.ep }], ...extra.top }));
      return spawnSync(bin, ['--check-config', f], { encoding: 'utf8' });
    };
    let r = cfg({ top: { auth: { trusted_header: 'X-User' } } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /auth\.trusted_proxies: required/);
    r = cfg({ top: { auth: { trusted_header: 'X-User', trusted_proxies: ['10.0.0.0/33'] } } });
    assert.match(r.stderr, /auth\.trusted_proxies\[0\]: "10\.0\.0\.0\/33" is not/);
    r = cfg({ ep: { allow: { requesters: ['a'] } } });
    assert.match(r.stderr, /endpoints\[0\]\.allow: needs the auth block/);
    const kf = path.join(dir, 'k.jsonl');
    fs.writeFileSync(kf, '{"key_sha256":"' + 'a'.repeat(64) + '"}\n\n{"key_sha256":"xyz"}\n');
    r = cfg({ top: { auth: { keys_file: kf } } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /keys file: line 3: key_sha256: must be 64 hex digits/);
    r = spawnSync(bin, ['--new-key', 'svc-bot', '--group', 'eng', '--group', 'ops'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [key, line] = r.stdout.trim().split('\n');
    assert.match(key, /^agk_[0-9a-f]{64}$/);
    const entry = JSON.parse(line);
    assert.deepEqual(entry, { key_sha256: sha(key), requester: 'svc-bot', groups: ['eng', 'ops'] });
    assert.ok(!line.includes(key.slice(4)), 'the line to add holds only the hash');
    r = spawnSync(bin, ['--help'], { encoding: 'utf8' });
    assert.match(r.stdout, /--new-key NAME/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
