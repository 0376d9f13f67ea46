// Mango's planner (server/couch/embedded/mango-plan.ts) against CouchDB 3.5's rules
// (mango_idx_view:is_usable, mango_idx_special:is_usable, mango_cursor:create); over HTTP in find.test.ts.
import test from 'ava';
import { ALL_DOCS, type Index, type JsonIndex } from '../../../server/couch/embedded/mango-index.ts';
import { parseFind } from '../../../server/couch/embedded/mango-options.ts';
import { conjunction, normalized, plan, rangeOf } from '../../../server/couch/embedded/mango-plan.ts';

const json = (ddoc: string, fields: string[], partial: Record<string, unknown> | null = null): JsonIndex => ({
  type: 'json', ddoc: `_design/${ddoc}`, name: ddoc, fields: fields.map((field) => ({ field, dir: 'asc' })), partialFilter: partial, partialMatch: null,
});
const choose = (indexes: Index[], body: Record<string, unknown>) => plan([ALL_DOCS, ...indexes], parseFind(body));
function err(fn: () => unknown): { status: number; error: string } | null {
  try {
    fn();
  } catch (e) {
    return e as { status: number; error: string };
  }
  return null;
}

test('a JSON index needs every field required by the selector, sort fields aside', (t) => {
  const a = json('a', ['a']);
  t.is(choose([a], { selector: { a: { $gt: 1 } } }).index, a);
  t.is(choose([a], { selector: { b: 1 } }).index, ALL_DOCS);
  t.is(choose([a], { selector: { a: { $exists: false } } }).index, ALL_DOCS, '$exists: false does not require the field');
  t.is(choose([a], { selector: {}, sort: ['a'] }).index, a);
  t.is(choose([a], { selector: { $or: [{ a: 1 }, { a: 2 }] } }).index, a, 'every $or branch requires a');
  t.is(choose([a], { selector: { $or: [{ a: 1 }, { b: 2 }] } }).index, ALL_DOCS);
  t.is(choose([json('id', ['_id'])], { selector: {} }).index.name, 'id', '_id is in every document');
});

test('a sort needs an index whose fields start with it, after fields fixed by $eq; else no_usable_index', (t) => {
  const ab = json('ab', ['a', 'b']);
  t.is(choose([ab], { selector: { a: 1, b: { $gt: 0 } }, sort: ['b'] }).index, ab);
  t.is(err(() => choose([ab], { selector: { a: { $gt: 1 }, b: { $gt: 0 } }, sort: ['b'] }))?.error, 'no_usable_index');
  t.is(choose([ab], { selector: { a: 1 }, sort: ['a', 'b'] }).index, ab);
  t.is(err(() => choose([ab], { selector: { a: 1 }, sort: ['b', 'a'] }))?.error, 'no_usable_index');
  t.is(choose([], { selector: { _id: { $gt: 'x' } }, sort: ['_id'] }).index, ALL_DOCS);
  t.is(err(() => choose([], { selector: { x: 1 }, sort: ['_id'] }))?.status, 400);
});

test('the best of several: most narrowed leading fields, then fewest fields, then name; partial indexes only by name', (t) => {
  const a = json('a', ['a']);
  const ab = json('ab', ['a', 'b']);
  const ba = json('ba', ['b', 'a']);
  t.is(choose([ab, a], { selector: { a: 1, b: 2 } }).index, ab, 'ab narrows two fields');
  t.is(choose([ba, ab], { selector: { a: 1, b: 2 } }).index, ab, 'same narrowing and width: by name');
  t.is(choose([ab, a], { selector: { a: 1 } }).index, a);
  const p = json('p', ['a'], { c: true });
  t.is(choose([p], { selector: { a: 1 } }).index, ALL_DOCS);
  t.is(choose([p], { selector: { a: 1 }, use_index: 'p' }).index, p);
  const fallback = choose([a], { selector: { b: 1 }, use_index: ['a', 'a'] });
  t.deepEqual(fallback.warnings, ['_design/a, a was not used because it is not a valid index for this query.', 'No matching index found, create an index to optimize query time.']);
  t.is(err(() => choose([a], { selector: { b: 1 }, use_index: 'a', allow_fallback: false }))?.error, 'invalid_index');
});

test('ranges from $eq, $gt(e), $lt(e), $beginsWith; contradictory bounds are empty', (t) => {
  const items = conjunction({ a: { $gt: 1, $lte: 5 }, b: 3, s: { $beginsWith: 'ab' }, e: { $gt: 5, $lt: 2 } });
  t.like(rangeOf(items, 'a'), { low: 1, lowInclusive: false, high: 5, highInclusive: true, empty: false });
  t.like(rangeOf(items, 'b'), { low: 3, high: 3, empty: false });
  t.like(rangeOf(items, 's'), { low: 'ab', high: 'ab\uffff' });
  t.true(rangeOf(items, 'e')!.empty);
  t.is(rangeOf(items, 'zz'), null);
});

test('the normal form _explain shows', (t) => {
  t.deepEqual(normalized({ year: { $gt: 2010 } }), { year: { $gt: 2010 } });
  t.deepEqual(normalized({ a: { b: 1 }, c: { $in: [1] } }), { $and: [{ 'a.b': { $eq: 1 } }, { c: { $in: [1] } }] });
  t.deepEqual(normalized({ $and: [{ a: 1 }, { b: 2 }], c: { $gt: 1 } }), { $and: [{ $and: [{ a: { $eq: 1 } }, { b: { $eq: 2 } }] }, { c: { $gt: 1 } }] });
});
