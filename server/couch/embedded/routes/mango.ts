// Mango over HTTP: `POST /db/_find`, `POST /db/_explain`, `GET|POST /db/_index`,
// `DELETE /db/_index/{ddoc}/json/{name}`, `POST /db/_index/_bulk_delete`, answered as Apache CouchDB
// 3.5 answers them.
//
// The selector runs on our own evaluator (mango.ts: `$regex` on RE2 under a time budget), not
// pouchdb-find's (JavaScript RegExp: one request could freeze the server). Indexes are CouchDB's own
// design documents (mango-index.ts) and the planner is CouchDB's (mango-plan.ts), so the same query
// picks the same index, returns the same documents in the same order and fails with the same error.
// PouchDB keeps no Mango index, so a JSON index's entries are kept in memory (mango-cache.ts) and a
// query walks the key range of its selector, reading only those documents; an index too large to
// keep is served by reading every document (in slices, yielding to the event loop between them) and
// keeping the best `skip + limit` matches in the index's order. `_all_docs` queries read only the
// `_id` range the selector allows and stop at `limit`, as CouchDB does.
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { CouchError, badRequest, methodNotAllowed, notFound, toCouchError, unsupportedMedia } from '../../errors.ts';
import { isObject, readJsonObject, sendJson } from '../../http.ts';
import { busy } from '../../../limits/budget.ts';
import { cleanDoc } from '../attachments.ts';
import { type Ctx, requireReader } from '../context.ts';
import { collate, getField, splitField } from '../mango.ts';
import { type Index, type JsonIndex, autoName, indexJson, listIndexes, withIndex, withoutIndex } from '../mango-index.ts';
import { type Entry, compareEntries, entriesOf, firstNotBefore, indexKey } from '../mango-cache.ts';
import { type FindOptions, mangoError, parseFind, parseIndexRequest } from '../mango-options.ts';
import { type FoundPlan, covers, explainPlan, inRange, indexableFields, normalized, plan, requiredFields, selectorFields } from '../mango-plan.ts';
import { writeOne } from './writes.ts';

/** Documents read per batch from PouchDB. */
const BATCH = 200;
/** Documents read at once when walking an index. */
const FETCH = 100;
/** The longest a scan runs before it lets other requests in. */
const SLICE_MS = 10;
/** Scans one user may run at once; more wait their turn as a 503 with Retry-After. */
const SCANS_PER_USER = 4;
const scans = new Map<string, number>();

type Doc = Record<string, unknown> & { _id: string };
interface Row { key: unknown; id: string; doc: Doc }
interface Stats { keys: number; docs: number; quorumDocs: number; returned: number; started: number }

function requireJson(ctx: Ctx): void {
  const type = String(ctx.req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') throw unsupportedMedia('Content-Type must be application/json');
}

/** `_find` */
export async function find(ctx: Ctx, db: string): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  await requireReader(ctx, db);
  requireJson(ctx);
  const o = parseFind(await readJsonObject(ctx.req, ctx.maxBody));
  const all = await listIndexes(ctx.store.get(db));
  const p = plan(all, o);
  const who = ctx.userCtx.name ?? '';
  const running = scans.get(who) ?? 0;
  if (running >= SCANS_PER_USER) throw busy(`you have ${running} _find queries running; retry when one is done`);
  scans.set(who, running + 1);
  try {
    const stats: Stats = { keys: 0, docs: 0, quorumDocs: 0, returned: 0, started: performance.now() };
    const rows = p.index.type === 'special' ? await scanAllDocs(ctx, db, o, p, stats) : await fromIndex(ctx, db, o, p, stats, all);
    stats.returned = rows.length;
    const last = rows.at(-1);
    const bookmark = last && o.limit > 0 ? encodeBookmark(last) : (o.bookmark ?? 'nil');
    const warnings = [...p.warnings];
    const examined = stats.docs + stats.quorumDocs;
    if ((rows.length ? examined / rows.length : examined) > 10) warnings.push('The number of documents examined is high in proportion to the number of results returned. Consider adding a more specific index to improve this.');
    const body: Record<string, unknown> = { docs: rows.map((r) => project(cleanDoc(r.doc), o.fields)), bookmark };
    if (warnings.length) body.warning = warnings.join('\n');
    if (o.executionStats) {
      body.execution_stats = {
        total_keys_examined: stats.keys,
        total_docs_examined: stats.docs,
        total_quorum_docs_examined: stats.quorumDocs,
        results_returned: stats.returned,
        execution_time_ms: Math.round((performance.now() - stats.started) * 1000) / 1000,
      };
    }
    sendJson(ctx.res, 200, body);
  } finally {
    const n = (scans.get(who) ?? 1) - 1;
    if (n > 0) scans.set(who, n);
    else scans.delete(who);
  }
}

