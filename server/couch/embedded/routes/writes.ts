// The one path every document write takes: id rules, design-doc and _users rules, validate_doc_update.
// Direct PUTs, _bulk_docs, replication (new_edits=false) and attachment uploads all come through here.
import { randomUUID } from 'node:crypto';
import { CouchError, badRequest, forbidden } from '../../errors.ts';
import { isObject } from '../../http.ts';
import { type Ctx, isDbAdmin } from '../context.ts';
import { USERS_DB, USER_PREFIX, credentialsChanged } from '../auth.ts';
import { attachmentNameProblem, contentTypeProblem } from '../attachments.ts';
import { REPLICATOR_DB, admitReplicatorDoc } from '../replicator/doc-rules.ts';

/**
 * CouchDB's rule for a revision (couch_doc:parse_rev): `N-id`, N an integer, id any string (32
 * characters must be hex, CouchDB stores those as 16 bytes). Bounds of ours: N a safe integer, and a
 * non-empty id except for a replicated write (`new_edits=false`), where CouchDB and PouchDB 9 both take
 * a bare `1-` (PouchDB's suite, "7829 bare rev 1- with new_edits=false").
 */
export function revProblem(rev: unknown, allowEmptyId = false): string | null {
  if (typeof rev !== 'string') return 'Invalid rev format';
  const dash = rev.indexOf('-');
  const pos = rev.slice(0, dash);
  const id = rev.slice(dash + 1);
  if (dash <= 0 || !/^\d{1,16}$/.test(pos) || !Number.isSafeInteger(Number(pos)) || (id === '' && !allowEmptyId)) return 'Invalid rev format';
  if (id.length === 32 && !/^[0-9a-fA-F]{32}$/.test(id)) return 'Invalid rev format';
  return null;
}

/** A revision from a request (`rev=`, `_rev`, open_revs…): 400 bad_request "Invalid rev format" as CouchDB. */
export function checkRev(rev: unknown, _what = 'rev'): string {
  const problem = revProblem(rev);
  if (problem) throw badRequest(problem);
  return rev as string;
}

/** A revision as an ETag header can carry it: a revision may hold any character, a header may not. */
export const revEtag = (rev: unknown) => `"${String(rev ?? '').replace(/[^\x20-\x7e]|"/g, '')}"`;

/** A string JSON can carry but UTF-8 cannot (CouchDB: "must be valid UTF-8"). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const illegalDocId = (reason: string) => new CouchError(400, 'illegal_docid', reason);

/** CouchDB's document id rule (couch_doc:validate_docid), with its `illegal_docid` answers. */
export function checkDocId(id: unknown): string {
  if (typeof id !== 'string') throw illegalDocId('Document id must be a string');
  if (id.length === 0) throw illegalDocId('Document id must not be empty');
  if (id === '_design/' || id === '_local/') throw illegalDocId(`Illegal document id \`${id}\``);
  // A bound of ours (CouchDB's max_document_id_length is unbounded by default).
  if (id.length > 4096) throw illegalDocId('Document id is too long');
  if (LONE_SURROGATE.test(id)) throw illegalDocId('Document id must be valid UTF-8');
  if (id.startsWith('_') && !id.startsWith('_design/') && !id.startsWith('_local/')) throw illegalDocId('Only reserved document ids may start with underscore.');
  return id;
}

const docValidation = (reason: string) => new CouchError(400, 'doc_validation', reason);

/**
 * A refusal by one of our own rules on top of CouchDB's (attachment content types, digests, names with
 * control characters: they become response headers and URLs). CouchDB would store such a document, so
 * in `_bulk_docs` it fails that document alone, as a write failure, and the others are written; what
 * CouchDB itself refuses fails the whole request, as there.
 */
class OwnRule extends CouchError {}
const ownRule = (reason: string, error = 'doc_validation') => new OwnRule(400, error, reason);

function checkRevisions(v: unknown, replicated: boolean): void {
  if (!isObject(v)) throw docValidation('Bad special document member: _revisions');
  const { start, ids } = v;
  if (typeof start !== 'number' || !Number.isSafeInteger(start)) throw docValidation("_revisions.start isn't an integer.");
  if (!Array.isArray(ids)) throw docValidation("_revisions.ids isn't a array.");
  for (const i of ids) {
    if (typeof i !== 'string') throw docValidation("RevId isn't a string");
    if (i.length === 32 && !/^[0-9a-fA-F]{32}$/.test(i)) throw docValidation("RevId isn't a valid hexadecimal");
  }
  // Ours, for replicated writes (elsewhere `_revisions` is dropped, as CouchDB ignores it): PouchDB builds
  // a broken revision tree (or throws out of a callback) from these.
  if (replicated && (start < 1 || ids.length === 0 || ids.length > start || ids.length > 10_000 || ids.some((i) => i === ''))) {
    throw docValidation('_revisions.ids must be a non-empty array of at most start (>= 1) non-empty revision ids');
  }
}

