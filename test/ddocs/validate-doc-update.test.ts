// Each design-document function loaded in node:vm (the way CouchDB's engine sees it) and called with
// valid and invalid documents and with every kind of writer.
import test from 'ava';
import vm from 'node:vm';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDesignDoc, compileSchemasModule } from '../../ddocs/build.ts';
import { DdocFunction, DdocFunctionError } from '../../ddocs/sandbox.ts';

const ddocsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ddocs');
const catalog = buildDesignDoc('catalog');
const node = buildDesignDoc('node');
const validateCatalog = new DdocFunction(catalog, catalog.validate_doc_update);
const validateNode = new DdocFunction(node, node.validate_doc_update);

const admin = { db: 'anybios-node-a', name: 'admin', roles: ['_admin'] };
const operator = { db: 'anybios-node-a', name: 'olga', roles: ['operator'] };
const nodeA = { db: 'anybios-node-a', name: 'node-a', roles: ['node'] };
const nodeB = { db: 'anybios-node-a', name: 'node-b', roles: ['node'] };
const anonymous = { db: 'anybios-node-a', name: null, roles: [] };
const sec = { admins: { names: [], roles: [] }, members: { names: ['node-a'], roles: ['operator'] } };

const system = { _id: 'system:web', type: 'system', name: 'web', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] };
const status = { _id: 'status:web', type: 'status', name: 'web', phase: 'running', observedRev: '1-abc', pid: 42, updated: '2026-11-26T01:00:00.000Z' };
const template = { _id: 'template:host', type: 'template', name: 'host', source: 'host' };

function refusal(fn: DdocFunction, doc: object, user: object, db = 'anybios-node-a'): string | null {
  try {
    fn.run(doc, null, { ...user, db }, sec);
    return null;
  } catch (err) {
    if (!(err instanceof DdocFunctionError)) throw err;
    return err.message;
  }
}

test('the source file itself is one function that CouchDB can evaluate', (t) => {
  for (const kind of ['catalog', 'node']) {
    const src = readFileSync(join(ddocsDir, kind, 'validate_doc_update.js'), 'utf8');
    const fn = vm.runInNewContext(`(${src})`);
    t.is(typeof fn, 'function');
    t.is(fn.length, 4);
  }
});

