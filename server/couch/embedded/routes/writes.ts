// The one path every document write takes: id rules, design-doc and _users rules, validate_doc_update.
// Direct PUTs, _bulk_docs, replication (new_edits=false) and attachment uploads all come through here.
import { randomUUID } from 'node:crypto';
import { CouchError, badRequest, forbidden } from '../../errors.ts';
import { isObject } from '../../http.ts';
import { type Ctx, isDbAdmin } from '../context.ts';
import { USERS_DB, USER_PREFIX, credentialsChanged } from '../auth.ts';
import { attachmentNameProblem, contentTypeProblem } from '../attachments.ts';
import { REPLICATOR_DB, admitReplicatorDoc } from '../replicator/doc-rules.ts';

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

const REV_ID_RE = /^[0-9a-zA-Z]{1,64}$/;
const docValidation = (reason: string) => new CouchError(400, 'doc_validation', reason);

function checkRevisions(v: unknown): void {
  if (!isObject(v)) throw docValidation('_revisions must be an object {start, ids}');
  const { start, ids } = v;
  if (typeof start !== 'number' || !Number.isSafeInteger(start) || start < 1) throw docValidation('_revisions.start must be a positive integer');
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > start || ids.length > 10_000 || !ids.every((i) => typeof i === 'string' && REV_ID_RE.test(i))) {
    throw docValidation('_revisions.ids must be a non-empty array of at most start revision ids');
  }
}

function checkAttachments(v: unknown): void {
  if (!isObject(v)) throw docValidation('_attachments must be an object');
  for (const [name, att] of Object.entries(v)) {
    const what = `_attachments.${JSON.stringify(name.slice(0, 80)).slice(1, -1)}`;
    // Stubs keep the names already stored (served robustly, documents.ts); new data gets today's rule.
    const nameProblem = isObject(att) && att.stub === true ? null : attachmentNameProblem(name);
    if (nameProblem) throw docValidation(`${what}: the attachment name ${nameProblem}`);
    if (!isObject(att)) throw docValidation(`${what} must be an object`);
    if (att.content_type !== undefined) {
      const problem = contentTypeProblem(att.content_type);
      if (problem) throw docValidation(`${what}.content_type ${problem}`);
    }
    // Served as the attachment's ETag: printable ASCII only, like content_type.
    if (att.digest !== undefined && (typeof att.digest !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(att.digest))) throw docValidation(`${what}.digest must be a digest like md5-<base64> (printable ASCII)`);
    for (const k of ['length', 'revpos'] as const) {
      if (att[k] !== undefined && (typeof att[k] !== 'number' || !Number.isSafeInteger(att[k]) || (att[k] as number) < 0)) throw docValidation(`${what}.${k} must be a non-negative integer`);
    }
    if (att.stub === true) continue;
    if (typeof att.data !== 'string') throw docValidation(`${what} needs data (base64) or stub: true`);
    // PouchDB's own check, answered here as 400 (PouchDB reports it as a 500 mid-write).
    if (Buffer.from(att.data, 'base64').toString('base64') !== att.data) throw new CouchError(400, 'bad_request', `${what}: invalid attachment data (not base64)`);
  }
}

/**
 * CouchDB's rules for the special `_` members, checked before PouchDB sees them: malformed ones make
 * PouchDB throw out of a callback (killing the process) or corrupt the revision tree.
 */
export function checkSpecialMembers(doc: Record<string, unknown>, newEdits: boolean): Record<string, unknown> {
  let out = doc;
  const drop = (key: string) => {
    if (out === doc) out = { ...doc };
    delete out[key];
  };
  for (const key of Object.keys(doc)) {
    if (!key.startsWith('_')) continue;
    const v = doc[key];
    switch (key) {
      case '_id':
      case '_rev':
        break;
      case '_deleted':
        if (typeof v !== 'boolean') throw docValidation('_deleted must be true or false');
        break;
      case '_attachments':
        checkAttachments(v);
        break;
      case '_revisions':
        checkRevisions(v);
        if (newEdits) drop(key); // only replication (new_edits=false) gives it meaning here
        break;
      case '_conflicts':
      case '_deleted_conflicts':
      case '_revs_info':
      case '_local_seq':
        drop(key); // ignored on write, as CouchDB does
        break;
      default:
        throw docValidation(`Bad special document member: ${key.slice(0, 80)}`);
    }
  }
  return out;
}

