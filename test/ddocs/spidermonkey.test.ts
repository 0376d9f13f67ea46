// The design documents, unchanged, in real SpiderMonkey 78 (CouchDB 3.2/3.3's engine), called the way
// CouchDB calls them (test/spidermonkey/harness.cpp), and compared result by result with our Node
// sandbox (ddocs/sandbox.ts): same refusals with the same messages, same view rows.
// Needs g++ and Debian's libmozjs-78-dev + pkg-config; without them this test fails, saying so.
import test, { type ExecutionContext } from 'ava';
import vm from 'node:vm';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDesignDoc, type DbKind, type DesignDoc } from '../../ddocs/build.ts';
import { DdocFunction, DdocFunctionError } from '../../ddocs/sandbox.ts';

const HARNESS_SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'spidermonkey', 'harness.cpp');
const INSTALL = 'apt-get install -y g++ pkg-config libmozjs-78-dev';

let buildDir: string | undefined;
let harness = '';

/** Compiles the harness once per run into a temporary directory. Throws (never skips) when it cannot. */
function buildHarness(): string {
  const pc = spawnSync('pkg-config', ['--cflags', '--libs', 'mozjs-78'], { encoding: 'utf8' });
  if (pc.error) throw new Error(`pkg-config is not installed; the SpiderMonkey test needs: ${INSTALL}`);
  if (pc.status !== 0) {
    throw new Error(`SpiderMonkey 78 headers/library not found (pkg-config mozjs-78 failed); install the Debian package libmozjs-78-dev: ${INSTALL}\n${pc.stderr}`);
  }
  buildDir = mkdtempSync(join(os.tmpdir(), 'anybios-sm78-'));
  const bin = join(buildDir, 'harness');
  const cc = spawnSync('g++', ['-std=c++17', '-O1', '-o', bin, HARNESS_SRC, ...pc.stdout.trim().split(/\s+/)], { encoding: 'utf8' });
  if (cc.error) throw new Error(`g++ is not installed; the SpiderMonkey test needs: ${INSTALL}`);
  if (cc.status !== 0) throw new Error(`g++ could not build ${HARNESS_SRC} against mozjs-78 (${INSTALL}):\n${cc.stderr}`);
  return bin;
}

test.before(() => {
  harness = buildHarness();
});

