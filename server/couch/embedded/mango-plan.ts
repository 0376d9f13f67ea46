// Mango's query planner, after CouchDB 3.5's (mango_idx_view.erl, mango_idx_special.erl,
// mango_cursor.erl): which index a `_find` uses, and the error when none can serve its sort. The rules:
// - a JSON index is usable when the selector requires every one of its fields to exist (a document
//   without one of them is not in the index), sort fields and `_id`/`_rev` aside, and its fields can
//   give the sort order (the sort is a prefix of its fields, after leading fields fixed by `$eq`);
// - indexes with a partial filter are used only when `use_index` names them;
// - `_all_docs` serves a query without sort, or sorted by `_id` when the selector constrains `_id`;
// - among usable JSON indexes, the one whose leading fields the selector narrows most, then the one
//   with fewest fields, then by name; JSON indexes are preferred to `_all_docs`;
// - no usable index for a sort: 400 `no_usable_index`; `use_index` naming an unusable index: a
//   warning and the best other index, or 400 `invalid_index` when `allow_fallback` is false.
import { isObject } from '../http.ts';
import { collate } from './mango.ts';
import type { Index } from './mango-index.ts';
import { mangoError, type FindOptions } from './mango-options.ts';

/** One condition of the selector's top-level conjunction, with dotted field names (CouchDB's normal form). */
type Item =
  | { kind: 'field'; field: string; op: string; arg: unknown }
  | { kind: 'or'; branches: Item[][] }
  | { kind: 'other'; raw: Record<string, unknown> };

const OPS_COMBINING = new Set(['$and', '$or']);

/** Flattens a selector into its top-level conjunction (nested `$and`s merged, nested objects made dotted fields). */
export function conjunction(sel: Record<string, unknown>, prefix = ''): Item[] {
  const items: Item[] = [];
  for (const [key, arg] of Object.entries(sel)) {
    if (key.startsWith('$')) {
      if (key === '$and' && Array.isArray(arg)) {
        for (const s of arg) if (isObject(s)) items.push(...conjunction(s, prefix));
      } else if (key === '$or' && Array.isArray(arg)) {
        items.push({ kind: 'or', branches: arg.map((s) => (isObject(s) ? conjunction(s, prefix) : [])) });
      } else if (prefix) {
        items.push({ kind: 'field', field: prefix, op: key, arg });
      } else items.push({ kind: 'other', raw: { [key]: arg } });
      continue;
    }
    const field = prefix ? `${prefix}.${key}` : key;
    if (isObject(arg) && Object.keys(arg).length) {
      const ops = Object.keys(arg).filter((k) => k.startsWith('$') && !OPS_COMBINING.has(k));
      if (ops.length === Object.keys(arg).length) {
        for (const op of ops) items.push({ kind: 'field', field, op, arg: arg[op] });
        continue;
      }
      items.push(...conjunction(arg, field));
    } else items.push({ kind: 'field', field, op: '$eq', arg });
  }
  return items;
}

/** Fields of `required` the conjunction does not make required (mango_selector:has_required_fields). */
function missingRequired(items: Item[], required: string[]): string[] {
  let rest = required;
  for (const it of items) {
    if (!rest.length) break;
    if (it.kind === 'field' && !(it.op === '$exists' && it.arg === false)) rest = rest.filter((f) => f !== it.field);
    else if (it.kind === 'or') rest = [...new Set(it.branches.flatMap((b) => missingRequired(b, rest)))];
  }
  return rest;
}

const isConstant = (items: Item[], field: string) => items.some((it) => it.kind === 'field' && it.field === field && it.op === '$eq');

const INDEXABLE = new Set(['$lt', '$lte', '$eq', '$gt', '$gte', '$beginsWith', '$exists']);
export const indexableFields = (items: Item[]) => [...new Set(items.flatMap((it) => (it.kind === 'field' && INDEXABLE.has(it.op) ? [it.field] : [])))].sort();

