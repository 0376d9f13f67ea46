// Mango's JSON indexes as CouchDB stores them: design documents with `"language": "query"`, one view per
// index, `{map: {fields: {f: "asc"}, partial_filter_selector}, reduce: "_count", options: {def}}`
// (mango_idx_view.erl). Reading them back, listing them in CouchDB's order and shape, and the design
// document edits that add or remove one. The documents replicate like any other, so an index made on
// Apache CouchDB is used here and one made here is used there.
import { createHash } from 'node:crypto';
import { isObject } from '../http.ts';
import { compileSelector, type Predicate } from './mango.ts';
import { mangoError, type Direction, type IndexRequest, type SortField } from './mango-options.ts';

export interface JsonIndex {
  type: 'json';
  ddoc: string; // `_design/...`
  name: string;
  fields: SortField[];
  partialFilter: Record<string, unknown> | null;
  /** The partial filter compiled; null when the index has none. */
  partialMatch: Predicate | null;
}

export interface SpecialIndex { type: 'special'; ddoc: null; name: '_all_docs'; fields: SortField[]; partialFilter: null; partialMatch: null }

export type Index = JsonIndex | SpecialIndex;

export const ALL_DOCS: SpecialIndex = { type: 'special', ddoc: null, name: '_all_docs', fields: [{ field: '_id', dir: 'asc' }], partialFilter: null, partialMatch: null };

const fieldsJson = (fields: SortField[]) => fields.map((f) => ({ [f.field]: f.dir }));

/** The index as `GET _index` and `_explain` show it. */
export function indexJson(idx: Index): Record<string, unknown> {
  if (idx.type === 'special') return { ddoc: null, name: '_all_docs', type: 'special', def: { fields: [{ _id: 'asc' }] } };
  return { ddoc: idx.ddoc, name: idx.name, type: 'json', partitioned: false, def: { fields: fieldsJson(idx.fields), ...(idx.partialFilter ? { partial_filter_selector: idx.partialFilter } : {}) } };
}

/** The JSON indexes of one design document; views that are not valid Mango definitions are skipped, as CouchDB does. */
export function indexesOf(ddoc: Record<string, unknown>): JsonIndex[] {
  if (ddoc.language !== 'query' || !isObject(ddoc.views) || typeof ddoc._id !== 'string') return [];
  const out: JsonIndex[] = [];
  for (const [name, view] of Object.entries(ddoc.views)) {
    if (!isObject(view) || !isObject(view.map) || !isObject(view.map.fields)) continue;
    const fields = Object.entries(view.map.fields).map(([field, dir]) => ({ field, dir: dir as Direction }));
    if (!fields.every((f) => f.dir === 'asc' || f.dir === 'desc')) continue;
    let partialFilter: Record<string, unknown> | null = null;
    let partialMatch: Predicate | null = null;
    const pfs = view.map.partial_filter_selector;
    if (isObject(pfs) && Object.keys(pfs).length) {
      try {
        partialMatch = compileSelector(pfs);
        partialFilter = pfs;
      } catch {
        continue; // a stored filter we cannot run (a replicated one with a PCRE-only regex): not an index here
      }
    }
    out.push({ type: 'json', ddoc: ddoc._id, name, fields, partialFilter, partialMatch });
  }
  return out;
}

/** Every index of a database, in CouchDB's order: `_all_docs` first, then by design document and name. */
export async function listIndexes(db: PouchDB.Database): Promise<Index[]> {
  const r = await db.allDocs({ startkey: '_design/', endkey: '_design0', include_docs: true });
  const json = r.rows.flatMap((row) => (row.doc ? indexesOf(row.doc as unknown as Record<string, unknown>) : []));
  json.sort((a, b) => (a.ddoc < b.ddoc ? -1 : a.ddoc > b.ddoc ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [ALL_DOCS, ...json];
}

/** CouchDB names an unnamed index (and its design document) by a hash of its definition. */
export function autoName(req: IndexRequest): string {
  return createHash('sha1').update(JSON.stringify({ def: req.def, type: 'json' })).digest('hex');
}

/** The view CouchDB writes for an index. */
function viewOf(req: IndexRequest): Record<string, unknown> {
  return {
    map: { fields: Object.fromEntries(req.fields.map((f) => [f.field, f.dir])), partial_filter_selector: req.partialFilter ?? {} },
    reduce: '_count',
    options: { def: req.def },
  };
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The design document with the index added, or null when an identical index is already there
 * (CouchDB's `"result": "exists"`). `existing` is the stored design document, if any (deleted ones
 * are revived with their revision, as CouchDB does).
 */
export function withIndex(existing: Record<string, unknown> | null, id: string, name: string, req: IndexRequest): Record<string, unknown> | null {
  const base = existing && !existing._deleted ? existing : { _id: id, ...(existing?._rev ? { _rev: existing._rev } : {}), language: 'query' };
  if (base.language !== 'query') throw mangoError(400, 'invalid_ddoc_lang', `Existing design doc has an invalid language: ${JSON.stringify(base.language ?? false).slice(0, 100)}`);
  const views = isObject(base.views) ? base.views : {};
  const view = viewOf(req);
  if (sameJson(views[name], view)) return null;
  const doc: Record<string, unknown> = { ...base, language: 'query', views: { ...views, [name]: view } };
  delete doc._deleted;
  return doc;
}

/** The design document without the index (deleted when nothing else is left in it), or null when the index is not there. */
export function withoutIndex(existing: Record<string, unknown>, name: string): Record<string, unknown> | null {
  if (!isObject(existing.views) || !(name in existing.views)) return null;
  const views = { ...existing.views };
  delete views[name];
  const doc: Record<string, unknown> = { ...existing, views };
  if (!Object.keys(views).length) delete doc.views;
  const rest = Object.keys(doc).filter((k) => !k.startsWith('_') && k !== 'language');
  if (!rest.length) return { _id: existing._id, _rev: existing._rev, _deleted: true };
  return doc;
}