function checkAttachments(v: unknown): void {
  if (!isObject(v)) throw docValidation('Bad special document member: _attachments');
  for (const [name, att] of Object.entries(v)) {
    const what = `_attachments.${JSON.stringify(name.slice(0, 80)).slice(1, -1)}`;
    // CouchDB's rule (chttpd_db:validate_attachment_name), for every attachment, stubs included.
    if (name.startsWith('_')) throw badRequest(`Attachment name '${name.slice(0, 200)}' starts with prohibited character '_'`);
    if (LONE_SURROGATE.test(name)) throw badRequest('Attachment name is not UTF-8 encoded');
    // Stubs keep the names already stored (served robustly, documents.ts); new data gets our rule.
    const nameProblem = isObject(att) && att.stub === true ? null : attachmentNameProblem(name);
    if (nameProblem) throw ownRule(`${what}: the attachment name ${nameProblem}`);
    if (!isObject(att)) throw ownRule(`${what} must be an object`);
    if (att.content_type !== undefined) {
      const problem = contentTypeProblem(att.content_type);
      if (problem) throw ownRule(`${what}.content_type ${problem}`);
    }
    // Served as the attachment's ETag: printable ASCII only, like content_type.
    if (att.digest !== undefined && (typeof att.digest !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(att.digest))) throw ownRule(`${what}.digest must be a digest like md5-<base64> (printable ASCII)`);
    for (const k of ['length', 'revpos'] as const) {
      if (att[k] !== undefined && (typeof att[k] !== 'number' || !Number.isSafeInteger(att[k]) || (att[k] as number) < 0)) throw ownRule(`${what}.${k} must be a non-negative integer`);
    }
    if (att.stub === true) continue;
    if (typeof att.data !== 'string') throw ownRule(`${what} needs data (base64) or stub: true`);
    // CouchDB's check (couch_att:inline_from_json); PouchDB would report it as a 500 mid-write.
    if (Buffer.from(att.data, 'base64').toString('base64') !== att.data) throw badRequest(`Invalid attachment data for ${name.slice(0, 200)}`);
  }
}

/**
 * CouchDB's rules for the special `_` members (couch_doc:transfer_fields), checked before PouchDB sees
 * them: malformed ones make PouchDB throw out of a callback (killing the process) or corrupt the
 * revision tree. `_access` and the replicator's `_replication_*` members are kept as data; the members
 * CouchDB ignores on write are dropped; any other `_` member is a 400 doc_validation.
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
      case '_access':
      case '_replication_id':
      case '_replication_state':
      case '_replication_state_time':
      case '_replication_state_reason':
      case '_replication_stats':
        break;
      case '_deleted':
        if (typeof v !== 'boolean') throw docValidation('Bad special document member: _deleted');
        break;
      case '_attachments':
        checkAttachments(v);
        if (String(doc._id).startsWith('_local/')) drop(key); // CouchDB keeps no attachments on _local documents
        break;
      case '_revisions':
        checkRevisions(v, !newEdits);
        if (newEdits) drop(key); // only replication (new_edits=false) gives it meaning here
        break;
      case '_conflicts':
      case '_deleted_conflicts':
      case '_revs_info':
      case '_local_seq':
        drop(key); // ignored on write, as CouchDB does
        break;
      default:
        throw docValidation(`Bad special document member: ${key.slice(0, 200)}`);
    }
  }
  return out;
}

/**
 * What CouchDB checks while it parses a request's documents (couch_doc:from_json_obj_validate and
 * chttpd_db's validate_revs): a failure here fails the whole request, `_bulk_docs` included. Returns
 * the document as it will be written (an id given, ignored members dropped).
 */
