// deploy/: the artifacts an operator ships, checked offline with real validators.
// - Kubernetes base: every resource of deploy/k8s/kustomization.yaml validated against the
//   Kubernetes OpenAPI schemas shipped in the kubernetes-models npm package; probes, drain budget,
//   selectors and Secret keys checked against each other; the ConfigMap's config by agate itself.
//   When kubectl is on PATH (not in a fresh Debian), `kubectl kustomize` output is validated too.
// - Dockerfile: dockerfile-utils' linter (no docker here, so no build), and its build steps are
//   exactly deploy/install-deps.sh + the Makefile's CMake configure and build.
// - compose.yaml: parsed (yaml) and checked for structure; there is no compose validator offline.
// - systemd unit: `systemd-analyze verify` (from Debian's systemd, installed by install-deps.sh
//   --test) must print nothing, and `systemd-analyze security --offline` must rate it OK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { DockerfileParser } from 'dockerfile-ast';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { makeTempDir } from './lib.mjs';

const T = { timeout: 30_000 };
const SRC = process.env.AGATE_SRC ?? path.resolve(import.meta.dirname, '../..');
const DEPLOY = path.join(SRC, 'deploy');
const ABORT_GRACE_MS = 1000; // gateway/main.c
const TABLE_FLUSH_MS = 2000; // PostgreSQL sink close (README "Running it")

const MODELS = {
  'apps/v1/Deployment': Deployment,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
};

function validateK8s(doc, where) {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  assert.ok(Model, `${where}: ${doc.apiVersion} ${doc.kind} is a kind the base is expected to hold`);
  assert.doesNotThrow(() => new Model(doc).validate(), `${where}: ${doc.kind} ${doc.metadata?.name} matches the Kubernetes schema`);
}

/** `agate --check-config` on a config text, with DATABASE_URL set as every deployment here sets it
 * (Secret, compose environment, EnvironmentFile): exit 0 or the failure message. */
function checkConfig(text, what) {
  const dir = makeTempDir('agate-deploy-');
  try {
    const f = path.join(dir, 'agate.json');
    fs.writeFileSync(f, text);
    const r = spawnSync(process.env.AGATE_BIN, ['--check-config', f], {
      encoding: 'utf8', timeout: 10_000, env: { ...process.env, DATABASE_URL: 'postgresql://agate@db:5432/agate' },
    });
    assert.equal(r.status, 0, `${what} passes agate --check-config: ${r.stderr}`);
    return JSON.parse(text);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function loadBase() {
  const k = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'k8s/kustomization.yaml'), 'utf8'));
  assert.equal(k.kind, 'Kustomization');
  const docs = [];
  for (const r of k.resources) {
    for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(DEPLOY, 'k8s', r), 'utf8'))) {
      assert.equal(d.errors.length, 0, `${r}: YAML errors ${d.errors}`);
      docs.push({ file: r, doc: d.toJS() });
    }
  }
  return docs;
}

