// A replication request — a `_replicate` body or a `_replicator` document — checked field by field with
// CouchDB 3's rules and messages (couch_replicator_parse: "parameter `continuous` must be a boolean",
// "`selector`, `filter` and `doc_ids` are mutually exclusive"), and its replication id: a hash of what
// decides which changes go where (endpoints without credentials, filter, doc_ids, selector) plus
// CouchDB's `+continuous` / `+create_target` suffixes. The id is stable across restarts, so a job
// resumes from its checkpoints.
import { createHash } from 'node:crypto';
import { badRequest } from '../../errors.ts';
import { isObject } from '../../http.ts';
import { parseEndpoint, type Endpoint, type LocalNames } from './endpoint.ts';

export interface RepSpec {
  source: Endpoint;
  target: Endpoint;
  continuous: boolean;
  createTarget: boolean;
  docIds?: string[];
  /** `ddoc/name` or `_view` (with `query_params.view`), served by the source's `_changes`. */
  filter?: string;
  queryParams?: Record<string, unknown>;
  selector?: Record<string, unknown>;
  sinceSeq?: string | number;
}

export interface RepRequest {
  spec?: RepSpec;
  cancel: boolean;
  /** `replication_id` / `_local_id` / `id`, for a cancel. */
  id?: string;
}

const MAX_DOC_IDS = 10_000;

const mustBe = (name: string, what: string) => badRequest(`parameter \`${name}\` must be ${what}`);
const bool = (b: Record<string, unknown>, name: string): boolean | undefined => {
  const v = b[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw mustBe(name, 'a boolean');
  return v;
};

/** Checks a `_replicate` body or a `_replicator` document; throws a CouchError naming the field. */
export function parseRepRequest(body: Record<string, unknown>, local?: LocalNames): RepRequest {
  const cancel = bool(body, 'cancel') ?? false;
  const idRaw = body.replication_id ?? body._local_id ?? body.id;
  if (cancel && idRaw !== undefined) {
    if (typeof idRaw !== 'string' || !idRaw || idRaw.length > 200) throw badRequest('replication_id must be a replication id string');
    return { cancel, id: idRaw };
  }
  return { cancel, spec: parseRepSpec(body, local) };
}

export function parseRepSpec(body: Record<string, unknown>, local?: LocalNames): RepSpec {
  const continuous = bool(body, 'continuous') ?? false;
  const createTarget = bool(body, 'create_target') ?? false;
  for (const name of ['winning_revs_only', 'use_bulk_get'] as const) bool(body, name);
  if (body.create_target_params !== undefined && !isObject(body.create_target_params)) throw mustBe('create_target_params', 'a JSON object');
  if (body.query_params !== undefined && !isObject(body.query_params)) throw mustBe('query_params', 'an object');
  let docIds: string[] | undefined;
  if (body.doc_ids !== undefined && body.doc_ids !== null) {
    if (!Array.isArray(body.doc_ids)) throw mustBe('doc_ids', 'an array');
    if (body.doc_ids.length > MAX_DOC_IDS) throw badRequest(`parameter \`doc_ids\` has more than ${MAX_DOC_IDS} ids`);
    if (!body.doc_ids.every((d) => typeof d === 'string' && d.length > 0 && d.length <= 4096)) throw badRequest('parameter `doc_ids` must be an array of document ids (non-empty strings)');
    // CouchDB takes them percent-encoded as the old replicator did, and sorted without duplicates.
    docIds = [...new Set((body.doc_ids as string[]).map((d) => { try { return decodeURIComponent(d); } catch { return d; } }))].sort();
  }
  if (body.selector !== undefined && !isObject(body.selector)) throw mustBe('selector', 'a JSON object');
  let filter: string | undefined;
  if (body.filter !== undefined) {
    if (typeof body.filter !== 'string' || !body.filter) throw badRequest('parameter `filter` must be a string: ddoc/name or _view');
    filter = body.filter;
    if (!filter.startsWith('_') && !/^[^/]+\/[^/]+$/.test(filter)) throw badRequest(`Invalid filter. Must match \`ddocname/filtername\` or \`_design/ddocname/filtername\`: ${filter.slice(0, 100)}`);
    if (filter.startsWith('_') && filter !== '_view' && !filter.startsWith('_design/')) throw badRequest(`unknown filter ${filter.slice(0, 100)}: only ddoc/name and _view are served`);
    if (filter.startsWith('_design/')) filter = filter.slice('_design/'.length);
  }
  if ([filter, docIds, body.selector].filter((x) => x !== undefined).length > 1) throw badRequest('`selector`, `filter` and `doc_ids` are mutually exclusive');
  if (filter === '_view' && !(isObject(body.query_params) && typeof body.query_params.view === 'string')) throw badRequest('filter _view needs query_params.view: ddoc/viewname');
  const since = body.since_seq;
  if (since !== undefined && typeof since !== 'string' && typeof since !== 'number') throw mustBe('since_seq', 'a sequence (string or number)');
  return {
    source: parseEndpoint(body.source, 'source', local),
    target: parseEndpoint(body.target, 'target', local),
    continuous,
    createTarget,
    ...(docIds ? { docIds } : {}),
    ...(filter ? { filter } : {}),
    ...(isObject(body.query_params) ? { queryParams: body.query_params } : {}),
    ...(isObject(body.selector) ? { selector: body.selector } : {}),
    ...(since !== undefined ? { sinceSeq: since } : {}),
  };
}

/** CouchDB's shape of a replication id: `<hash>` + `+continuous` + `+create_target`. */
export function replicationId(spec: RepSpec): string {
  const what = JSON.stringify({
    source: spec.source.url,
    target: spec.target.url,
    filter: spec.filter ?? null,
    query_params: spec.queryParams ?? null,
    doc_ids: spec.docIds ?? null,
    selector: spec.selector ?? null,
  });
  const base = createHash('md5').update(what).digest('hex');
  return base + (spec.continuous ? '+continuous' : '') + (spec.createTarget ? '+create_target' : '');
}

/** Base of a replication id (without the suffixes): `_replicate {cancel}` may give either. */
export const baseId = (id: string) => id.split('+')[0];