export function parseDoc(ctx: Ctx, dbName: string, raw: unknown, newEdits: boolean): Record<string, unknown> {
  if (!isObject(raw)) throw badRequest('Document must be a JSON object');
  let doc = raw;
  if (doc._id === undefined) doc = { ...doc, _id: randomUUID().replace(/-/g, '') };
  const id = checkDocId(doc._id);
  if (doc._rev !== undefined && revProblem(doc._rev, !newEdits)) throw badRequest('Invalid rev format');
  doc = checkSpecialMembers(doc, newEdits);
  if (!newEdits && doc._rev === undefined && doc._revisions === undefined) {
    throw badRequest('When `new_edits: false`, the document needs `_rev` or `_revisions` specified');
  }
  if (!newEdits && !id.startsWith('_local/') && /^0+-/.test(String(doc._rev ?? '1-'))) throw badRequest('Invalid rev format'); // PouchDB's tree has no position 0
  try {
    ctx.quota?.checkDoc(dbName, doc); // 413 document_too_large for the request, as CouchDB's max_document_size
  } catch (err) {
    // The node databases' attachment limit is ours: that document alone.
    if (err instanceof CouchError && err.error === 'attachment_too_large') throw new OwnRule(err.status, err.error, err.reason);
    throw err;
  }
  return doc;
}

/**
 * What is checked per document once the request is parsed, as CouchDB does in its update (a refusal
 * is that document's error): design documents need a database admin, `_users` documents are prepared
 * (hashed), validate_doc_update runs. Returns the document to store.
 */
async function admitDoc(ctx: Ctx, dbName: string, doc: Record<string, unknown>, oldDoc: Record<string, unknown> | null, newEdits: boolean): Promise<Record<string, unknown>> {
  const id = String(doc._id);
  const sec = await ctx.store.getSecurity(dbName);
  // CouchDB 3.5: 403 forbidden for a logged-in non-admin (checked against 3.5.0), 401 for anonymous.
  if (id.startsWith('_design/') && !isDbAdmin(ctx.userCtx, sec)) {
    throw ctx.userCtx.name === null ? new CouchError(401, 'unauthorized', 'You are not a db or server admin.') : new CouchError(403, 'forbidden', 'You are not a db or server admin.');
  }
  if (dbName === USERS_DB && !id.startsWith('_local/')) doc = await ctx.auth.prepareUserDoc(doc, ctx.userCtx, oldDoc);
  if (dbName === REPLICATOR_DB) doc = admitReplicatorDoc(doc, ctx.userCtx, newEdits);
  await ctx.validator.check(dbName, doc, oldDoc, ctx.userCtx, sec);
  return doc;
}

export interface WriteResult { id: string; ok?: true; rev?: string; error?: string; reason?: string }

/**
 * Writes many documents; the results line up with `docs` (new_edits=false: only failures, as CouchDB).
 * A document CouchDB would refuse to parse fails the whole request (thrown); the rest is per document.
 */
export async function writeDocs(ctx: Ctx, dbName: string, docs: unknown[], newEdits: boolean): Promise<WriteResult[]> {
  const db = ctx.store.get(dbName);
  const results: (WriteResult | null)[] = docs.map(() => null);
  const parsed: (Record<string, unknown> | null)[] = docs.map((raw, i) => {
    const doc = isObject(raw) && raw._id === undefined ? { ...raw, _id: randomUUID().replace(/-/g, '') } : raw;
    try {
      return parseDoc(ctx, dbName, doc, newEdits);
    } catch (err) {
      if (!(err instanceof OwnRule)) throw err;
      results[i] = { id: String((doc as { _id: unknown })._id), error: err.error, reason: err.reason };
      return null;
    }
  });
  await ctx.quota?.checkWrite(dbName, parsed.filter((d) => d !== null), (name) => ctx.store.diskSize(name));
  const ids = parsed.map((d) => (d ? String(d._id) : ''));
  // _users: the stored documents are needed for a user's own update and to end stale requests.
  const olds = dbName === USERS_DB ? await storedDocs(db, ids) : await ctx.validator.oldDocs(dbName, ids);
  const admitted: { index: number; doc: Record<string, unknown> }[] = [];
  for (let i = 0; i < parsed.length; i++) {
    const doc = parsed[i];
    if (!doc) continue;
    try {
      admitted.push({ index: i, doc: await admitDoc(ctx, dbName, doc, olds.get(ids[i]) ?? null, newEdits) });
    } catch (err) {
      const e = err instanceof CouchError ? err : badRequest(String((err as Error).message));
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
    const d = doc as { _id: string; _rev?: string; _revisions?: { start: number; ids: string[] } };
    return { id: String(d._id), rev: d._revisions ? `${d._revisions.start}-${d._revisions.ids[0]}` : String(d._rev) };
  }
  if (r.error) {
    const status = r.error === 'conflict' ? 409 : r.error === 'forbidden' ? 403 : r.error === 'unauthorized' ? 401 : /_too_large$/.test(r.error) ? 413 : 400;
    throw new CouchError(status, r.error, r.reason ?? '');
  }
  return { id: r.id, rev: r.rev! };
}

export { forbidden };
