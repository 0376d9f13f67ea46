// Documents, local documents and attachments: GET/HEAD/PUT/POST/DELETE.
import { badRequest, conflict, methodNotAllowed, forbidden, notFound } from '../../errors.ts';
import { isObject, readBody, readJsonObject, sendJson } from '../../http.ts';
import { type Ctx, isDbAdmin, isServerAdmin, requireReader } from '../context.ts';
import { USERS_DB, USER_PREFIX } from '../auth.ts';
import { checkDocId, checkRev, writeOne } from './writes.ts';
import { ATTACHMENT_HEADERS, attachmentNameProblem, cleanDoc, servedContentType } from '../attachments.ts';
import { attachmentLimit, rangeResponse } from './range.ts';
import { REPLICATOR_DB, redactReplicatorDoc } from '../replicator/doc-rules.ts';

const headerOf = (h: string | string[] | undefined) => (Array.isArray(h) ? h.join(',') : h);

function getOptions(ctx: Ctx): Record<string, unknown> {
  const q = ctx.query;
  const o: Record<string, unknown> = {};
  const rev = q.str('rev');
  if (rev !== undefined) o.rev = checkRev(rev);
  for (const flag of ['revs', 'revs_info', 'conflicts', 'deleted_conflicts', 'attachments', 'latest', 'local_seq', 'att_encoding_info'] as const) {
    const v = q.bool(flag);
    if (v !== undefined) o[flag] = v;
  }
  if (q.bool('meta')) Object.assign(o, { conflicts: true, deleted_conflicts: true, revs_info: true });
  const attsSince = q.json('atts_since');
  if (attsSince !== undefined) {
    if (!Array.isArray(attsSince) || !attsSince.every((r) => typeof r === 'string')) throw badRequest('atts_since must be a JSON array of revisions');
    o.atts_since = attsSince;
  }
  const openRevs = q.str('open_revs');
  if (openRevs !== undefined) {
    if (openRevs === 'all') o.open_revs = 'all';
    else {
      const revs = q.json('open_revs');
      if (!Array.isArray(revs) || revs.length > 1000) throw badRequest('open_revs must be "all" or a JSON array of revisions');
      revs.forEach((r) => checkRev(r, 'open_revs'));
      o.open_revs = revs;
    }
  }
  o.binary = false;
  return o;
}

/** _users: a non-admin may read only their own user document. */
async function requireDocReader(ctx: Ctx, dbName: string, id: string): Promise<void> {
  if (dbName === USERS_DB && ctx.userCtx.name !== null && !isServerAdmin(ctx.userCtx)) {
    if (id !== USER_PREFIX + ctx.userCtx.name) throw forbidden('You may only read your own user document.');
    return;
  }
  await requireReader(ctx, dbName);
}