test.after.always(() => {
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

type Result = { ok: true; value?: unknown } | { forbidden: string } | { unauthorized: string } | { error: string };
type Call = { fn: string; args: unknown[] } | { fn: string; doc: object };

/** One harness process for a batch of calls against one ddoc. */
function inSpiderMonkey(ddoc: object, calls: Call[]): unknown[] {
  const run = spawnSync(harness, [], { input: JSON.stringify({ ddoc, calls }), encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`harness exited ${run.status}: ${run.stderr}`);
  const out = JSON.parse(run.stdout) as unknown[];
  if (out.length !== calls.length) throw new Error(`harness answered ${out.length} of ${calls.length} calls`);
  return out;
}

/** The same call through the Node sandbox, as the harness reports it. */
function inNode(fn: DdocFunction, args: unknown[]): Result {
  try {
    const value = fn.run(...args);
    return value === undefined ? { ok: true } : { ok: true, value };
  } catch (err) {
    if (!(err instanceof DdocFunctionError)) throw err;
    const thrown = err.thrown as { forbidden?: unknown; unauthorized?: unknown } | null;
    if (thrown && typeof thrown === 'object' && typeof thrown.forbidden === 'string') return { forbidden: thrown.forbidden };
    if (thrown && typeof thrown === 'object' && typeof thrown.unauthorized === 'string') return { unauthorized: thrown.unauthorized };
    return { error: err.message };
  }
}

/** Node's view of a map: emit collects rows, which then go through JSON as CouchDB's do. */
function mapInNode(src: string, doc: object): unknown {
  const emitted: unknown[][] = [];
  const fn = vm.runInNewContext(`(${src})`, { emit: (k: unknown, v: unknown) => emitted.push([k, v]) });
  fn(structuredClone(doc));
  return JSON.parse(JSON.stringify(emitted));
}

const ddocs: Record<DbKind, DesignDoc> = { catalog: buildDesignDoc('catalog'), node: buildDesignDoc('node') };

const admin = { name: 'admin', roles: ['_admin'] };
const operator = { name: 'olga', roles: ['operator'] };
const nodeA = { name: 'node-a', roles: ['node'] };
const nodeB = { name: 'node-b', roles: ['node'] };
const anonymous = { name: null, roles: [] };
const sec = { admins: { names: [], roles: [] }, members: { names: ['node-a'], roles: ['operator'] } };

const system = { _id: 'system:web', type: 'system', name: 'web', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] };
const status = { _id: 'status:web', type: 'status', name: 'web', phase: 'running', observedRev: '1-abc', pid: 42, updated: '2026-11-26T01:00:00.000Z' };
const template = { _id: 'template:host', type: 'template', name: 'host', source: 'host' };
const full = {
  _id: 'system:db', type: 'system', name: 'db', kind: 'os', template: 'debian', state: 'stopped', init: ['/sbin/init'],
  env: { PGDATA: '/var/lib/pg' }, workdir: '/', hostname: 'db', mounts: [{ volume: 'pg', target: '/var/lib/pg', readOnly: false }],
  network: 'host', restart: 'on-failure', resources: { memory: 512 * 1024 * 1024, pids: 512, cpuWeight: 100 }, labels: { tier: 'data' },
};

/** A write: the document, who writes it and where, and what must happen (null: allowed; RegExp: refused, message matching). */
type Write = [doc: object | null, user: object, expect: RegExp | null];

/**
 * Runs each write through validate_doc_update in SpiderMonkey and in the Node sandbox: the results must
 * be identical (same kind of refusal, same message), and as expected. Thrown Errors (not refusals
 * CouchDB forwards to the client) are compared by kind only: their text is each engine's own.
 */
function checkWrites(t: ExecutionContext, kind: DbKind, writes: Write[], db = kind === 'catalog' ? 'anybios' : 'anybios-node-a') {
  const ddoc = ddocs[kind];
  const calls = writes.map(([doc, user]) => ({ fn: 'validate_doc_update', args: [doc, null, { ...user, db }, sec] }));
  const sm = inSpiderMonkey(ddoc, calls) as Result[];
  const fn = new DdocFunction(ddoc, ddoc.validate_doc_update);
  writes.forEach(([doc, user, expect], i) => {
    const label = `${kind} ${JSON.stringify(doc)} by ${JSON.stringify(user)}`;
    const node = inNode(fn, calls[i].args);
    if ('error' in node || 'error' in sm[i]) {
      t.true('error' in node && 'error' in sm[i], `${label}: node ${JSON.stringify(node)} vs spidermonkey ${JSON.stringify(sm[i])}`);
    } else {
      t.deepEqual(sm[i], node, label);
    }
    if (expect === null) t.deepEqual(sm[i], { ok: true }, label);
    else {
      const r = sm[i] as Record<string, string>;
      t.regex(r.forbidden ?? r.unauthorized ?? r.error ?? '', expect, label);
    }
  });
}

test('node db: valid specs pass for admin, operator and the node itself', (t) => {
  checkWrites(t, 'node', [
    [system, admin, null],
    [system, operator, null],
    [system, nodeA, null],
    [full, operator, null],
    [{ _id: 'volume:data', type: 'volume', name: 'data' }, nodeA, null],
    [{ _id: 'volume:pg', type: 'volume', name: 'pg', description: 'postgres data — é ✓' }, operator, null],
  ]);
});

test('node db: status and node docs only by the node user or an admin', (t) => {
  checkWrites(t, 'node', [
    [status, nodeA, null],
    [status, admin, null],
    [status, operator, /only by the node's agent \(node-a\)/],
    [{ _id: 'node:a', type: 'node', name: 'a' }, operator, /node's agent/],
    [{ _id: 'node:a', type: 'node', name: 'a', heartbeat: '2026-11-26T01:00:00Z' }, nodeA, null],
    [{ _id: 'node:b', type: 'node', name: 'b' }, nodeA, /holds only node:a/],
    [{ _id: 'status:db', type: 'status', name: 'db', phase: 'failed', observedRev: '3-x', pid: null, exitCode: 1, restarts: 2, code: 'START_FAILED', message: 'x', diskUsed: 4096, logTail: '', updated: '2026-11-26T00:00:00.000Z' }, nodeA, null],
  ]);
});

test('node db: another node, anonymous, design docs and deletions', (t) => {
  checkWrites(t, 'node', [
    [system, nodeB, /only admins, operators and node-a write anybios-node-a/],
    [status, nodeB, /node-a/],
    [system, anonymous, /log in/],
    [{ _id: '_design/x' }, nodeA, /only admins write design documents/],
    [{ _id: '_design/x' }, admin, null],
    [{ _id: 'system:web', _rev: '1-a', _deleted: true }, nodeA, null],
    [{ _id: 'status:web', _rev: '1-a', _deleted: true }, operator, /node's agent/],
    [null, admin, /./],
  ]);
  // A user of another node database is the right writer there.
  checkWrites(t, 'node', [[{ _id: 'node:b', type: 'node', name: 'b' }, nodeB, null]], 'anybios-node-b');
});

test('node db: errors name the field and the rule, with the same text as in Node', (t) => {
  const { state: _s, ...noState } = system;
  const { command: _c, ...noCommand } = system;
  checkWrites(t, 'node', [
    [{ ...system, kind: 'vm' }, nodeA, /\/kind must be one of: os, app/],
    [{ ...system, extra: 1 }, nodeA, /\/extra unknown field/],
    [{ ...system, privileged: true }, nodeA, /\/privileged: only admins and operators may make a system privileged/],
    [noState, nodeA, /\/state is required/],
    [{ ...system, name: 'other' }, nodeA, /\/name must equal the name part of _id/],
    [{ ...system, _id: 'system:Bad', name: 'Bad' }, nodeA, /\/_id/],
    [{ ...system, mounts: [{ volume: 'data', target: '/srv/../etc' }] }, nodeA, /\/mounts\/0\/target must be an absolute path without \. or \.\. parts/],
    [noCommand, nodeA, /\/command is required/],
    [{ ...system, kind: 'os', init: ['/sbin/init'] }, nodeA, /field combination/],
    [{ _id: 'widget:x', type: 'widget', name: 'x' }, admin, /_id/],
    [template, admin, /a node database holds system:/],
    [{ ...status, phase: 'exploded' }, nodeA, /\/phase must be one of/],
    [{ ...full, workdir: 'relative', env: { 'BAD-NAME': 'x' }, resources: { memory: 1, cpuWeight: 0 }, restart: 'sometimes' }, operator, /\/env .*\/workdir .*\/restart .*\/resources\/memory .*\/resources\/cpuWeight/],
    [{ ...full, _id: 'system:' + 'a'.repeat(64), name: 'a'.repeat(64) }, operator, /\/name must be a name/],
    [{ ...full, mounts: [{ volume: 'pg', target: '/x', source: '/etc' }] }, operator, /\/mounts\/0\/source unknown field/],
    [{ ...status, updated: 'yesterday' }, nodeA, /\/updated must be an ISO time/],
  ]);
});

test('attachments: only template documents carry them; elsewhere refused naming the field, in both engines', (t) => {
  const att = { _attachments: { 'x.html': { content_type: 'text/html', data: 'PGgxPng8L2gxPg==' } } };
  const refused = /\/_attachments not allowed: only template documents carry attachments/;
  checkWrites(t, 'node', [
    [{ ...system, ...att }, operator, refused],
    [{ ...system, ...att }, admin, refused],
    [{ ...status, ...att }, nodeA, refused],
    [{ _id: 'volume:data', type: 'volume', name: 'data', ...att }, nodeA, refused],
    [{ _id: 'node:a', type: 'node', name: 'a', ...att }, nodeA, refused],
  ]);
  checkWrites(t, 'catalog', [
    [{ _id: 'template:tarred', type: 'template', name: 'tarred', source: 'tar', sha256: 'a'.repeat(64), _attachments: { 'rootfs.tar': { content_type: 'application/x-tar', stub: true, digest: 'md5-x', length: 10240, revpos: 1 } } }, operator, null],
    [{ ...template, ...att }, admin, null],
  ]);
});

test('catalog: admins and operators write templates; nodes and anonymous do not', (t) => {
  checkWrites(t, 'catalog', [
    [template, admin, null],
    [template, operator, null],
    [template, nodeA, /only admins and operators write the catalog/],
    [template, anonymous, /log in/],
    [system, admin, /the catalog holds template/],
    [{ ...template, source: 'dir' }, admin, /\/path is required/],
    [{ ...template, source: 'tar', sha256: 'xyz' }, admin, /\/sha256 must be a sha256/],
    [{ _id: 'template:tiny', type: 'template', name: 'tiny', source: 'tar', sha256: 'a'.repeat(64) }, admin, null],
    [{ _id: 'template:debian', type: 'template', name: 'debian', source: 'dir', path: '/srv/templates/debian', labels: { os: 'debian' } }, operator, null],
    [{ _id: 'template:h', type: 'template', name: 'h', source: 'host', path: '/x' }, operator, /field combination/],
  ]);
});

test('the compiled schemas (ajv standalone) give the same errorsOf in SpiderMonkey', (t) => {
  // errorsOf is what the API, CLI and agent show; an extra ddoc function reaches it through require.
  const src = "function (doc) { return require('lib/rules').errorsOf(doc); }";
  const ddoc = { ...ddocs.node, errors_of: src };
  const docs: unknown[] = [
    full, system, status, template, 'x', { type: 'system' }, { _id: 'thing:x' }, { _id: 'constructor:x' }, { _id: '__proto__:x' },
    { ...full, root: true }, { ...full, resources: { memory: 1 << 30, swap: 1 } }, { ...full, workdir: '/a/./b' },
    { ...full, mounts: [{ volume: 'pg', target: '/a/..' }] }, { ...full, init: [] }, { ...full, command: ['/bin/true'] },
    { ...full, _id: 'system:-a', name: '-a' }, { ...full, _id: 'system:a_b', name: 'a_b' }, { ...full, env: { A: 1 } },
    { _id: 'node:nas', type: 'node', name: 'nas', hostname: 'nas.local', heartbeat: '2026-11-26T00:00:00.000Z', capabilities: { overlay: true }, versions: { node: '20' } },
  ];
  const sm = inSpiderMonkey(ddoc, docs.map((doc) => ({ fn: 'errors_of', args: [doc] })));
  const fn = new DdocFunction(ddoc, src);
  docs.forEach((doc, i) => t.deepEqual(sm[i], inNode(fn, [doc]), JSON.stringify(doc)));
  t.deepEqual(sm[0], { ok: true, value: [] });
  t.deepEqual(sm[9], { ok: true, value: [{ path: '/root', message: 'unknown field' }] });
});

test('every view map emits the same rows as in Node', (t) => {
  const docs: object[] = [
    system, full, status, template, { _id: 'volume:data', type: 'volume', name: 'data' },
    { _id: 'system:web', _conflicts: ['2-b', '2-c'] }, { _id: 'system:web', _conflicts: [] }, { _id: '_design/anybios', views: {} },
    { ...status, observedRev: undefined }, { _id: 'template:x', type: 'template', name: 'x', source: 'host', description: 'd' },
  ];
  for (const kind of ['catalog', 'node'] as const) {
    const ddoc = ddocs[kind];
    const names = Object.keys(ddoc.views);
    t.true(names.length > 0, kind);
    const calls = names.flatMap((name) => docs.map((doc) => ({ fn: `views.${name}.map`, doc })));
    const sm = inSpiderMonkey(ddoc, calls);
    calls.forEach((call, i) => t.deepEqual(sm[i], mapInNode(ddoc.views[call.fn.split('.')[1]].map, call.doc), `${kind} ${call.fn} ${JSON.stringify(call.doc)}`));
  }
  // What the rows are, in SpiderMonkey.
  const one = (kind: DbKind, view: string, doc: object) => inSpiderMonkey(ddocs[kind], [{ fn: `views.${view}.map`, doc }])[0];
  t.deepEqual(one('node', 'systems_by_template', system), [['host', { kind: 'app', state: 'running' }]]);
  t.deepEqual(one('node', 'status_by_phase', status), [[['running', 'web'], { observedRev: '1-abc', updated: status.updated }]]);
  t.deepEqual(one('node', 'by_type', system), [[['system', 'web'], null]]);
  t.deepEqual(one('node', 'conflicts', { _id: 'system:web', _conflicts: ['2-b'] }), [['system:web', ['2-b']]]);
  t.deepEqual(one('catalog', 'templates', template), [['host', { source: 'host', description: null }]]);
});

test('the harness resolves require the way CouchDB does', (t) => {
  // Fixture for the loader itself: relative ids, module.exports, one evaluation per module, bad ids.
  const ddoc = {
    _id: '_design/t',
    lib: {
      a: "exports.b = require('./b'); exports.deep = require('./x/y').up;",
      b: "module.exports = { n: 42 };",
      x: { y: "exports.up = require('../b').n;" },
      count: 'exports.loaded = true;',
    },
    f: "function () { var a = require('lib/a'); return [a.b.n, a.deep, require('lib/a') === a, this._id]; }",
    missing: "function () { require('lib/nope'); }",
    notString: "function () { require('lib/x'); }",
    forbids: "function () { throw { forbidden: 'no ✓' }; }",
    unauthorized: "function () { throw { unauthorized: 'who?' }; }",
  };
  const [f, missing, notString, forbids, unauthorized] = inSpiderMonkey(ddoc, ['f', 'missing', 'notString', 'forbids', 'unauthorized'].map((fn) => ({ fn, args: [] })));
  t.deepEqual(f, { ok: true, value: [42, 42, true, '_design/t'] });
  t.regex((missing as { error: string }).error, /invalid_require_path: Object has no property "nope"/);
  t.regex((notString as { error: string }).error, /Must require a JavaScript string/);
  t.deepEqual(forbids, { forbidden: 'no ✓' });
  t.deepEqual(unauthorized, { unauthorized: 'who?' });
});