/** The bookmark: where the last row returned sits in the index, opaque to the client. */
function encodeBookmark(row: Row): string {
  return Buffer.from(JSON.stringify([row.key, row.id])).toString('base64url');
}

function decodeBookmark(b: string, idx: Index): { key: unknown; id: string } {
  try {
    if (b.length > 64 * 1024) throw new Error('too long');
    const v = JSON.parse(Buffer.from(b, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(v) || v.length !== 2 || typeof v[1] !== 'string') throw new Error('shape');
    const fits = idx.type === 'json' ? Array.isArray(v[0]) && v[0].length === idx.fields.length : v[0] === v[1];
    if (!fits) throw new Error('not from this index');
    return { key: v[0], id: v[1] };
  } catch {
    throw mangoError(400, 'invalid_bookmark', `Invalid bookmark value: ${JSON.stringify(b.slice(0, 200))}`);
  }
}

/** Lets other requests run when this one has had the loop for a slice; stops when the client left. */
async function breathe(ctx: Ctx, clock: { at: number }): Promise<void> {
  if (performance.now() - clock.at < SLICE_MS) return;
  await yieldLoop();
  if (ctx.closed()) throw badRequest('the client went away');
  clock.at = performance.now();
}

/** A page of PouchDB's `_all_docs` with bodies, in id order from `from` (excluded when `after`). */
async function page(ctx: Ctx, db: string, o: FindOptions, descending: boolean, from: string | undefined, after: boolean, until: string | undefined): Promise<{ id: string; doc: Doc }[]> {
  const opts: Record<string, unknown> = { include_docs: true, conflicts: o.conflicts, descending, limit: BATCH + (after ? 1 : 0) };
  if (from !== undefined) opts.startkey = from;
  if (until !== undefined) opts.endkey = until;
  const r = await ctx.store.get(db).allDocs(opts);
  const rows = (r.rows as { id: string; doc?: Doc }[]).filter((row) => row.doc).map((row) => ({ id: row.id, doc: row.doc! }));
  return after && rows[0]?.id === from ? rows.slice(1) : rows.slice(0, BATCH);
}

/** Stats for one document read: CouchDB counts quorum reads instead when r > 1. */
const examined = (stats: Stats, o: FindOptions) => (o.r > 1 ? stats.quorumDocs++ : stats.docs++);

/** `_all_docs` as the index: the `_id` range of the selector, in order, until `limit` matches. */
async function scanAllDocs(ctx: Ctx, db: string, o: FindOptions, p: FoundPlan, stats: Stats): Promise<Row[]> {
  const desc = o.sort[0]?.dir === 'desc';
  const range = p.ranges[0];
  if (range?.empty || o.limit === 0) return [];
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  // PouchDB's keys are strings: a non-string bound only narrows through the range check below.
  let from = str(desc ? range?.high : range?.low);
  const until = str(desc ? range?.low : range?.high);
  let after = false;
  const mark = o.bookmark ? decodeBookmark(o.bookmark, p.index) : null;
  if (mark && (from === undefined || (desc ? mark.id < from : mark.id > from))) [from, after] = [mark.id, true];
  let skip = o.skip;
  const out: Row[] = [];
  const clock = { at: performance.now() };
  for (;;) {
    const rows = await page(ctx, db, o, desc, from, after, until);
    for (const { id, doc } of rows) {
      if (id.startsWith('_design/')) continue;
      if (range && !inRange(id, range)) continue;
      if (mark && (desc ? id >= mark.id : id <= mark.id)) continue;
      stats.keys++;
      examined(stats, o);
      await breathe(ctx, clock); // a match may take up to the $regex budget: never many in a row
      if (!o.match(doc)) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      out.push({ key: id, id, doc });
      if (out.length >= o.limit) return out;
    }
    if (rows.length < BATCH) return out;
    [from, after] = [rows[rows.length - 1].id, true];
    await breathe(ctx, clock);
  }
}

/**
 * A JSON index: its kept entries (mango-cache.ts), brought up to date unless `update: false` or
 * `stale: "ok"`, walked over the selector's range in index order; only those documents are read, in
 * batches, until `skip + limit` match. An index too large to keep is served by reading every document.
 */
async function fromIndex(ctx: Ctx, db: string, o: FindOptions, p: FoundPlan, stats: Stats, all: Index[]): Promise<Row[]> {
  const idx = p.index as JsonIndex;
  if (p.ranges.some((r) => r.empty) || o.limit === 0) return [];
  const store = ctx.store.get(db);
  const kept = entriesOf(store, idx, all.filter((i): i is JsonIndex => i.type === 'json'));
  const clock = { at: performance.now() };
  const pause = () => breathe(ctx, clock);
  const rows = await kept.use(store, o.update && o.stale !== 'ok', pause, (entries) => (kept.tooBig ? Promise.resolve(null) : walk(ctx, db, o, p, stats, entries, pause)));
  return rows ?? scanForIndex(ctx, db, o, p, stats);
}

async function walk(ctx: Ctx, db: string, o: FindOptions, p: FoundPlan, stats: Stats, entries: Entry[], pause: () => Promise<void>): Promise<Row[]> {
  const desc = o.sort[0]?.dir === 'desc';
  const first = p.ranges[0];
  const mark = o.bookmark ? (decodeBookmark(o.bookmark, p.index) as Entry) : null;
  // Whether an entry's first field sorts before `v` (or at it, when `v` itself is not included).
  const below = (e: Entry, v: unknown, inclusive: boolean) => {
    const c = collate(e.key[0], v);
    return c < 0 || (c === 0 && !inclusive);
  };
  // Where the walk starts, and the test that it has left the range of the first field.
  let i: number;
  if (!desc) {
    i = mark ? firstNotBefore(entries, (e) => compareEntries(e, mark) <= 0) : first?.low !== undefined ? firstNotBefore(entries, (e) => below(e, first.low, first.lowInclusive)) : 0;
  } else {
    i = (mark ? firstNotBefore(entries, (e) => compareEntries(e, mark) < 0) : first?.high !== undefined ? firstNotBefore(entries, (e) => below(e, first.high, !first.highInclusive)) : entries.length) - 1;
  }
  const past = (e: Entry) => {
    if (!first) return false;
    if (!desc) return first.high !== undefined && !inRange(e.key[0], { ...first, low: undefined, lowInclusive: false });
    return first.low !== undefined && !inRange(e.key[0], { ...first, high: undefined, highInclusive: false });
  };
  let skip = o.skip;
  const out: Row[] = [];
  // A covering index (every field the query reads is in it): the documents are made from the keys,
  // none is read, as CouchDB does.
  const fromKey = covers(p.index, requiredFields(o.fields, p.items)) && !o.conflicts ? p.index.fields.map((f) => splitField(f.field)) : null;
  const batch: Entry[] = [];
  // Read as many documents as could still be needed, doubling while the selector keeps refusing them.
  let size = Math.min(FETCH, Math.max(1, o.skip + o.limit));
  const flush = async (): Promise<boolean> => {
    const docs = fromKey ? batch.map((e) => ({ doc: docFromKey(e, fromKey) })) : ((await ctx.store.get(db).allDocs({ keys: batch.map((e) => e.id), include_docs: true, conflicts: o.conflicts } as PouchDB.Core.AllDocsWithKeysOptions)).rows as { doc?: Doc | null }[]);
    let done = false;
    for (let k = 0; k < batch.length && !done; k++) {
      const doc = docs[k]?.doc;
      if (!doc) continue;
      if (!fromKey) examined(stats, o);
      await pause();
      if (!o.match(doc)) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      out.push({ key: batch[k].key, id: batch[k].id, doc });
      done = out.length >= o.limit;
    }
    batch.length = 0;
    size = Math.min(FETCH, size * 2);
    return done;
  };
  for (; i >= 0 && i < entries.length; i += desc ? -1 : 1) {
    const e = entries[i];
    if (past(e)) break;
    stats.keys++;
    if (!p.ranges.every((r, k) => inRange(e.key[k], r))) continue;
    batch.push(e);
    if (batch.length >= size && (await flush())) return out;
  }
  if (batch.length) await flush();
  return out;
}

/**
 * A JSON index as the order: every document is read; those in the index and in the selector's range
 * of its leading fields are examined; the best `skip + limit` matches by (key, id) are kept.
 */
async function scanForIndex(ctx: Ctx, db: string, o: FindOptions, p: FoundPlan, stats: Stats): Promise<Row[]> {
  const sign = o.sort[0]?.dir === 'desc' ? -1 : 1;
  if (p.ranges.some((r) => r.empty) || o.limit === 0) return [];
  const paths = p.index.fields.map((f) => splitField(f.field));
  const cmp = (a: { key: unknown; id: string }, b: { key: unknown; id: string }) => sign * (collate(a.key, b.key) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const mark = o.bookmark ? decodeBookmark(o.bookmark, p.index) : null;
  const keep = o.skip + o.limit;
  const best: Row[] = [];
  const clock = { at: performance.now() };
  let from: string | undefined;
  let after = false;
  for (;;) {
    const rows = await page(ctx, db, o, false, from, after, undefined);
    for (const { id, doc } of rows) {
      if (id.startsWith('_design/')) continue;
      const key = indexKey(p.index as JsonIndex, doc, paths);
      if (!key || !p.ranges.every((r, i) => inRange(key[i], r))) continue;
      const row = { key, id, doc };
      if (mark && cmp(row, mark) <= 0) continue;
      stats.keys++;
      examined(stats, o);
      if (best.length >= keep && cmp(row, best[best.length - 1]) >= 0) continue;
      await breathe(ctx, clock);
      if (!o.match(doc)) continue;
      let lo = 0;
      let hi = best.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cmp(best[mid], row) < 0) lo = mid + 1;
        else hi = mid;
      }
      best.splice(lo, 0, row);
      if (best.length > keep) best.pop();
    }
    if (rows.length < BATCH) break;
    [from, after] = [rows[rows.length - 1].id, true];
    await breathe(ctx, clock);
  }
  return best.slice(o.skip);
}

