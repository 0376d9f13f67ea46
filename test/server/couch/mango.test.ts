// The Mango selector evaluator (server/couch/embedded/mango.ts): CouchDB's semantics, operator by
// operator, and $regex in linear time. `_changes?filter=_selector` over HTTP is tested in
// protocol.test.ts, hostile.test.ts and security.test.ts.
import test from 'ava';
import { collate, compileSelector } from '../../../server/couch/embedded/mango.ts';

const doc = {
  _id: 'd1', name: 'alpha', n: 7, f: 1.5, ok: true, none: null, tags: ['x', 'y'], nums: [1, 5, 9],
  nested: { a: { b: 'deep' }, 'dotted.key': 3 }, people: [{ name: 'ann', age: 30 }, { name: 'bob', age: 40 }], map: { k1: 1, zz: 2 },
};
const m = (selector: unknown) => compileSelector(selector)(doc);

test('field equality, nested objects and dotted paths', (t) => {
  t.true(m({}));
  t.true(m({ name: 'alpha' }));
  t.false(m({ name: 'beta' }));
  t.true(m({ nested: { a: { b: 'deep' } } }));
  t.true(m({ 'nested.a.b': 'deep' }));
  t.true(m({ 'nested.dotted\\.key': 3 }));
  t.true(m({ tags: ['x', 'y'] }));
  t.true(m({ 'people.1.name': 'bob' }));
  t.false(m({ missing: null }));
  t.true(m({ none: null }));
});

test('comparison operators use CouchDB collation; missing fields never match', (t) => {
  t.true(m({ n: { $gt: 5, $lt: 8 } }));
  t.true(m({ n: { $gte: 7, $lte: 7 } }));
  t.true(m({ name: { $gt: 100 } }), 'strings sort after numbers');
  t.true(m({ ok: { $lt: 0 } }), 'booleans sort before numbers');
  t.true(m({ n: { $ne: 8 } }));
  t.false(m({ missing: { $ne: 8 } }));
  t.false(m({ missing: { $lt: 8 } }));
  t.true(m({ missing: { $exists: false } }));
  t.true(m({ none: { $exists: true } }));
  t.is(collate([1, 2], [1, 2, 0]), -1);
  t.is(collate({ a: 1 }, { a: 1 }), 0);
  t.true(collate(null, false) < 0 && collate(true, 0) < 0 && collate('z', []) < 0 && collate([], {}) < 0);
});

test('$in, $nin, $all, $size, $mod, $type, $beginsWith', (t) => {
  t.true(m({ n: { $in: [1, 7] } }));
  t.true(m({ tags: { $in: ['y', 'q'] } }), 'an array field matches by element');
  t.false(m({ tags: { $nin: ['y'] } }));
  t.true(m({ n: { $nin: [1, 2] } }));
  t.true(m({ tags: { $all: ['y', 'x'] } }));
  t.false(m({ tags: { $all: ['y', 'z'] } }));
  t.true(m({ tags: { $size: 2 } }));
  t.true(m({ n: { $mod: [4, 3] } }));
  t.false(m({ f: { $mod: [2, 1] } }), '$mod needs an integer field');
  t.true(m({ n: { $type: 'number' }, tags: { $type: 'array' }, none: { $type: 'null' }, nested: { $type: 'object' } }));
  t.true(m({ name: { $beginsWith: 'al' } }));
});

test('$and, $or, $nor, $not, $elemMatch, $allMatch, $keyMapMatch', (t) => {
  t.true(m({ $and: [{ n: 7 }, { name: 'alpha' }] }));
  t.true(m({ $or: [{ n: 1 }, { name: 'alpha' }] }));
  t.false(m({ $nor: [{ n: 1 }, { name: 'alpha' }] }));
  t.true(m({ $not: { n: 1 } }));
  t.true(m({ n: { $or: [{ $lt: 0 }, { $gt: 5 }] } }));
  t.true(m({ people: { $elemMatch: { name: 'bob', age: { $gt: 35 } } } }));
  t.false(m({ people: { $elemMatch: { name: 'ann', age: { $gt: 35 } } } }));
  t.true(m({ nums: { $elemMatch: { $gt: 8 } } }));
  t.true(m({ nums: { $allMatch: { $gt: 0 } } }));
  t.false(m({ nums: { $allMatch: { $gt: 1 } } }));
  t.true(m({ map: { $keyMapMatch: { $eq: 'zz' } } }));
});

