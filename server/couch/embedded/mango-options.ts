// The request bodies of Mango's `_find`, `_explain` and `_index`, read as Apache CouchDB 3.5 reads them
// (src/mango/src/mango_opts.erl): the same keys, defaults, error names and statuses, so a client that
// works against CouchDB gets the same answers for the same mistakes. The selector itself is compiled by
// mango.ts (its errors name the field); this module only checks that it is an object.
import { CouchError } from '../errors.ts';
import { isObject } from '../http.ts';
import { compileSelector, type Predicate } from './mango.ts';

/** CouchDB's `{error, reason}` for Mango, with its status. */
export const mangoError = (status: number, error: string, reason: string) => new CouchError(status, error, reason);

/** Erlang's `~w` rendering of a JSON value, as CouchDB's reasons show it (short). */
const shown = (v: unknown) => JSON.stringify(v)?.slice(0, 200) ?? 'undefined';

export const DEFAULT_LIMIT = 25;

export type Direction = 'asc' | 'desc';
export interface SortField { field: string; dir: Direction }

export interface FindOptions {
  selector: Record<string, unknown>;
  match: Predicate;
  /** [] (none), [ddoc] or [ddoc, name]; ddoc without its `_design/` prefix. */
  useIndex: string[];
  bookmark: string | null;
  limit: number;
  skip: number;
  sort: SortField[];
  /** null: whole documents. */
  fields: string[] | null;
  r: number;
  conflicts: boolean;
  stale: 'ok' | false;
  update: boolean;
  stable: boolean;
  executionStats: boolean;
  allowFallback: boolean;
}

const nonNegInt = (v: unknown) => {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw mangoError(400, 'invalid_non_neg_integer', `${shown(v)} is not an integer greater than or equal to zero`);
  return v as number;
};
const posInt = (v: unknown) => {
  if (!Number.isSafeInteger(v) || (v as number) <= 0) throw mangoError(400, 'invalid_pos_integer', `${shown(v)} is not an integer greater than zero`);
  return v as number;
};
const bool = (v: unknown) => {
  if (typeof v !== 'boolean') throw mangoError(400, 'invalid_boolean', `Invalid boolean value: ${shown(v)}`);
  return v;
};

/** `sort`: an array of field names or `{field: "asc"|"desc"}`, one direction for all (mango_sort.erl). */
export function parseSort(v: unknown): SortField[] {
  if (!Array.isArray(v)) throw mangoError(400, 'invalid_sort_json', `Sort must be an array of sort specs, not: ${shown(v)}`);
  const out = v.map((s): SortField => {
    if (typeof s === 'string' && s !== '') return { field: s, dir: 'asc' };
    if (isObject(s) && Object.keys(s).length === 1) {
      const [field, dir] = Object.entries(s)[0];
      if (dir === 'asc' || dir === 'desc') return { field, dir };
    }
    throw mangoError(400, 'invalid_sort_field', `Invalid sort field: ${shown(s)}`);
  });
  if (new Set(out.map((s) => s.dir)).size > 1) throw mangoError(400, 'unsupported_mixed_sort', 'Sorts currently only support a single direction for all fields.');
  return out;
}

function parseFields(v: unknown): string[] | null {
  if (!Array.isArray(v)) throw mangoError(400, 'invalid_fields', `Fields must be an array of strings, not: ${shown(v)}`);
  for (const f of v) if (typeof f !== 'string') throw mangoError(400, 'invalid_field', `Invalid JSON for field spec: ${shown(f)}`);
  return v.length ? (v as string[]) : null;
}

function parseUseIndex(v: unknown): string[] {
  const strip = (d: string) => (d.startsWith('_design/') ? d.slice(8) : d);
  if (v === null || (Array.isArray(v) && v.length === 0)) return [];
  if (typeof v === 'string') {
    const parts = v.split('/');
    if (parts.length === 1) return parts;
    if (parts.length === 2) return parts[0] === '_design' ? [parts[1]] : parts;
    if (parts.length === 3 && parts[0] === '_design') return [parts[1], parts[2]];
  } else if (Array.isArray(v) && v.length <= 2 && v.every((p) => typeof p === 'string')) {
    return [strip(v[0] as string), ...(v.length === 2 ? [v[1] as string] : [])];
  }
  throw mangoError(400, 'invalid_index_name', `Invalid index name: ${shown(v)}`);
}

/** Checks a selector's shape and compiles it (mango.ts: operator errors name the field). */
export function parseSelector(v: unknown): { selector: Record<string, unknown>; match: Predicate } {
  if (!isObject(v)) throw mangoError(400, 'invalid_selector_json', `Selector must be a JSON object, not: ${shown(v)}`);
  return { selector: v, match: compileSelector(v) };
}