/** A document holding only an index entry's fields and id. */
function docFromKey(e: Entry, paths: string[][]): Doc {
  const doc: Doc = { _id: e.id };
  paths.forEach((path, k) => {
    let at: Record<string, unknown> = doc;
    for (const part of path.slice(0, -1)) {
      if (!isObject(at[part])) at[part] = {};
      at = at[part] as Record<string, unknown>;
    }
    at[path[path.length - 1]] = e.key[k];
  });
  return doc;
}

/** `fields`: only the named (dotted) fields, nested as in the document. */
function project(doc: Doc, fields: string[] | null): Record<string, unknown> {
  if (!fields) return doc;
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const path = splitField(f);
    const v = getField(doc, path);
    if (v === undefined) continue;
    let at = out;
    for (const part of path.slice(0, -1)) {
      if (!isObject(at[part])) at[part] = {};
      at = at[part] as Record<string, unknown>;
    }
    at[path[path.length - 1]] = v;
  }
  return out;
}

/** `_explain`: the index chosen and why, in CouchDB 3.5's shape. */
export async function explain(ctx: Ctx, db: string): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  await requireReader(ctx, db);
  requireJson(ctx);
  const o = parseFind(await readJsonObject(ctx.req, ctx.maxBody));
  const p = explainPlan(await listIndexes(ctx.store.get(db)), o);
  const fields = o.fields ?? [];
  const all = selectorFields(p.items);
  const indexable = indexableFields(p.items);
  const body: Record<string, unknown> = {
    dbname: db,
    index: p.index ? indexJson(p.index) : null,
    partitioned: false,
    selector: normalized(o.selector),
    opts: {
      use_index: o.useIndex,
      bookmark: o.bookmark ?? 'nil',
      limit: o.limit,
      skip: o.skip,
      sort: Object.fromEntries(o.sort.map((s) => [s.field, s.dir])),
      fields,
      partition: '',
      r: o.r,
      conflicts: o.conflicts,
      stale: o.stale,
      update: o.update,
      stable: o.stable,
      execution_stats: o.executionStats,
      allow_fallback: o.allowFallback,
    },
    limit: o.limit,
    skip: o.skip,
    fields,
    index_candidates: p.candidates.map((c) => ({
      index: indexJson(c.index),
      analysis: { usable: c.usable, reasons: c.reasons.map((name) => ({ name })), ranking: c.ranking, covering: c.index.type === 'json' ? covers(c.index, o.fields) : null },
    })),
    selector_hints: [{ type: 'json', indexable_fields: indexable, unindexable_fields: all.filter((f) => !indexable.includes(f)) }],
  };
  if (p.index) {
    // The view query CouchDB would run: the key range of the index's leading fields.
    const covering = covers(p.index, requiredFields(o.fields, p.items));
    const start: unknown[] = [];
    const end: unknown[] = [];
    let open = false;
    for (const r of p.ranges) {
      if (r.low === undefined) break;
      start.push(r.low);
    }
    for (const r of p.ranges) {
      if (r.high === undefined) {
        open = true;
        break;
      }
      end.push(r.high);
    }
    const special = p.index.type === 'special';
    body.mrargs = {
      include_docs: !covering,
      view_type: 'map',
      reduce: false,
      partition: null,
      start_key: special ? (start[0] ?? null) : start,
      // CouchDB's JSON end keys always close with its maximum object, shown as "<MAX>".
      end_key: special ? (open || end.length === 0 ? '<MAX>' : end[0]) : [...end, '<MAX>'],
      direction: o.sort[0]?.dir === 'desc' ? 'rev' : 'fwd',
      stable: o.stable,
      update: o.update,
      conflicts: o.conflicts ? true : 'undefined',
    };
    body.covering = covering;
  }
  sendJson(ctx.res, 200, body);
}