test('$regex matches anywhere in string fields, in linear time', (t) => {
  t.true(m({ name: { $regex: 'lph' } }));
  t.true(m({ name: { $regex: '^a.*a$' } }));
  t.false(m({ n: { $regex: '7' } }), 'only strings');
  const evil = compileSelector({ s: { $regex: '^(a+)+$' } });
  const started = Date.now();
  t.false(evil({ s: 'a'.repeat(100_000) + '!' }));
  t.true(evil({ s: 'a'.repeat(100_000) }));
  t.true(Date.now() - started < 2000, `${Date.now() - started} ms`);
});

test('malformed selectors are errors that say where and why', (t) => {
  const reason = (selector: unknown) => (t.throws(() => compileSelector(selector)) as unknown as { reason: string }).reason;
  t.is(reason([1]), 'selector must be a JSON object');
  t.is(reason({ n: { $in: 5 } }), 'selector at n: $in needs an array');
  t.is(reason({ $and: 5 }), 'selector at (document): $and needs a non-empty array of selectors');
  t.is(reason({ a: { $elemMatch: { b: { $size: -1 } } } }), 'selector at a.$elemMatch.b: $size needs a non-negative integer');
  t.regex(reason({ s: { $regex: '(' } }), /^selector at s: \$regex "\(" is not a valid RE2 pattern/);
  t.regex(reason({ s: { $regex: 'a'.repeat(9000) } }), /longer than 8192/);
});

/** A string on which RE2's lazy DFA gives up for `a[ab]{500}c`: matching falls back to its NFA. */
function abString(n: number): string {
  let s = '';
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    s += (x >> 16) & 1 ? 'a' : 'b';
  }
  return s + ' c';
}

test('a $regex match that would hold the event loop stops at its time budget with an error naming the field', (t) => {
  const costly = compileSelector({ message: { $regex: 'a[ab]{500}c' } });
  const started = Date.now();
  const err = t.throws(() => costly({ message: abString(1_000_000) })) as unknown as { status: number; reason: string };
  const took = Date.now() - started;
  t.is(err.status, 400);
  t.regex(err.reason, /^selector at message: \$regex "a\[ab\]\{500\}c" took longer than 250 ms on a string of 1000002 characters/);
  t.true(took < 1000, `${took} ms`);
  // The same pattern on short strings answers directly, and correctly.
  t.true(costly({ message: 'a' + 'b'.repeat(500) + 'c' }));
  t.false(costly({ message: 'a' + 'b'.repeat(499) + 'c' }));
});

test('a $regex program too large is refused when the selector is read', (t) => {
  const err = t.throws(() => compileSelector({ m: { $regex: 'a{1000}'.repeat(30) } })) as unknown as { reason: string };
  t.regex(err.reason, /^selector at m: \$regex .* is too complex \(RE2 program size \d+, at most 20000\)$/);
});

test('$in and $nin over a list of 200,000 values: a set lookup for scalars, collation for arrays and objects', (t) => {
  const values: unknown[] = Array.from({ length: 200_000 }, (_, i) => `v${i}`);
  values.push(7, null, [1, 5, 9], { a: 1 });
  const inList = compileSelector({ n: { $in: values } });
  const started = Date.now();
  for (let i = 0; i < 1000; i++) inList(doc);
  t.true(Date.now() - started < 500, `${Date.now() - started} ms for 1000 documents`);
  t.true(inList(doc));
  t.true(compileSelector({ none: { $in: values } })(doc));
  t.true(compileSelector({ nested: { $in: [{ a: { b: 'deep' }, 'dotted.key': 3 }] } })(doc), 'objects by collation');
  t.true(compileSelector({ tags: { $in: ['y'] } })(doc), 'array fields by element');
  t.false(compileSelector({ n: { $in: ['7'] } })(doc), 'no type coercion');
  t.false(compileSelector({ n: { $nin: values } })(doc));
});

test('a selector of more than 10,000 conditions or 16 $regexes is refused when read', (t) => {
  const wide = { $or: Array.from({ length: 10_001 }, (_, i) => ({ [`f${i}`]: i })) };
  t.regex((t.throws(() => compileSelector(wide)) as unknown as { reason: string }).reason, /10002 conditions; at most 10000/);
  t.notThrows(() => compileSelector({ $or: Array.from({ length: 9_000 }, (_, i) => ({ [`f${i}`]: i })) }));
  const regexes = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`r${i}`, { $regex: 'x' }]));
  t.regex((t.throws(() => compileSelector(regexes)) as unknown as { reason: string }).reason, /17 \$regex conditions; at most 16/);
  t.notThrows(() => compileSelector({ n: { $in: Array.from({ length: 50_000 }, (_, i) => ({ i })) } }), 'list arguments count once');
});
