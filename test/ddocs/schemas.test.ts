// The schemas as the API and agent use them (docErrors), and the TypeScript shapes against them.
import test from 'ava';
import { docErrors } from '../../ddocs/validate.ts';
import type { NodeDoc, StatusDoc, SystemDoc, TemplateDoc, VolumeDoc } from '../../ddocs/schemas/index.ts';
import { demoSystems, HOST_TEMPLATE } from '../../server/seed.ts';

const full: SystemDoc = {
  _id: 'system:db', type: 'system', name: 'db', kind: 'os', template: 'debian', state: 'stopped', init: ['/sbin/init'],
  env: { PGDATA: '/var/lib/pg' }, workdir: '/', hostname: 'db', mounts: [{ volume: 'pg', target: '/var/lib/pg', readOnly: false }],
  network: 'host', restart: 'on-failure', resources: { memory: 512 * 1024 * 1024, pids: 512, cpuWeight: 100 }, labels: { tier: 'data' },
};

test('fully populated documents of every type are valid', (t) => {
  const docs: (SystemDoc | TemplateDoc | VolumeDoc | NodeDoc | StatusDoc)[] = [
    full,
    { _id: 'template:debian', type: 'template', name: 'debian', source: 'dir', path: '/srv/templates/debian', labels: { os: 'debian' } },
    { _id: 'volume:pg', type: 'volume', name: 'pg', description: 'postgres data' },
    { _id: 'node:nas', type: 'node', name: 'nas', hostname: 'nas.local', heartbeat: '2026-11-26T00:00:00.000Z', capabilities: { overlay: true }, versions: { node: '20' } },
    { _id: 'status:db', type: 'status', name: 'db', phase: 'failed', observedRev: '3-x', pid: null, exitCode: 1, restarts: 2, code: 'START_FAILED', message: 'x', diskUsed: 4096, logTail: '', updated: '2026-11-26T00:00:00.000Z' },
  ];
  for (const doc of docs) t.deepEqual(docErrors(doc), [], doc._id);
});

test('seeded demo documents are valid', (t) => {
  t.deepEqual(docErrors(HOST_TEMPLATE), []);
  for (const s of demoSystems()) t.deepEqual(docErrors(s), [], s._id);
});

test('names: pattern, length and the _id pairing', (t) => {
  const named = (n: string) => docErrors({ ...full, _id: `system:${n}`, name: n });
  t.deepEqual(named('a'), []);
  t.deepEqual(named('a'.repeat(63)), []);
  t.true(named('a'.repeat(64)).some((e) => e.path === '/name'));
  t.true(named('-a').length > 0);
  t.true(named('A').length > 0);
  t.true(named('a_b').length > 0);
  t.true(named('../x').length > 0);
});

test('unknown fields on specs are refused, with the field named', (t) => {
  t.deepEqual(docErrors({ ...full, root: true }), [{ path: '/root', message: 'unknown field' }]);
  t.deepEqual(docErrors({ ...full, resources: { memory: 1 << 30, swap: 1 } }), [{ path: '/resources/swap', message: 'unknown field' }]);
  t.deepEqual(docErrors({ ...full, mounts: [{ volume: 'pg', target: '/x', source: '/etc' }] }), [{ path: '/mounts/0/source', message: 'unknown field' }]);
});

test('paths, env names, limits and combinations', (t) => {
  const has = (doc: object, path: string) => docErrors(doc).some((e) => e.path === path);
  t.true(has({ ...full, workdir: 'relative' }, '/workdir'));
  t.true(has({ ...full, workdir: '/a/./b' }, '/workdir'));
  t.true(has({ ...full, mounts: [{ volume: 'pg', target: '/a/..' }] }, '/mounts/0/target'));
  t.true(has({ ...full, env: { 'BAD-NAME': 'x' } }, '/env'));
  t.true(has({ ...full, resources: { memory: 1 } }, '/resources/memory'));
  t.true(has({ ...full, resources: { cpuWeight: 0 } }, '/resources/cpuWeight'));
  t.true(has({ ...full, restart: 'sometimes' }, '/restart'));
  t.true(has({ ...full, init: [] }, '/init'));
  t.true(has({ ...full, command: ['/bin/true'] }, '/'));
  t.true(has({ _id: 'template:h', type: 'template', name: 'h', source: 'host', path: '/x' }, '/'));
  t.deepEqual(docErrors({ ...full, workdir: '/' }), []);
});

test('non-objects and unknown types are refused', (t) => {
  t.deepEqual(docErrors('x'), [{ path: '/', message: 'must be an object' }]);
  t.is(docErrors({ type: 'system' })[0].path, '/_id');
  t.is(docErrors({ _id: 'thing:x' })[0].path, '/_id');
  t.is(docErrors({ _id: 'constructor:x' })[0].path, '/_id');
  t.is(docErrors({ _id: '__proto__:x' })[0].path, '/_id');
});