/** A key range for one field: bounds undefined when open. */
export interface Range { low?: unknown; lowInclusive: boolean; high?: unknown; highInclusive: boolean; empty: boolean }

/** The range the conjunction allows one field (mango_idx_view:range), from `$eq`, `$gt(e)`, `$lt(e)` and `$beginsWith`. */
export function rangeOf(items: Item[], field: string): Range | null {
  const r: Range = { lowInclusive: false, highInclusive: false, empty: false };
  let any = false;
  const raise = (v: unknown, inclusive: boolean) => {
    const c = r.low === undefined ? 1 : collate(v, r.low);
    if (c > 0 || (c === 0 && !inclusive)) [r.low, r.lowInclusive] = [v, inclusive];
  };
  const lower = (v: unknown, inclusive: boolean) => {
    const c = r.high === undefined ? -1 : collate(v, r.high);
    if (c < 0 || (c === 0 && !inclusive)) [r.high, r.highInclusive] = [v, inclusive];
  };
  for (const it of items) {
    if (it.kind !== 'field' || it.field !== field) continue;
    switch (it.op) {
      case '$eq': raise(it.arg, true); lower(it.arg, true); break;
      case '$gt': raise(it.arg, false); break;
      case '$gte': raise(it.arg, true); break;
      case '$lt': lower(it.arg, false); break;
      case '$lte': lower(it.arg, true); break;
      case '$beginsWith':
        if (typeof it.arg !== 'string') continue;
        raise(it.arg, true);
        lower(it.arg + '\uffff', true);
        break;
      default: continue;
    }
    any = true;
  }
  if (!any) return null;
  if (r.low !== undefined && r.high !== undefined) {
    const c = collate(r.low, r.high);
    r.empty = c > 0 || (c === 0 && !(r.lowInclusive && r.highInclusive));
  }
  return r;
}

export const inRange = (v: unknown, r: Range) => {
  if (r.empty) return false;
  if (r.low !== undefined) {
    const c = collate(v, r.low);
    if (c < 0 || (c === 0 && !r.lowInclusive)) return false;
  }
  if (r.high !== undefined) {
    const c = collate(v, r.high);
    if (c > 0 || (c === 0 && !r.highInclusive)) return false;
  }
  return true;
};

export type Reason = 'field_mismatch' | 'sort_order_mismatch' | 'is_partial' | 'excluded_by_user' | 'unfavored_type' | 'less_overlap' | 'too_many_fields' | 'alphabetically_comes_after';

function usability(idx: Index, items: Item[], sortFields: string[]): Reason[] {
  const cols = idx.fields.map((f) => f.field);
  const reasons: Reason[] = [];
  if (idx.type === 'special') {
    if (!sortFields.length) return [];
    if (!indexableFields(items).includes('_id')) reasons.push('field_mismatch');
    if (!sortFields.every((f, i) => cols[i] === f)) reasons.push('sort_order_mismatch');
    return reasons;
  }
  const required = cols.filter((c) => !sortFields.includes(c) && c !== '_id' && c !== '_rev');
  if (missingRequired(items, required).length) reasons.push('field_mismatch');
  // can_use_sort: the sort fields are a prefix of the columns once leading constant columns are dropped.
  let rest = cols;
  if (sortFields.length) {
    while (rest.length && rest[0] !== sortFields[0] && isConstant(items, rest[0])) rest = rest.slice(1);
    if (!sortFields.every((f, i) => rest[i] === f)) reasons.push('sort_order_mismatch');
  }
  return reasons;
}

export interface Candidate { index: Index; usable: boolean; reasons: Reason[]; ranking: number }

export interface Plan {
  /** null only for `_explain` when no index can serve (CouchDB shows `"index": null` there). */
  index: Index | null;
  items: Item[];
  /** The ranges of the chosen index's leading fields that the selector narrows (empty: none). */
  ranges: Range[];
  /** Warnings CouchDB adds for the choice (the scan ratio one is added after the run). */
  warnings: string[];
  candidates: Candidate[];
}