/** Reads each known key with its validator; an unknown key is CouchDB's `invalid_key`. */
function readKeys(body: Record<string, unknown>, known: Record<string, (v: unknown) => unknown>, required: string[]): Record<string, unknown> {
  for (const k of Object.keys(body)) if (!(k in known)) throw mangoError(400, 'invalid_key', `Invalid key ${k.slice(0, 200)} for this request.`);
  for (const k of required) if (body[k] === undefined) throw mangoError(400, 'missing_required_key', `Missing required key: ${k}`);
  const out: Record<string, unknown> = {};
  for (const [k, check] of Object.entries(known)) if (body[k] !== undefined) out[k] = check(body[k]);
  return out;
}

/** `_find` and `_explain` bodies. */
export function parseFind(body: Record<string, unknown>): FindOptions {
  const o = readKeys(body, {
    selector: parseSelector,
    use_index: parseUseIndex,
    bookmark: (v) => {
      if (v === null || v === '') return null;
      if (typeof v !== 'string') throw mangoError(400, 'invalid_bookmark', `Invalid bookmark value: ${shown(v)}`);
      return v;
    },
    limit: nonNegInt,
    skip: nonNegInt,
    sort: parseSort,
    fields: parseFields,
    partition: (v) => {
      if (v === '') return '';
      throw mangoError(400, 'query_parse_error', '`partition` parameter is not supported on this db');
    },
    r: posInt,
    conflicts: bool,
    stale: (v) => {
      if (v === 'ok') return 'ok';
      if (v === false || v === 'false') return false;
      throw mangoError(400, 'invalid_value', `Invalid value for stale: ${shown(v)}`);
    },
    update: bool,
    stable: bool,
    execution_stats: bool,
    allow_fallback: bool,
  }, ['selector']);
  const sel = o.selector as { selector: Record<string, unknown>; match: Predicate };
  return {
    selector: sel.selector,
    match: sel.match,
    useIndex: (o.use_index as string[] | undefined) ?? [],
    bookmark: (o.bookmark as string | null | undefined) ?? null,
    limit: (o.limit as number | undefined) ?? DEFAULT_LIMIT,
    skip: (o.skip as number | undefined) ?? 0,
    sort: (o.sort as SortField[] | undefined) ?? [],
    fields: (o.fields as string[] | null | undefined) ?? null,
    r: (o.r as number | undefined) ?? 1,
    conflicts: (o.conflicts as boolean | undefined) ?? false,
    stale: (o.stale as 'ok' | false | undefined) ?? false,
    update: (o.update as boolean | undefined) ?? true,
    stable: (o.stable as boolean | undefined) ?? false,
    executionStats: (o.execution_stats as boolean | undefined) ?? false,
    allowFallback: (o.allow_fallback as boolean | undefined) ?? true,
  };
}

export interface IndexRequest {
  fields: SortField[];
  /** The definition as given (stored as the view's `options.def`, as CouchDB does). */
  def: Record<string, unknown>;
  partialFilter: Record<string, unknown> | null;
  name: string | null;
  ddoc: string | null;
}

const nonEmptyString = (v: unknown) => {
  if (v === '') throw mangoError(400, 'invalid_empty_string', 'Index name or ddoc cannot be empty string');
  if (typeof v !== 'string') throw mangoError(400, 'invalid_string', `Invalid string: ${shown(v)}`);
  return v;
};

/** `POST /db/_index` bodies (JSON indexes only: text and nouveau need search services). */
export function parseIndexRequest(body: Record<string, unknown>): IndexRequest {
  const o = readKeys(body, {
    index: (v) => v,
    type: (v) => {
      if (typeof v !== 'string') throw mangoError(400, 'invalid_string', `Invalid string: ${shown(v)}`);
      return v;
    },
    name: nonEmptyString,
    ddoc: nonEmptyString,
    w: posInt,
    partitioned: (v) => {
      if (v === false) return v;
      if (v === true) throw mangoError(400, 'invalid_partitioned_option', 'this database is not partitioned; partitioned indexes need a partitioned database');
      throw mangoError(400, 'invalid_partitioned_value', `Invalid partitioned value: ${shown(v)}`);
    },
  }, ['index']);
  const type = (o.type as string | undefined) ?? 'json';
  if (type === 'text' || type === 'nouveau') throw mangoError(503, 'required index service unavailable', type);
  if (type !== 'json') throw mangoError(400, 'invalid_index', `Invalid type for index: ${type.slice(0, 200)}`);
  const def = o.index;
  if (!isObject(def)) throw mangoError(400, 'invalid_index', `JSON indexes must be an object, not: ${shown(def)}`);
  const d = readKeys(def, { fields: parseSort, partial_filter_selector: (v) => parseSelector(v).selector }, ['fields']);
  // No fields is accepted, as CouchDB does: every document is in such an index, ordered by id.
  const fields = d.fields as SortField[];
  const partial = (d.partial_filter_selector as Record<string, unknown> | undefined) ?? null;
  return { fields, def, partialFilter: partial && Object.keys(partial).length ? partial : null, name: (o.name as string | undefined) ?? null, ddoc: (o.ddoc as string | undefined) ?? null };
}
