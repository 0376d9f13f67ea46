// The one path every document write takes: id rules, design-doc and _users rules, validate_doc_update.
// Direct PUTs, _bulk_docs, replication (new_edits=false) and attachment uploads all come through here.
import { randomUUID } from 'node:crypto';
import { CouchError, badRequest, forbidden } from '../../errors.ts';
import { isObject } from '../../http.ts';
import { type Ctx, isDbAdmin } from '../context.ts';
import { USERS_DB } from '../auth.ts';

const REV_RE = /^[1-9]\d{0,9}-[0-9a-zA-Z]{1,64}$/;

export function checkRev(rev: unknown, what = 'rev'): string {
  if (typeof rev !== 'string' || !REV_RE.test(rev)) throw badRequest(`${what}: invalid revision format`);
  return rev;
}

export function checkDocId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0) throw badRequest('document id must be a non-empty string');
  if (id.length > 4096) throw badRequest('document id is longer than 4096 characters');
  if (id.startsWith('_') && !id.startsWith('_design/') && !id.startsWith('_local/')) throw badRequest('Only reserved document ids may start with underscore.');
  if (id === '_design/' || id === '_local/') throw badRequest('document id needs a name after the prefix');
  return id;
}

/** Checks one document for a write by the caller; returns the document to store (users get hashed). */
export async function admitDoc(ctx: Ctx, dbName: string, raw: unknown, oldDoc: Record<string, unknown> | null, newEdits: boolean): Promise<Record<string, unknown>> {
  if (!isObject(raw)) throw badRequest('each document must be a JSON object');
  let doc = raw;
  if (doc._id === undefined) doc = { ...doc, _id: randomUUID().replace(/-/g, '') };
  const id = checkDocId(doc._id);
  if (doc._rev !== undefined) checkRev(doc._rev, '_rev');
  if (!newEdits && doc._rev === undefined && !id.startsWith('_local/')) throw badRequest('new_edits=false needs _rev on every document');
  const sec = await ctx.store.getSecurity(dbName);
  if (id.startsWith('_design/') && !isDbAdmin(ctx.userCtx, sec)) throw new CouchError(401, 'unauthorized', 'You are not a db or server admin.');
  if (dbName === USERS_DB) doc = await ctx.auth.prepareUserDoc(doc, ctx.userCtx);
  await ctx.validator.check(dbName, doc, oldDoc, ctx.userCtx, sec);
  return doc;
}

export interface WriteResult { id: string; ok?: true; rev?: string; error?: string; reason?: string }

/** Writes many documents; the results line up with `docs` (new_edits=false: only failures, as CouchDB). */
export async function writeDocs(ctx: Ctx, dbName: string, docs: unknown[], newEdits: boolean): Promise<WriteResult[]> {
  const db = ctx.store.get(dbName);
  const ids = docs.map((d) => (isObject(d) && typeof d._id === 'string' ? d._id : ''));
  const olds = await ctx.validator.oldDocs(dbName, ids);
  const admitted: { index: number; doc: Record<string, unknown> }[] = [];
  const results: (WriteResult | null)[] = docs.map(() => null);
  for (let i = 0; i < docs.length; i++) {
    try {
      admitted.push({ index: i, doc: await admitDoc(ctx, dbName, docs[i], olds.get(ids[i]) ?? null, newEdits) });
    } catch (err) {
      const e = err instanceof CouchError ? err : badRequest(String((err as Error).message));
      if (e.status === 400 && !ids[i]) throw e; // a malformed entry fails the request, as CouchDB does
      results[i] = { id: ids[i], error: e.error, reason: e.reason };
    }
  }
  if (admitted.length) {
    const written = await db.bulkDocs(admitted.map((a) => a.doc) as PouchDB.Core.PutDocument<object>[], { new_edits: newEdits } as PouchDB.Core.BulkDocsOptions);
    if (newEdits) {
      written.forEach((w, k) => {
        const r = w as { id?: string; rev?: string; ok?: boolean; error?: unknown; name?: string; message?: string; reason?: string; status?: number };
        const id = String(admitted[k].doc._id);
        results[admitted[k].index] = r.ok ? { ok: true, id, rev: r.rev } : { id, error: r.name ?? String(r.error ?? 'error'), reason: r.reason ?? r.message ?? '' };
      });
    } else {
      for (const w of written as { error?: unknown; id?: string; name?: string; reason?: string; message?: string }[]) {
        if (w.error) results.push({ id: String(w.id), error: w.name ?? 'error', reason: w.reason ?? w.message ?? '' });
      }
    }
  }
  if (!newEdits) return results.filter((r): r is WriteResult => r !== null && r.error !== undefined);
  return results as WriteResult[];
}

/** Single-document write: throws the document's error instead of returning it. */
export async function writeOne(ctx: Ctx, dbName: string, doc: unknown, newEdits = true): Promise<{ id: string; rev: string }> {
  const [r] = await writeDocs(ctx, dbName, [doc], newEdits);
  if (!newEdits) {
    if (r) throw new CouchError(r.error === 'forbidden' ? 403 : 400, r.error!, r.reason ?? '');
    return { id: String((doc as { _id: string })._id), rev: String((doc as { _rev: string })._rev) };
  }
  if (r.error) {
    const status = r.error === 'conflict' ? 409 : r.error === 'forbidden' ? 403 : r.error === 'unauthorized' ? 401 : 400;
    throw new CouchError(status, r.error, r.reason ?? '');
  }
  return { id: r.id, rev: r.rev! };
}

export { forbidden };