test('Kubernetes base: schema-valid, probes, drain budget, selectors, secrets and config agree', T, () => {
  const docs = loadBase();
  for (const { file, doc } of docs) validateK8s(doc, file);
  const byKind = (k) => docs.map((d) => d.doc).filter((d) => d.kind === k);
  for (const k of Object.values(MODELS).map((m) => m.name)) assert.equal(byKind(k).length, 1, `one ${k}`);
  const dep = byKind('Deployment')[0];
  const pod = dep.spec.template.spec;
  const c = pod.containers[0];
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'resources set');
  assert.equal(pod.securityContext.runAsNonRoot, true);
  // The config the pod runs, validated by agate, and the drain budget derived from it.
  const cm = byKind('ConfigMap')[0];
  const sec = byKind('Secret')[0];
  // The keys file is the Secret's keys.jsonl, mounted where auth.keys_file points; --check-config
  // parses it, so it runs on a copy of the Secret's text at a local path.
  const cmCfg = JSON.parse(cm.data['agate.json']);
  const keysVol = pod.volumes.find((v) => v.secret?.secretName === sec.metadata.name);
  const keysMount = c.volumeMounts.find((m) => m.name === keysVol.name);
  const item = keysVol.secret.items.find((i) => i.key === 'keys.jsonl');
  assert.equal(cmCfg.auth.keys_file, `${keysMount.mountPath}/${item.path}`, 'auth.keys_file is the mounted Secret item');
  const keysDir = makeTempDir('agate-deploy-keys-');
  let cfg;
  try {
    fs.writeFileSync(path.join(keysDir, 'keys.jsonl'), sec.stringData['keys.jsonl']);
    const local = { ...cmCfg, auth: { ...cmCfg.auth, keys_file: path.join(keysDir, 'keys.jsonl') } };
    checkConfig(JSON.stringify(local), 'the ConfigMap config with the Secret\'s keys file');
    cfg = cmCfg;
  } finally {
    fs.rmSync(keysDir, { recursive: true, force: true });
  }
  const mount = c.volumeMounts.find((m) => m.name === pod.volumes.find((v) => v.configMap?.name === cm.metadata.name).name);
  assert.equal(c.args[c.args.indexOf('--config') + 1], `${mount.mountPath}/agate.json`, 'args point at the mounted config');
  const preStop = c.lifecycle.preStop.exec.command;
  assert.equal(preStop[0], '/bin/sleep');
  const needMs = Number(preStop[1]) * 1000 + (cfg.limits?.drain_timeout_ms ?? 30000) + ABORT_GRACE_MS + TABLE_FLUSH_MS;
  assert.ok(pod.terminationGracePeriodSeconds * 1000 >= needMs,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} s covers preStop + drain + grace + flush (${needMs} ms)`);
  assert.ok(pod.terminationGracePeriodSeconds * 1000 <= needMs + 15_000, 'and not much more');
  // Secret keys referenced exist; api_key_env names are set from them.
  for (const e of c.env.filter((x) => x.valueFrom?.secretKeyRef)) {
    assert.equal(e.valueFrom.secretKeyRef.name, sec.metadata.name);
    assert.ok(e.valueFrom.secretKeyRef.key in sec.stringData, `secret key ${e.valueFrom.secretKeyRef.key}`);
  }
  for (const u of cfg.endpoints.flatMap((e) => e.upstreams)) assert.ok(c.env.some((e) => e.name === u.api_key_env), `${u.api_key_env} set`);
  const port = c.ports.find((p) => p.name === 'http').containerPort;
  assert.equal(Number(cfg.listen.split(':')[1]), port, 'the config listens on the container port');
  assert.equal(cfg.listen.split(':')[0], '0.0.0.0');
  // Selectors: Service, PDB and the Deployment's own select the pod template's labels.
  const labels = dep.spec.template.metadata.labels;
  const selects = (sel) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  assert.ok(selects(dep.spec.selector.matchLabels));
  assert.ok(selects(byKind('Service')[0].spec.selector));
  assert.equal(byKind('Service')[0].spec.ports[0].targetPort, 'http');
  assert.ok(selects(byKind('PodDisruptionBudget')[0].spec.selector.matchLabels));
  const pdb = byKind('PodDisruptionBudget')[0];
  const hpa = byKind('HorizontalPodAutoscaler')[0];
  assert.equal(hpa.spec.scaleTargetRef.name, dep.metadata.name);
  assert.ok(pdb.spec.minAvailable < hpa.spec.minReplicas, 'the PDB lets a node drain at the HPA minimum');
});

test('the schema validator is real: a broken Deployment is refused', T, () => {
  const dep = loadBase().map((d) => d.doc).find((d) => d.kind === 'Deployment');
  const bad = structuredClone(dep);
  bad.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
  assert.throws(() => new Deployment(bad).validate(), /containerPort/);
  const bad2 = structuredClone(dep);
  bad2.spec.template.spec.terminationGracePeriodSeconds = '45s';
  assert.throws(() => new Deployment(bad2).validate(), /terminationGracePeriodSeconds/);
});

test('kubectl kustomize renders the base into schema-valid objects', T, (t) => {
  const which = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' });
  if (which.status !== 0) {
    t.skip('kubectl is not installed (Debian 12 does not package it); the base was validated file by file above');
    return;
  }
  const out = execFileSync('kubectl', ['kustomize', path.join(DEPLOY, 'k8s')], { encoding: 'utf8', timeout: 20_000 });
  const docs = YAML.parseAllDocuments(out).map((d) => d.toJS());
  assert.equal(docs.length, 6);
  for (const d of docs) {
    validateK8s(d, 'kustomize output');
    assert.equal(d.metadata.labels['app.kubernetes.io/part-of'], 'agate');
  }
});

test('Dockerfile: lints clean; multi-stage Debian 12 slim; builds with install-deps.sh + the Makefile CMake; non-root; HEALTHCHECK /healthz', T, () => {
  const text = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8');
  const diags = lintDockerfile(text);
  assert.deepEqual(diags.map((d) => `${d.range.start.line + 1}: ${d.message}`), [], 'dockerfile-utils reports nothing');
  const ins = DockerfileParser.parse(text).getInstructions().map((i) => ({ k: i.getKeyword(), a: i.getArgumentsContent() ?? '' }));
  const froms = ins.filter((i) => i.k === 'FROM');
  assert.equal(froms.length, 2, 'two stages');
  for (const f of froms) assert.match(f.a, /^debian:12-slim\b/);
  const buildStage = ins.slice(0, ins.indexOf(froms[1]));
  const runStage = ins.slice(ins.indexOf(froms[1]));
  // The build stage runs exactly: install-deps.sh, cmake configure (the Makefile's flags), cmake build.
  const runs = buildStage.filter((i) => i.k === 'RUN').map((i) => i.a);
  assert.equal(runs.length, 3, `build steps: ${runs.join(' | ')}`);
  assert.match(runs[0], /^\/src\/deploy\/install-deps\.sh$/);
  const mk = fs.readFileSync(path.join(SRC, 'Makefile'), 'utf8');
  const mkFlags = /^build: deps\n\t@cmake -S \. -B \$\(BUILD\) (.*?) >\/dev\/null$/m.exec(mk)[1];
  assert.equal(runs[1], `cmake -S /src -B /build ${mkFlags}`, 'configure with the Makefile\'s flags');
  assert.match(runs[2], /^cmake --build \/build -j"\$\(nproc\)" --target agate mock_upstream$/);
  const runRuns = runStage.filter((i) => i.k === 'RUN').map((i) => i.a);
  assert.match(runRuns[0], /^\/tmp\/install-deps\.sh --runtime\b/, 'runtime libraries through install-deps.sh too');
  const user = runStage.find((i) => i.k === 'USER');
  assert.ok(user && !/^(0|root)(:|$)/.test(user.a), `non-root USER (${user?.a})`);
  assert.match(runStage.find((i) => i.k === 'HEALTHCHECK').a, /\/healthz/);
  assert.match(fs.readFileSync(path.join(DEPLOY, 'install-deps.sh'), 'utf8'), /--runtime\) want_runtime=1/);
  checkConfig(fs.readFileSync(path.join(DEPLOY, 'agate.container.json'), 'utf8'), 'deploy/agate.container.json');
});

test('compose.yaml: agate + PostgreSQL + Redis; waits for a healthy database and store; stop grace covers the drain', T, () => {
  const doc = YAML.parseDocument(fs.readFileSync(path.join(DEPLOY, 'compose.yaml'), 'utf8'));
  assert.equal(doc.errors.length, 0, String(doc.errors));
  const c = doc.toJS();
  assert.ok(c.services.agate && c.services.postgres);
  assert.equal(c.services.agate.depends_on.postgres.condition, 'service_healthy');
  assert.equal(c.services.agate.depends_on.redis.condition, 'service_healthy');
  assert.ok(c.services.redis.healthcheck.test.join(' ').includes('redis-cli ping'));
  assert.ok(c.services.postgres.healthcheck.test.join(' ').includes('pg_isready'));
  assert.match(c.services.agate.environment.DATABASE_URL, /^postgresql:\/\/.*@postgres:5432\//);
  assert.equal(c.services.agate.build.dockerfile, 'deploy/Dockerfile');
  const mount = c.services.agate.volumes.find((v) => v.endsWith(':/etc/agate/agate.json:ro'));
  const cfg = checkConfig(fs.readFileSync(path.join(DEPLOY, mount.split(':')[0]), 'utf8'), 'the compose config');
  assert.equal(cfg.tables.sink, 'postgres');
  assert.equal(cfg.rate_limits_store.redis, 'redis://redis:6379', 'rate limits in the compose Redis');
  // Traces go to a compose service that speaks OTLP/HTTP on the port the URL names.
  const traces = new URL(cfg.tracing.endpoint);
  assert.ok(c.services[traces.hostname], `tracing.endpoint names the compose service ${traces.hostname}`);
  assert.equal(traces.port, '4318', 'the OTLP/HTTP port');
  assert.equal(traces.pathname, '/v1/traces');
  assert.ok(c.services.agate.depends_on[traces.hostname], 'agate starts after its trace receiver');
  const grace = Number(/^(\d+)s$/.exec(c.services.agate.stop_grace_period)[1]) * 1000;
  assert.ok(grace >= (cfg.limits?.drain_timeout_ms ?? 30000) + ABORT_GRACE_MS + TABLE_FLUSH_MS, 'stop_grace_period covers the drain');
});

test('systemd unit: systemd-analyze verify is silent; sandboxing directives; security rated OK', T, (t) => {
  const unitText = fs.readFileSync(path.join(DEPLOY, 'systemd/agate.service'), 'utf8');
  const has = (line) => assert.match(unitText, new RegExp(`^${line}$`, 'm'), line);
  for (const l of ['DynamicUser=yes', 'ProtectSystem=strict', 'StateDirectory=agate', 'ExecReload=/bin/kill -s HUP \\$MAINPID',
    'NoNewPrivileges=yes', 'CapabilityBoundingSet=']) has(l);
  const cfg = checkConfig(fs.readFileSync(path.join(DEPLOY, 'systemd/agate.json'), 'utf8'), 'deploy/systemd/agate.json');
  assert.ok(cfg.tables.dir.startsWith('/var/lib/agate/'), 'tables in the StateDirectory');
  assert.ok(cfg.access_log.startsWith('/var/log/agate/'), 'access log in the LogsDirectory');
  const stopS = Number(/^TimeoutStopSec=(\d+)$/m.exec(unitText)[1]);
  assert.ok(stopS * 1000 >= cfg.limits.drain_timeout_ms + ABORT_GRACE_MS + TABLE_FLUSH_MS, 'TimeoutStopSec covers the drain');
  const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
  if (which.status !== 0) {
    t.skip('systemd-analyze not found: run deploy/install-deps.sh --test (it installs Debian\'s systemd package)');
    return;
  }
  // verify checks that ExecStart exists: point it at the binary under test.
  const dir = makeTempDir('agate-unit-');
  try {
    const unit = path.join(dir, 'agate.service');
    fs.writeFileSync(unit, unitText.replace('ExecStart=/usr/local/bin/agate', `ExecStart=${process.env.AGATE_BIN}`));
    const v = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(v.error, undefined, `systemd-analyze ran (${v.error?.message})`);
    assert.equal(v.status, 0, v.stderr);
    assert.equal((v.stdout + v.stderr).trim(), '', 'verify prints no warning (unknown keys are only warnings)');
    const s = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', unit], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(s.status, 0, s.stderr);
    const m = /Overall exposure level for agate\.service: ([\d.]+) (\w+)/.exec(s.stdout);
    assert.ok(m, `security summary: ${s.stdout.slice(-300)}`);
    assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]} ${m[2]} (<= 2.0)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
