// Database-level endpoints: create/info/delete, _all_docs, _bulk_docs, _revs_diff (_bulk_get: bulk-get.ts),
// _security, views, and the small replication helpers (_ensure_full_commit, _revs_limit).
import { createHash } from 'node:crypto';
import { CouchError, badRequest, methodNotAllowed, notFound } from '../../errors.ts';
import { isObject, readJsonObject, sendJson, type Query } from '../../http.ts';
import { type Ctx, requireDbAdmin, requireReader, requireServerAdmin } from '../context.ts';
import { dbInfo } from './server.ts';
import { checkRev, writeDocs } from './writes.ts';
import { cleanDoc } from '../attachments.ts';

export async function database(ctx: Ctx, name: string): Promise<void> {
  const { method, res, store } = ctx;
  if (method === 'PUT') {
    requireServerAdmin(ctx);
    await store.create(name);
    sendJson(res, 201, { ok: true });
    return;
  }
  if (method === 'DELETE') {
    requireServerAdmin(ctx);
    store.get(name);
    await store.destroy(name);
    sendJson(res, 200, { ok: true });
    return;
  }
  if (method === 'GET' || method === 'HEAD') {
    store.get(name);
    await requireReader(ctx, name);
    sendJson(res, 200, await dbInfo(ctx, name));
    return;
  }
  throw methodNotAllowed('GET,HEAD,PUT,DELETE,POST');
}

/** View and _all_docs query options from the query string and (for POST) the body. */
function rangeOptions(q: Query, body: Record<string, unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const json = (k: string) => (body[k] !== undefined ? body[k] : q.json(k));
  const alias: [string, string][] = [['startkey', 'startkey'], ['start_key', 'startkey'], ['endkey', 'endkey'], ['end_key', 'endkey'], ['key', 'key'], ['keys', 'keys']];
  for (const [param, opt] of alias) {
    const v = json(param);
    if (v !== undefined) o[opt] = v;
  }
  if (o.keys !== undefined && (!Array.isArray(o.keys) || (o.keys as unknown[]).length > 10_000)) throw badRequest('keys must be an array of at most 10000 keys');
  for (const k of ['startkey_docid', 'endkey_docid'] as const) {
    const v = q.str(k);
    if (v !== undefined) o[k] = v;
  }
  for (const k of ['include_docs', 'descending', 'inclusive_end', 'reduce', 'group', 'conflicts', 'update_seq', 'attachments'] as const) {
    const v = body[k] ?? q.bool(k);
    if (v !== undefined) {
      if (typeof v !== 'boolean') throw badRequest(`${k} must be true or false`);
      o[k] = v;
    }
  }
  for (const k of ['limit', 'skip', 'group_level'] as const) {
    const v = body[k] ?? q.int(k);
    if (v !== undefined) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw badRequest(`${k} must be a non-negative integer`);
      o[k] = v;
    }
  }
  o.binary = false;
  return o;
}

async function optionalBody(ctx: Ctx): Promise<Record<string, unknown>> {
  if (ctx.method === 'POST') return readJsonObject(ctx.req, ctx.maxBody);
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,POST');
  return {};
}

export async function allDocs(ctx: Ctx, name: string, designOnly = false): Promise<void> {
  await requireReader(ctx, name);
  const body = await optionalBody(ctx);
  const o = rangeOptions(ctx.query, body);
  if (designOnly) Object.assign(o, { startkey: '_design/', endkey: '_design0' });
  const r = await ctx.store.get(name).allDocs(o);
  for (const row of r.rows as { doc?: unknown }[]) cleanDoc(row.doc);
  sendJson(ctx.res, 200, r);
}

/**
 * CouchDB's `stale=ok|update_after` and `update=true|false|lazy` as PouchDB's `stale`: answer from the
 * index as it is (and, for update_after/lazy, bring it up to date afterwards). Errors in CouchDB 3.5.0's words.
 */
function staleness(q: Query, body: Record<string, unknown>): { stale?: 'ok' | 'update_after' } {
  const stale = body.stale ?? q.str('stale');
  const update = body.update ?? q.str('update');
  if (stale !== undefined && stale !== 'ok' && stale !== 'update_after') throw new CouchError(400, 'query_parse_error', 'Invalid value for `stale`.');
  if (update !== undefined && ![true, false, 'true', 'false', 'lazy'].includes(update as string | boolean)) throw new CouchError(400, 'query_parse_error', 'Invalid value for `update`.');
  if (stale !== undefined) return { stale };
  if (update === false || update === 'false') return { stale: 'ok' };
  if (update === 'lazy') return { stale: 'update_after' };
  return {};
}