test('compiled schemas are self-contained ES5 (no require, no let/const/arrow)', (t) => {
  const code = compileSchemasModule();
  t.false(/\brequire\s*\(/.test(code));
  t.false(/\b(let|const)\s/.test(code));
  t.false(/=>/.test(code));
  // Parses as ES5 when evaluated as a CommonJS module body.
  const module = { exports: {} as Record<string, unknown> };
  new Function('module', 'exports', code)(module, module.exports);
  t.deepEqual(Object.keys(module.exports).sort(), ['node', 'status', 'system', 'template', 'volume']);
});

test('the build is deterministic: same sources, same hash', (t) => {
  t.is(buildDesignDoc('node').anybios.hash, node.anybios.hash);
  t.not(catalog.anybios.hash, node.anybios.hash);
});

test('node db: valid specs pass for admin, operator and the node itself', (t) => {
  for (const user of [admin, operator, nodeA]) t.is(refusal(validateNode, system, user), null, user.name!);
  t.is(refusal(validateNode, { _id: 'volume:data', type: 'volume', name: 'data' }, nodeA), null);
});

test('node db: status and node docs only by the node user or an admin', (t) => {
  t.is(refusal(validateNode, status, nodeA), null);
  t.is(refusal(validateNode, status, admin), null);
  t.regex(refusal(validateNode, status, operator)!, /only by the node's agent \(node-a\)/);
  t.regex(refusal(validateNode, { _id: 'node:a', type: 'node', name: 'a' }, operator)!, /node's agent/);
  t.is(refusal(validateNode, { _id: 'node:a', type: 'node', name: 'a', heartbeat: '2026-11-26T01:00:00Z' }, nodeA), null);
  t.regex(refusal(validateNode, { _id: 'node:b', type: 'node', name: 'b' }, nodeA)!, /holds only node:a/);
});

test('node db: another node, anonymous, and design docs are refused', (t) => {
  t.regex(refusal(validateNode, system, nodeB)!, /only admins, operators and node-a write anybios-node-a/);
  t.regex(refusal(validateNode, status, nodeB)!, /node-a/);
  t.regex(refusal(validateNode, system, anonymous)!, /log in/);
  t.regex(refusal(validateNode, { _id: '_design/x' }, nodeA)!, /only admins write design documents/);
  t.is(refusal(validateNode, { _id: '_design/x' }, admin), null);
});

test('node db: deletions are authorized but not schema-checked', (t) => {
  t.is(refusal(validateNode, { _id: 'system:web', _rev: '1-a', _deleted: true }, nodeA), null);
  t.regex(refusal(validateNode, { _id: 'status:web', _rev: '1-a', _deleted: true }, operator)!, /node's agent/);
});

test('errors name the field and the rule', (t) => {
  t.regex(refusal(validateNode, { ...system, kind: 'vm' }, nodeA)!, /\/kind must be one of: os, app/);
  t.regex(refusal(validateNode, { ...system, extra: 1 }, nodeA)!, /\/extra unknown field/);
  t.regex(refusal(validateNode, { ...system, state: undefined }, nodeA)!, /\/state is required/);
  t.regex(refusal(validateNode, { ...system, name: 'other' }, nodeA)!, /\/name must equal the name part of _id/);
  t.regex(refusal(validateNode, { ...system, _id: 'system:Bad', name: 'Bad' }, nodeA)!, /\/_id/);
  t.regex(refusal(validateNode, { ...system, mounts: [{ volume: 'data', target: '/srv/../etc' }] }, nodeA)!, /\/mounts\/0\/target must be an absolute path without \. or \.\. parts/);
  t.regex(refusal(validateNode, { ...system, command: undefined }, nodeA)!, /\/command is required/);
  t.regex(refusal(validateNode, { ...system, kind: 'os', init: ['/sbin/init'] }, nodeA)!, /field combination/);
  t.regex(refusal(validateNode, { _id: 'widget:x', type: 'widget', name: 'x' }, admin)!, /_id/);
  t.regex(refusal(validateNode, template, admin)!, /a node database holds system:/);
  t.regex(refusal(validateNode, { ...status, phase: 'exploded' }, nodeA)!, /\/phase must be one of/);
});

test('catalog: admins and operators write templates; nodes and anonymous do not', (t) => {
  t.is(refusal(validateCatalog, template, admin, 'anybios'), null);
  t.is(refusal(validateCatalog, template, operator, 'anybios'), null);
  t.regex(refusal(validateCatalog, template, nodeA, 'anybios')!, /only admins and operators write the catalog/);
  t.regex(refusal(validateCatalog, template, anonymous, 'anybios')!, /log in/);
  t.regex(refusal(validateCatalog, system, admin, 'anybios')!, /the catalog holds template/);
  t.regex(refusal(validateCatalog, { ...template, source: 'dir' }, admin, 'anybios')!, /\/path is required/);
  t.regex(refusal(validateCatalog, { ...template, source: 'tar', sha256: 'xyz' }, admin, 'anybios')!, /\/sha256 must be a sha256/);
  t.is(refusal(validateCatalog, { _id: 'template:tiny', type: 'template', name: 'tiny', source: 'tar', sha256: 'a'.repeat(64) }, admin, 'anybios'), null);
});

test('validate never lets a thrown non-object through as success', (t) => {
  t.truthy(refusal(validateNode, null as unknown as object, admin));
});

function runMap(src: string, doc: object): unknown[][] {
  const emitted: unknown[][] = [];
  const fn = vm.runInNewContext(`(${src})`, { emit: (k: unknown, v: unknown) => emitted.push([k, v]) });
  fn(doc);
  return emitted;
}

test('views emit what their names say', (t) => {
  t.deepEqual(runMap(node.views.systems_by_template.map, system), [['host', { kind: 'app', state: 'running' }]]);
  t.deepEqual(runMap(node.views.status_by_phase.map, status), [[['running', 'web'], { observedRev: '1-abc', updated: status.updated }]]);
  t.deepEqual(runMap(node.views.by_type.map, system), [[['system', 'web'], null]]);
  t.deepEqual(runMap(node.views.conflicts.map, { _id: 'system:web', _conflicts: ['2-b'] }), [['system:web', ['2-b']]]);
  t.deepEqual(runMap(node.views.conflicts.map, system), []);
  t.deepEqual(runMap(catalog.views.templates.map, template), [['host', { source: 'host', description: null }]]);
  t.deepEqual(runMap(node.views.status_by_phase.map, system), []);
});

test('node db: only admins and operators may make a system privileged (also over replication)', (t) => {
  const priv = { ...system, privileged: true };
  t.is(refusal(validateNode, priv, admin), null);
  t.is(refusal(validateNode, priv, operator), null);
  t.regex(refusal(validateNode, priv, nodeA)!, /\/privileged: only admins and operators may make a system privileged/);
  // The node may still write the field as false, and delete a privileged system.
  t.is(refusal(validateNode, { ...system, privileged: false }, nodeA), null);
  t.is(refusal(validateNode, { _id: 'system:web', _rev: '2-a', _deleted: true }, nodeA), null);
  t.regex(refusal(validateNode, { ...system, privileged: 'yes' }, admin)!, /\/privileged must be boolean/);
});

test('a deletion cannot carry attachments past the schema (only templates have them)', (t) => {
  const att = { 'x.html': { content_type: 'text/html', data: 'PGgxPng8L2gxPg==' } };
  t.regex(refusal(validateNode, { _id: 'system:web', _rev: '1-a', _deleted: true, _attachments: att }, nodeA)!, /\/_attachments not allowed/);
  t.is(refusal(validateNode, { _id: 'system:web', _rev: '1-a', _deleted: true }, nodeA), null);
});