export interface FoundPlan extends Plan { index: Index }

function leadingRanges(idx: Index, items: Item[]): Range[] {
  const out: Range[] = [];
  for (const col of idx.fields) {
    const r = rangeOf(items, col.field);
    if (!r) break;
    out.push(r);
    if (r.empty) break;
  }
  return out;
}

const matchesUseIndex = (idx: Index, use: string[]) => idx.ddoc === `_design/${use[0]}` && (use.length === 1 || idx.name === use[1]);

/** Chooses the index for a `_find`, as CouchDB does; throws CouchDB's errors when there is none. */
export function plan(all: Index[], o: FindOptions): FoundPlan {
  const p = explainPlan(all, o);
  if (!p.index) throw mangoError(400, 'no_usable_index', 'No index exists for this sort, try indexing by the sort fields.');
  return p as FoundPlan;
}

/**
 * The choice and the others considered (`_explain`'s `index_candidates`), ranked as
 * mango_cursor:extract_candidate_indexes ranks them; only the first reason of each is shown, as there.
 */
export function explainPlan(all: Index[], o: FindOptions): Plan {
  const items = conjunction(o.selector);
  const sortFields = o.sort.map((s) => s.field);
  const named = o.useIndex.length ? all.filter((i) => matchesUseIndex(i, o.useIndex)) : [];
  const considered = all.filter((i) => !i.partialFilter || named.includes(i));
  const verdicts = new Map<Index, Reason[]>();
  for (const i of all) verdicts.set(i, i.partialFilter && !named.includes(i) ? ['is_partial'] : usability(i, items, sortFields));
  const usable = considered.filter((i) => verdicts.get(i)!.length === 0);
  const namedUsable = usable.filter((i) => named.includes(i));
  if (usable.length && o.useIndex.length && !namedUsable.length && !o.allowFallback) {
    const what = o.useIndex.length === 1 ? `_design/${o.useIndex[0]}` : `_design/${o.useIndex[0]}, ${o.useIndex[1]}`;
    throw mangoError(400, 'invalid_index', `${what} specified by \`use_index\` could not be found or it is not suitable.`);
  }
  const pool = namedUsable.length ? namedUsable : usable;
  const json = pool.filter((i) => i.type === 'json');
  const ofType = json.length ? json : pool;
  // choose_best_index: most narrowed leading fields, then fewest fields, then by name.
  const ranked = ofType
    .map((i) => ({ i, narrowed: leadingRanges(i, items).length }))
    .sort((a, b) => b.narrowed - a.narrowed || a.i.fields.length - b.i.fields.length || (`${a.i.ddoc}\u0000${a.i.name}` < `${b.i.ddoc}\u0000${b.i.name}` ? -1 : 1));
  const chosen = ranked[0]?.i ?? null;
  const warnings: string[] = [];
  if (chosen && o.useIndex.length && !matchesUseIndex(chosen, o.useIndex)) {
    warnings.push(o.useIndex.length === 1
      ? `_design/${o.useIndex[0]} was not used because it does not contain a valid index for this query.`
      : `_design/${o.useIndex[0]}, ${o.useIndex[1]} was not used because it is not a valid index for this query.`);
  }
  if (chosen?.type === 'special') warnings.push('No matching index found, create an index to optimize query time.');
  // Tiers after the chosen type's own ranking: unfavored type, excluded by use_index, not usable, partial.
  const unfavored = pool.filter((i) => !ofType.includes(i));
  const excluded = usable.filter((i) => !pool.includes(i));
  const notUsable = all.filter((i) => verdicts.get(i)!.length && verdicts.get(i)![0] !== 'is_partial');
  const unfavoredRank = Math.max(1, chosen?.type === 'json' ? ranked.length : 0);
  const excludedRank = unfavoredRank + (unfavored.length ? 1 : 0);
  const notUsableRank = excludedRank + (excluded.length ? 1 : 0);
  const partialRank = notUsableRank + (notUsable.length ? 1 : 0);
  // Listed as CouchDB lists them: the reverse of the index order (design documents descending, `_all_docs` last).
  const candidates = all.filter((i) => i !== chosen).reverse().map((index): Candidate => {
    const reasons = verdicts.get(index)!;
    if (reasons.length) return { index, usable: false, reasons: [reasons[0]], ranking: reasons[0] === 'is_partial' ? partialRank : notUsableRank };
    if (excluded.includes(index)) return { index, usable: true, reasons: ['excluded_by_user'], ranking: excludedRank };
    if (unfavored.includes(index)) return { index, usable: true, reasons: ['unfavored_type'], ranking: unfavoredRank };
    const pos = ranked.findIndex((r) => r.i === index);
    const reason: Reason = ranked[pos].narrowed < ranked[0].narrowed ? 'less_overlap' : index.fields.length > chosen!.fields.length ? 'too_many_fields' : 'alphabetically_comes_after';
    return { index, usable: true, reasons: [reason], ranking: pos };
  });
  return { index: chosen, items, ranges: chosen ? leadingRanges(chosen, items) : [], warnings, candidates };
}