export async function view(ctx: Ctx, name: string, ddoc: string, viewName: string): Promise<void> {
  await requireReader(ctx, name);
  const body = await optionalBody(ctx);
  const r = await ctx.store.get(name).query(`${ddoc}/${viewName}`, { ...rangeOptions(ctx.query, body), ...staleness(ctx.query, body) });
  for (const row of (r.rows ?? []) as { doc?: unknown }[]) cleanDoc(row.doc);
  sendJson(ctx.res, 200, r);
}

export async function bulkDocs(ctx: Ctx, name: string): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  await requireReader(ctx, name);
  const body = await readJsonObject(ctx.req, ctx.maxBody);
  if (!Array.isArray(body.docs)) throw badRequest('docs must be an array');
  if (body.docs.length > 100_000) throw badRequest('docs holds more than 100000 documents');
  const newEdits = body.new_edits === undefined ? true : body.new_edits;
  if (typeof newEdits !== 'boolean') throw badRequest('new_edits must be true or false');
  sendJson(ctx.res, 201, await writeDocs(ctx, name, body.docs, newEdits));
}

export async function revsDiff(ctx: Ctx, name: string): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  await requireReader(ctx, name);
  const body = await readJsonObject(ctx.req, ctx.maxBody);
  for (const [id, revs] of Object.entries(body)) {
    if (!Array.isArray(revs) || revs.length > 10_000) throw badRequest(`revisions of ${id.slice(0, 80)} must be an array`);
    revs.forEach((r) => checkRev(r));
  }
  sendJson(ctx.res, 200, await ctx.store.get(name).revsDiff(body as PouchDB.Core.RevisionDiffOptions));
}

export async function security(ctx: Ctx, name: string): Promise<void> {
  ctx.store.get(name);
  if (ctx.method === 'GET') {
    await requireReader(ctx, name);
    sendJson(ctx.res, 200, await ctx.store.getSecurity(name));
    return;
  }
  if (ctx.method !== 'PUT') throw methodNotAllowed('GET,PUT');
  await requireDbAdmin(ctx, name);
  await ctx.store.putSecurity(name, await readJsonObject(ctx.req, 1024 * 1024));
  sendJson(ctx.res, 200, { ok: true });
}

export async function ensureFullCommit(ctx: Ctx, name: string): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  await requireReader(ctx, name);
  sendJson(ctx.res, 201, { ok: true, instance_start_time: '0' });
}

export async function revsLimit(ctx: Ctx, name: string): Promise<void> {
  if (ctx.method === 'GET') {
    await requireReader(ctx, name);
    sendJson(ctx.res, 200, 1000);
    return;
  }
  if (ctx.method !== 'PUT') throw methodNotAllowed('GET,PUT');
  await requireDbAdmin(ctx, name);
  sendJson(ctx.res, 200, { ok: true });
}

export async function compact(ctx: Ctx, name: string, what: 'compact' | 'view_cleanup'): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  await requireDbAdmin(ctx, name);
  const db = ctx.store.get(name);
  await (what === 'compact' ? db.compact() : db.viewCleanup());
  sendJson(ctx.res, 202, { ok: true });
}

/**
 * `GET /{db}/_design/{ddoc}/_info`, which Fauxton's design document "Metadata" page shows. PouchDB
 * builds a view index lazily when the view is queried and keeps no statistics about it, so the
 * counters are zero and nothing is ever running; the signature is an md5 of the views and language.
 */
export async function designInfo(ctx: Ctx, name: string, ddoc: string): Promise<void> {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,HEAD');
  await requireReader(ctx, name);
  const doc = (await ctx.store.get(name).get(`_design/${ddoc}`)) as { language?: unknown; views?: unknown };
  const language = typeof doc.language === 'string' ? doc.language : 'javascript';
  sendJson(ctx.res, 200, {
    name: ddoc,
    view_index: {
      compact_running: false,
      updater_running: false,
      language,
      purge_seq: 0,
      update_seq: 0,
      signature: createHash('md5').update(JSON.stringify({ language, views: doc.views ?? {} })).digest('hex'),
      sizes: { active: 0, external: 0, file: 0 },
      updates_pending: { minimum: 0, preferred: 0, total: 0 },
      waiting_clients: 0,
      waiting_commit: false,
    },
  });
}
