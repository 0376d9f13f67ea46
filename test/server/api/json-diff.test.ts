// The small JSON diff behind the conflict and history views: paths, kinds, arrays, escaping, ignore.
import test from 'ava';
import { COUCH_META, escapePointer, jsonDiff, jsonEqual } from '../../../server/api/json-diff.ts';

test('equal documents have no differences, whatever the key order', (t) => {
  t.deepEqual(jsonDiff({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 }), []);
  t.true(jsonEqual({ a: 1, b: [null, { x: 'y' }] }, { b: [null, { x: 'y' }], a: 1 }));
  t.false(jsonEqual({ a: 1 }, { a: 1, b: 2 }));
  t.false(jsonEqual([1], { 0: 1 }));
  t.false(jsonEqual(null, {}));
});

test('changed, added and removed members, nested', (t) => {
  const a = { name: 'web', state: 'running', env: { A: '1', B: '2' } };
  const b = { name: 'web', state: 'stopped', env: { A: '1', C: '3' }, labels: { tier: 'x' } };
  t.deepEqual(jsonDiff(a, b), [
    { path: '/state', kind: 'changed', a: 'running', b: 'stopped' },
    { path: '/env/B', kind: 'removed', a: '2' },
    { path: '/env/C', kind: 'added', b: '3' },
    { path: '/labels', kind: 'added', b: { tier: 'x' } },
  ]);
});

test('arrays compare index by index', (t) => {
  t.deepEqual(jsonDiff({ command: ['/bin/echo', 'a', 'b'] }, { command: ['/bin/echo', 'a', 'c', 'd'] }), [
    { path: '/command/2', kind: 'changed', a: 'b', b: 'c' },
    { path: '/command/3', kind: 'added', b: 'd' },
  ]);
  t.deepEqual(jsonDiff([1, 2, 3], [1]), [
    { path: '/1', kind: 'removed', a: 2 },
    { path: '/2', kind: 'removed', a: 3 },
  ]);
  t.deepEqual(jsonDiff([{ x: 1 }], [{ x: 2 }]), [{ path: '/0/x', kind: 'changed', a: 1, b: 2 }]);
});

test('a change of type is one change at that place', (t) => {
  t.deepEqual(jsonDiff({ v: [1] }, { v: { 0: 1 } }), [{ path: '/v', kind: 'changed', a: [1], b: { 0: 1 } }]);
  t.deepEqual(jsonDiff({ v: null }, { v: 0 }), [{ path: '/v', kind: 'changed', a: null, b: 0 }]);
  t.deepEqual(jsonDiff(1, 'x'), [{ path: '', kind: 'changed', a: 1, b: 'x' }]);
});

test('keys are escaped as JSON Pointer', (t) => {
  t.is(escapePointer('a/b~c'), 'a~1b~0c');
  t.deepEqual(jsonDiff({ labels: { 'k/8s~x': '1' } }, { labels: { 'k/8s~x': '2' } }), [{ path: '/labels/k~18s~0x', kind: 'changed', a: '1', b: '2' }]);
});

test('ignored members are left out at the top level only', (t) => {
  const a = { _rev: '1-a', _conflicts: ['2-b'], x: { _rev: 'inner' } };
  const b = { _rev: '2-c', x: { _rev: 'other' } };
  t.deepEqual(jsonDiff(a, b, { ignore: COUCH_META }), [{ path: '/x/_rev', kind: 'changed', a: 'inner', b: 'other' }]);
});

test('the result is plain JSON: absent sides disappear', (t) => {
  t.is(JSON.stringify(jsonDiff({}, { a: 1 })), '[{"path":"/a","kind":"added","b":1}]');
});