/** Checks one document for a write by the caller; returns the document to store (users get hashed). */
export async function admitDoc(ctx: Ctx, dbName: string, raw: unknown, oldDoc: Record<string, unknown> | null, newEdits: boolean): Promise<Record<string, unknown>> {
  if (!isObject(raw)) throw badRequest('each document must be a JSON object');
  let doc = raw;
  if (doc._id === undefined) doc = { ...doc, _id: randomUUID().replace(/-/g, '') };
  const id = checkDocId(doc._id);
  if (doc._rev !== undefined) checkRev(doc._rev, '_rev');
  doc = checkSpecialMembers(doc, newEdits);
  ctx.quota?.checkDoc(dbName, doc);
  if (!newEdits && doc._rev === undefined && !id.startsWith('_local/')) throw badRequest('new_edits=false needs _rev on every document');
  const sec = await ctx.store.getSecurity(dbName);
  if (id.startsWith('_design/') && !isDbAdmin(ctx.userCtx, sec)) throw new CouchError(401, 'unauthorized', 'You are not a db or server admin.');
  if (dbName === USERS_DB) doc = await ctx.auth.prepareUserDoc(doc, ctx.userCtx, oldDoc);
  if (dbName === REPLICATOR_DB) doc = admitReplicatorDoc(doc, ctx.userCtx, newEdits);
  await ctx.validator.check(dbName, doc, oldDoc, ctx.userCtx, sec);
  return doc;
}

export interface WriteResult { id: string; ok?: true; rev?: string; error?: string; reason?: string }

/** Writes many documents; the results line up with `docs` (new_edits=false: only failures, as CouchDB). */
export async function writeDocs(ctx: Ctx, dbName: string, docs: unknown[], newEdits: boolean): Promise<WriteResult[]> {
  const db = ctx.store.get(dbName);
  await ctx.quota?.checkWrite(dbName, docs, (name) => ctx.store.diskSize(name));
  const ids = docs.map((d) => (isObject(d) && typeof d._id === 'string' ? d._id : ''));
  // _users: the stored documents are needed for a user's own update and to end stale requests.
  const olds = dbName === USERS_DB ? await storedDocs(db, ids) : await ctx.validator.oldDocs(dbName, ids);
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
    // A design document written here changes the rules for the very next write: drop the compiled ones now.
    if (admitted.some((a) => String(a.doc._id).startsWith('_design/'))) ctx.validator.forget(dbName);
    const written = await ctx.store.writing(dbName, () => db.bulkDocs(admitted.map((a) => a.doc) as PouchDB.Core.PutDocument<object>[], { new_edits: newEdits } as PouchDB.Core.BulkDocsOptions));
    if (dbName === USERS_DB) endStaleRequests(ctx, admitted.map((a) => a.doc), olds);
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

async function storedDocs(db: PouchDB.Database, ids: string[]): Promise<Map<string, Record<string, unknown> | null>> {
  const out = new Map<string, Record<string, unknown> | null>();
  const keys = [...new Set(ids.filter((id) => id && !id.startsWith('_local/')))];
  if (!keys.length) return out;
  for (const row of (await db.allDocs({ keys, include_docs: true })).rows) {
    const r = row as { key: string; doc?: Record<string, unknown> | null };
    out.set(r.key, r.doc ?? null);
  }
  return out;
}

/**
 * A user whose password or roles changed (rotated, revoked, removed; here or replicated from a linked
 * site) loses its requests in progress at once (but this one: a user changing its own password gets its answer): an open continuous `_changes` must not outlive the
 * credential it was opened with. The next request authenticates against the new document.
 */
function endStaleRequests(ctx: Ctx, docs: Record<string, unknown>[], olds: Map<string, Record<string, unknown> | null>): void {
  for (const doc of docs) {
    const id = String(doc._id);
    if (id.startsWith(USER_PREFIX) && credentialsChanged(doc, olds.get(id) ?? null)) ctx.auth.live.cut(id.slice(USER_PREFIX.length), ctx.req);
  }
}

/** Single-document write: throws the document's error instead of returning it. */
export async function writeOne(ctx: Ctx, dbName: string, doc: unknown, newEdits = true): Promise<{ id: string; rev: string }> {
  const [r] = await writeDocs(ctx, dbName, [doc], newEdits);
  if (!newEdits) {
    if (r) throw new CouchError(r.error === 'forbidden' ? 403 : /_too_large$/.test(r.error ?? '') ? 413 : 400, r.error!, r.reason ?? '');
    return { id: String((doc as { _id: string })._id), rev: String((doc as { _rev: string })._rev) };
  }
  if (r.error) {
    const status = r.error === 'conflict' ? 409 : r.error === 'forbidden' ? 403 : r.error === 'unauthorized' ? 401 : /_too_large$/.test(r.error) ? 413 : 400;
    throw new CouchError(status, r.error, r.reason ?? '');
  }
  return { id: r.id, rev: r.rev! };
}

export { forbidden };