/** `_index` and `_index/{ddoc}/json/{name}`. */
export async function index(ctx: Ctx, db: string, rest: string[]): Promise<void> {
  await requireReader(ctx, db);
  const store = ctx.store.get(db);
  if (rest.length === 0) {
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      const all = await listIndexes(store);
      const q = ctx.query;
      const limit = q.has('limit') ? intParam(q.str('limit')!, 1) : all.length;
      const skip = q.has('skip') ? Math.min(intParam(q.str('skip')!, 0), all.length) : 0;
      sendJson(ctx.res, 200, { total_rows: all.length, indexes: all.slice(skip, skip + limit).map(indexJson) });
      return;
    }
    if (ctx.method !== 'POST') throw methodNotAllowed('GET,POST');
    requireJson(ctx);
    const req = parseIndexRequest(await readJsonObject(ctx.req, ctx.maxBody));
    const name = req.name ?? autoName(req);
    const id = req.ddoc ? (req.ddoc.startsWith('_design/') ? req.ddoc : `_design/${req.ddoc}`) : `_design/${autoName(req)}`;
    if (id === '_design/') throw badRequest('document id needs a name after the prefix');
    const existing = await storedDoc(store, id);
    const doc = withIndex(existing, id, name, req);
    if (doc) await saveDdoc(ctx, db, doc);
    sendJson(ctx.res, 200, { result: doc ? 'created' : 'exists', id, name });
    return;
  }
  if (rest[0] === '_bulk_delete' && rest.length === 1) return bulkDelete(ctx, db);
  // {ddoc}/json/{name} or _design/{ddoc}/json/{name}
  const parts = rest[0] === '_design' ? [`_design/${rest[1]}`, ...rest.slice(2)] : [rest[0].startsWith('_design/') ? rest[0] : `_design/${rest[0]}`, ...rest.slice(1)];
  if (parts.length !== 3 || !rest[1]) throw notFound();
  if (ctx.method !== 'DELETE') throw methodNotAllowed('DELETE');
  const [id, type, name] = parts;
  const existing = await storedDoc(store, id);
  if (!existing || existing._deleted || type !== 'json' || !(await listIndexes(store)).some((i) => i.ddoc === id && i.name === name)) throw notFound();
  const doc = withoutIndex(existing, name);
  if (!doc) throw notFound();
  await saveDdoc(ctx, db, doc);
  sendJson(ctx.res, 200, { ok: true });
}