/** A JSON index covers a query when every field it returns is in the index (CouchDB then reads no document). */
export function covers(idx: Index, fields: string[] | null): boolean {
  if (idx.type !== 'json' || !fields) return false;
  const have = new Set(['_id', ...idx.fields.map((f) => f.field)]);
  return fields.every((f) => have.has(f));
}

/**
 * The fields a query needs from each document: those it returns and those its selector reads
 * (CouchDB's required_fields); null when it returns whole documents or the selector reads fields
 * we do not list (`$not`, `$nor` at the top).
 */
export function requiredFields(fields: string[] | null, items: Item[]): string[] | null {
  if (!fields) return null;
  const walk = (list: Item[]): boolean => list.every((it) => it.kind === 'field' || (it.kind === 'or' && it.branches.every(walk)));
  if (!walk(items)) return null;
  return [...new Set([...fields, ...selectorFields(items)])];
}

/** Every field the selector mentions, dotted (for `_explain`'s selector hints). */
export function selectorFields(items: Item[]): string[] {
  const out = new Set<string>();
  const walk = (list: Item[]) => {
    for (const it of list) {
      if (it.kind === 'field') out.add(it.field);
      else if (it.kind === 'or') it.branches.forEach(walk);
    }
  };
  walk(items);
  return [...out].sort();
}

/**
 * The selector in CouchDB's normal form, as `_explain` shows it: dotted field names, one operator per
 * condition, several conditions under `$and` (a field with several operators gets its own `$and`).
 */
export function normalized(sel: Record<string, unknown>): Record<string, unknown> {
  const clauses = normClauses(sel, '');
  return clauses.length === 1 ? clauses[0] : clauses.length ? { $and: clauses } : {};
}

function normClauses(sel: Record<string, unknown>, prefix: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const group = (list: Record<string, unknown>[]) => (list.length === 1 ? list[0] : { $and: list });
  for (const [key, arg] of Object.entries(sel)) {
    if (key.startsWith('$')) {
      if ((key === '$and' || key === '$or' || key === '$nor') && Array.isArray(arg)) {
        out.push({ [key]: arg.map((a) => (isObject(a) ? group(normClauses(a, prefix)) : a)) });
      } else if (key === '$not' && isObject(arg)) {
        out.push({ $not: group(normClauses(arg, prefix)) });
      } else if (prefix) out.push({ [prefix]: { [key]: arg } });
      else out.push({ [key]: arg });
      continue;
    }
    const field = prefix ? `${prefix}.${key}` : key;
    if (isObject(arg) && Object.keys(arg).length) out.push(group(normClauses(arg, field)));
    else out.push({ [field]: { $eq: arg } });
  }
  return out;
}