export async function document(ctx: Ctx, dbName: string, id: string): Promise<void> {
  checkDocId(id);
  const db = ctx.store.get(dbName);
  const { method, res } = ctx;
  if (method === 'GET' || method === 'HEAD') {
    await requireDocReader(ctx, dbName, id);
    let doc = (await db.get(id, getOptions(ctx))) as unknown as Record<string, unknown>;
    if (dbName === REPLICATOR_DB && !Array.isArray(doc)) doc = redactReplicatorDoc(doc, ctx.userCtx, isDbAdmin(ctx.userCtx, await ctx.store.getSecurity(dbName)));
    // open_revs answers [{ok: doc} | {missing}]; stored content_types are served sanitised (attachments.ts).
    if (Array.isArray(doc)) for (const r of doc as { ok?: unknown }[]) cleanDoc(r.ok);
    else cleanDoc(doc);
    if (method === 'HEAD') {
      res.writeHead(200, { 'Content-Type': 'application/json', ETag: `"${String(doc._rev ?? '')}"` });
      res.end();
      return;
    }
    sendJson(res, 200, doc, Array.isArray(doc) ? {} : { ETag: `"${String(doc._rev ?? '')}"` });
    return;
  }
  // A user may PUT its own _users document (auth.ts checkSelfUpdate says what it may change).
  await (method === 'PUT' ? requireDocReader(ctx, dbName, id) : requireReader(ctx, dbName));
  if (method === 'PUT') {
    const body = await readJsonObject(ctx.req, ctx.maxBody);
    if (body._id !== undefined && body._id !== id) throw badRequest('_id in the body differs from the URL');
    const rev = ctx.query.str('rev');
    const doc: Record<string, unknown> = { ...body, _id: id };
    if (rev !== undefined) doc._rev = checkRev(rev);
    const newEdits = ctx.query.bool('new_edits') ?? true;
    const r = await writeOne(ctx, dbName, doc, newEdits);
    sendJson(res, 201, { ok: true, id: r.id, rev: r.rev }, { ETag: `"${r.rev}"` });
    return;
  }
  if (method === 'DELETE') {
    const rev = ctx.query.str('rev') ?? String(ctx.req.headers['if-match'] ?? '').replace(/"/g, '');
    if (!rev) throw conflict();
    const r = await writeOne(ctx, dbName, { _id: id, _rev: checkRev(rev), _deleted: true });
    sendJson(res, 200, { ok: true, id: r.id, rev: r.rev });
    return;
  }
  throw methodNotAllowed('GET,HEAD,PUT,DELETE');
}

export async function postDocument(ctx: Ctx, dbName: string): Promise<void> {
  await requireReader(ctx, dbName);
  const body = await readJsonObject(ctx.req, ctx.maxBody);
  const r = await writeOne(ctx, dbName, body);
  sendJson(ctx.res, 201, { ok: true, id: r.id, rev: r.rev });
}


export async function attachment(ctx: Ctx, dbName: string, id: string, name: string): Promise<void> {
  checkDocId(id);
  // A new attachment's name must follow the rule; an existing one is read or deleted whatever its name
  // (stored before the rule, or by another server), so that no stored name can stop a replication.
  if (name.length > 4096 || (ctx.method === 'PUT' && attachmentNameProblem(name))) throw badRequest(`attachment name ${attachmentNameProblem(name) ?? 'is longer than 4096 characters'}`);
  await requireDocReader(ctx, dbName, id);
  const db = ctx.store.get(dbName);
  const { method, res } = ctx;
  const revParam = ctx.query.str('rev');
  const rev = revParam === undefined ? undefined : checkRev(revParam);
  if (method === 'GET' || method === 'HEAD') {
    const doc = (await db.get(id, rev ? { rev } : {})) as unknown as { _attachments?: Record<string, { content_type?: string; digest?: string }> };
    const meta = doc._attachments?.[name];
    if (!meta) throw notFound('Document is missing attachment');
    const data = (await db.getAttachment(id, name, rev ? { rev } : {})) as Buffer;
    const out = rangeResponse(headerOf(ctx.req.headers.range), data, {
      ...ATTACHMENT_HEADERS,
      'Content-Type': servedContentType(meta.content_type ?? 'application/octet-stream'),
      ETag: `"${String(meta.digest ?? '').replace(/[^\x20-\x7e]/g, '')}"`,
    });
    res.writeHead(out.status, out.headers);
    res.end(method === 'HEAD' ? undefined : out.body);
    return;
  }
  if (method !== 'PUT' && method !== 'DELETE') throw methodNotAllowed('GET,HEAD,PUT,DELETE');
  let current: Record<string, unknown> = { _id: id };
  if (rev) {
    try {
      current = (await db.get(id, { rev })) as unknown as Record<string, unknown>;
    } catch (err) {
      // A revision that is not the document's (or a document that is not there): CouchDB says 409.
      if ((err as { status?: number }).status === 404) throw conflict();
      throw err;
    }
  } else {
    try {
      await db.get(id);
      throw conflict(); // a write to an existing document needs its revision
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
    }
  }
  const atts = { ...((current._attachments as Record<string, unknown>) ?? {}) };
  for (const k of Object.keys(atts)) atts[k] = { ...(atts[k] as object), stub: true };
  cleanDoc({ _attachments: atts }); // an old, unservable content_type must not block adding another attachment
  if (method === 'PUT') {
    const data = await readBody(ctx.req, attachmentLimit(ctx.userCtx.roles, isDbAdmin(ctx.userCtx, await ctx.store.getSecurity(dbName)), ctx.maxBody));
    // No type (or an empty one, as browsers send for unknown files) is a byte stream; a bad one is a 400 in writes.ts.
    atts[name] = { content_type: ctx.req.headers['content-type'] || 'application/octet-stream', data: data.toString('base64') };
  } else {
    if (!atts[name]) throw notFound('Document is missing attachment');
    delete atts[name];
  }
  const r = await writeOne(ctx, dbName, { ...current, _attachments: atts });
  sendJson(res, method === 'PUT' ? 201 : 200, { ok: true, id: r.id, rev: r.rev });
}

export { isObject };