/**
 * Writes an index's design document through the one write path (design documents are for db admins;
 * validate_doc_update runs). A refused write is CouchDB's answer: 500 `error_saving_ddoc` naming the
 * refusal (mango_httpd.erl); CouchDB answers `{"ok": true}` to a refused delete and keeps the index,
 * we do not.
 */
async function saveDdoc(ctx: Ctx, db: string, doc: Record<string, unknown>): Promise<void> {
  try {
    await writeOne(ctx, db, doc);
  } catch (err) {
    const e = toCouchError(err);
    if (e.status === 409) throw new CouchError(500, 'error_saving_ddoc', 'Encountered a conflict while saving the design document.');
    if (e.status >= 500) throw err;
    // A reader who is not a db admin (the only 401 here: readers were checked) is CouchDB's `forbidden`.
    throw new CouchError(500, 'error_saving_ddoc', `Unknown error while saving the design document: ${e.status === 401 ? 'forbidden' : e.error}`);
  }
}

/**
 * `POST _index/_bulk_delete` `{docids}` (Fauxton's "delete index"): each design document's one index
 * is deleted → `{success: [{id, ok}], fail: [{id, error}]}`, newest first as CouchDB lists them. A
 * design document holding several indexes fails its entry (CouchDB answers a 500 `case_clause` and
 * stops there): the request names one index, not all of them.
 */
