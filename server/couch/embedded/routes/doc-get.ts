// GET/HEAD of one document, as CouchDB answers it: JSON by default; `open_revs` with
// `Accept: multipart/mixed` (CouchDB's replicator) one part per revision, a revision with attachment
// bodies as a nested multipart/related part; `attachments=true` with `Accept: multipart/related` the
// document and its attachment bodies. `atts_since` (which implies attachments, as in CouchDB) sends only
// the attachments newer than the caller's revisions. See docs/couchdb.md "Multipart and _bulk_get".
import { badRequest } from '../../errors.ts';
import { sendJson } from '../../http.ts';
import { type Ctx, isDbAdmin } from '../context.ts';
import { REPLICATOR_DB, redactReplicatorDoc } from '../replicator/doc-rules.ts';
import { type AttMode, openDoc, readDoc } from '../open-doc.ts';
import { acceptsExplicitly, newBoundary, relatedChunks, relatedType, writeChunks } from '../multipart/write.ts';
import { requireDocReader } from './doc-access.ts';
import { checkRev, revEtag } from './writes.ts';

type RevResult = { ok: Record<string, unknown> } | { missing: string };

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
    if (!Array.isArray(attsSince) || attsSince.length > 1000) throw badRequest('atts_since must be a JSON array of revisions');
    attsSince.forEach((r) => checkRev(r, 'atts_since'));
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

export async function getDocument(ctx: Ctx, dbName: string, id: string): Promise<void> {
  await requireDocReader(ctx, dbName, id);
  const db = ctx.store.get(dbName);
  const { res } = ctx;
  const { atts_since: attsSince, ...o } = getOptions(ctx) as Record<string, unknown> & { atts_since?: string[] };
  const head = ctx.method === 'HEAD';
  const openRevs = o.open_revs !== undefined;
  const mixed = !head && openRevs && acceptsExplicitly(ctx.req, 'multipart/mixed');
  const wantData = !head && (o.attachments === true || attsSince !== undefined);
  // CouchDB opens the winning revision when `latest` comes with `rev` (chttpd_db db_doc_req).
  if (o.latest === true && !openRevs) delete o.rev;
  const keepRevisions = o.revs === true;
  if (head) {
    const doc = (await readDoc(db, id, o)) as Record<string, unknown>;
    res.writeHead(200, { 'Content-Type': 'application/json', ETag: revEtag(doc._rev) });
    res.end();
    return;
  }
  // Attachment data is read per attachment by openDoc, after atts_since has said which are wanted.
  const read = { ...o, attachments: false, revs: keepRevisions || attsSince !== undefined };
  let got = (await readDoc(db, id, read)) as Record<string, unknown> | RevResult[];
  if (dbName === REPLICATOR_DB) {
    // Others' credentials are hidden on every read of one document, open_revs included.
    const admin = isDbAdmin(ctx.userCtx, await ctx.store.getSecurity(dbName));
    const redact = (d: Record<string, unknown>) => redactReplicatorDoc(d, ctx.userCtx, admin);
    got = Array.isArray(got) ? got.map((r) => ('ok' in r ? { ok: redact(r.ok) } : r)) : redact(got);
  }
  if (!Array.isArray(got)) {
    const mode: AttMode = !wantData ? 'stub' : acceptsExplicitly(ctx.req, 'multipart/related') ? 'follows' : 'inline';
    const opened = await openDoc(db, got, { mode, attsSince, keepRevisions });
    const etag = revEtag(got._rev);
    if (!opened.bodies.length) return sendJson(res, 200, opened.json, { ETag: etag });
    const boundary = newBoundary();
    const chunks = relatedChunks(boundary, JSON.stringify(opened.json), opened.bodies);
    res.writeHead(200, { 'Content-Type': relatedType(boundary), 'Content-Length': chunks.reduce((n, c) => n + c.length, 0), ETag: etag, 'Cache-Control': 'must-revalidate' });
    await streamOrCut(ctx, chunks);
    return;
  }
  if (!mixed) {
    const out: unknown[] = [];
    for (const r of got) out.push('ok' in r ? { ok: (await openDoc(db, r.ok, { mode: wantData ? 'inline' : 'stub', attsSince, keepRevisions })).json } : r);
    return sendJson(res, 200, out);
  }
  await sendRevsMixed(ctx, db, got, attsSince, keepRevisions);
}

/** CouchDB's send_docs_multipart: one part per revision, missing ones as `{"missing": rev}` error parts. */
async function sendRevsMixed(ctx: Ctx, db: PouchDB.Database, results: RevResult[], attsSince: string[] | undefined, keepRevisions: boolean): Promise<void> {
  const outer = newBoundary();
  const inner = newBoundary();
  ctx.res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary="${outer}"`, 'Cache-Control': 'must-revalidate' });
  const parts = async function* () {
    yield [Buffer.from(`--${outer}`)];
    for (const r of results) {
      if ('ok' in r) {
        // One revision's attachment bodies in memory at a time.
        const opened = await openDoc(db, r.ok, { mode: 'follows', attsSince, keepRevisions });
        const type = opened.bodies.length ? relatedType(inner) : 'application/json';
        yield [Buffer.from(`\r\nContent-Type: ${type}\r\n\r\n`), ...relatedChunks(inner, JSON.stringify(opened.json), opened.bodies), Buffer.from(`\r\n--${outer}`)];
      } else {
        yield [Buffer.from(`\r\nContent-Type: application/json; error="true"\r\n\r\n${JSON.stringify({ missing: r.missing })}\r\n--${outer}`)];
      }
    }
    yield [Buffer.from('--')];
  };
  await streamOrCut(ctx, parts());
}

/**
 * Writes a multipart answer whose status is already sent; a failure midway cuts the connection, so the
 * client sees a broken transfer (and retries) instead of a well-formed answer with documents missing.
 */
async function streamOrCut(ctx: Ctx, chunks: Buffer[] | AsyncIterable<Buffer[]>): Promise<void> {
  try {
    if (Array.isArray(chunks)) await writeChunks(ctx.res, chunks);
    else for await (const c of chunks) await writeChunks(ctx.res, c);
    ctx.res.end();
  } catch (err) {
    ctx.res.destroy();
    throw err;
  }
}