async function bulkDelete(ctx: Ctx, db: string): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  requireJson(ctx);
  const body = await readJsonObject(ctx.req, ctx.maxBody);
  for (const k of Object.keys(body)) if (k !== 'docids' && k !== 'w') throw mangoError(400, 'invalid_key', `Invalid key ${k.slice(0, 200)} for this request.`);
  const ids = body.docids;
  if (ids === undefined) throw mangoError(400, 'missing_required_key', 'Missing required key: docids');
  if (!Array.isArray(ids) || ids.length > 1000) throw mangoError(400, 'invalid_bulk_docs', `Bulk Delete requires an array of non-null docids. Docids: ${JSON.stringify(ids)?.slice(0, 200)}`);
  for (const id of ids) if (typeof id !== 'string' || id === '') throw mangoError(400, 'invalid_index_name', `Invalid index name: ${JSON.stringify(id)?.slice(0, 200)}`);
  const store = ctx.store.get(db);
  const success: unknown[] = [];
  const fail: unknown[] = [];
  for (const raw of ids as string[]) {
    const id = raw.startsWith('_design/') ? raw : `_design/${raw}`;
    const mine = (await listIndexes(store)).filter((i) => i.ddoc === id);
    if (mine.length !== 1) {
      fail.unshift({ id, error: mine.length ? `the design document holds ${mine.length} indexes; delete them one by one` : 'not_found' });
      continue;
    }
    try {
      const doc = withoutIndex((await storedDoc(store, id))!, mine[0].name);
      await saveDdoc(ctx, db, doc!);
      success.unshift({ id, ok: true });
    } catch (err) {
      fail.unshift({ id, error: toCouchError(err).reason });
    }
  }
  sendJson(ctx.res, 200, { success, fail });
}

function intParam(v: string, min: number): number {
  const n = /^-?\d{1,15}$/.test(v) ? Number(v) : NaN;
  if (!(n >= min)) throw mangoError(500, 'invalid_list_index_params', 'Index parameter ranges: limit > 1, skip > 0');
  return n;
}

/** The design document as stored, deleted ones included (their revision revives them). */
async function storedDoc(store: PouchDB.Database, id: string): Promise<Record<string, unknown> | null> {
  try {
    return (await store.get(id)) as unknown as Record<string, unknown>;
  } catch (err) {
    if ((err as { status?: number }).status !== 404) throw err;
  }
  // A deleted design document: its latest revision, so the new one descends from it.
  const r = (await store.allDocs({ keys: [id] })).rows[0] as { value?: { rev: string; deleted?: boolean } } | undefined;
  return r?.value?.deleted ? { _id: id, _rev: r.value.rev, _deleted: true } : null;
}
