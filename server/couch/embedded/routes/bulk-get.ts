// POST /{db}/_bulk_get, as CouchDB 3.5 answers it (chttpd_db bulk_get_*): one result per requested
// entry, in order; an entry without `rev` gets every leaf revision (open_revs=all), design documents
// included; errors are per entry (`{"error": {id, rev, error, reason}}`), never for the whole request.
// `attachments=true` inlines attachment data as base64; an entry's `atts_since` sends only newer
// attachments (and implies attachments, as in CouchDB); `Accept: multipart/mixed` (or multipart/related)
// gets CouchDB's multipart form with attachment bodies. Readers only (`_security`), as every read.
import { badRequest, methodNotAllowed } from '../../errors.ts';
import { isObject, readJsonObject, sendJson } from '../../http.ts';
import { type Ctx, requireReader } from '../context.ts';
import { openDoc, readDoc } from '../open-doc.ts';
import { acceptsExplicitly, newBoundary, relatedChunks, writeChunks } from '../multipart/write.ts';
import { checkDocId, checkRev } from './writes.ts';

const MAX_DOCS = 10_000;
/** Query parameters CouchDB refuses on _bulk_get (they belong in each entry, or nowhere). */
const REFUSED_PARAMS = ['open_revs', 'new_edits', 'w', 'rev', 'atts_since'];

interface ItemError { id: unknown; rev: unknown; error: string; reason: string }
type Revision = { ok: Record<string, unknown> } | { missing: string };
type Item = { id: string; attsSince: string[]; revisions: Revision[]; rev: string } | { error: ItemError };

/** Reads one entry as CouchDB's bulk_get_parse_arg does: a malformed entry is that entry's error. */
function parseEntry(d: unknown): { id: string; rev?: string; attsSince: string[] } | { error: ItemError } {
  // An empty object too: CouchDB matches `{[_ | _] = Props}`.
  if (!isObject(d) || !Object.keys(d).length) return { error: { id: null, rev: null, error: 'bad_request', reason: 'document must be a JSON object' } };
  if (d.id === undefined) return { error: { id: null, rev: null, error: 'bad_request', reason: 'document id missed' } };
  // CouchDB's validate_docid reasons for the common cases, ours (as precise) for the rest.
  const illegal = (reason: string) => ({ error: { id: d.id, rev: null, error: 'illegal_docid', reason } });
  if (typeof d.id !== 'string') return illegal('Document id must be a string');
  if (d.id === '') return illegal('Document id must not be empty');
  try {
    checkDocId(d.id);
  } catch (err) {
    return illegal((err as Error).message);
  }
  const id = d.id as string;
  const badRev = (v: unknown) => ({ error: { id, rev: v, error: 'bad_request', reason: 'Invalid rev format' } });
  if (d.rev !== undefined) {
    try {
      checkRev(d.rev);
    } catch {
      return badRev(d.rev);
    }
  }
  const since = d.atts_since ?? [];
  if (!Array.isArray(since) || since.length > 1000) return { error: { id, rev: since, error: 'bad_request', reason: 'att_since value must be array of revs.' } };
  for (const r of since) {
    try {
      checkRev(r);
    } catch {
      return badRev(r);
    }
  }
  return { id, rev: d.rev as string | undefined, attsSince: since as string[] };
}

async function revisionsOf(db: PouchDB.Database, id: string, rev: string | undefined, o: { revs: boolean; latest: boolean }, leaves: Map<string, Promise<unknown>>): Promise<Revision[]> {
  if (id.startsWith('_local/')) return rev ? [{ missing: rev }] : [];
  try {
    // No attachment data here: openDoc reads what is wanted, when it is sent.
    return (await readDoc(db, id, { open_revs: rev ? [rev] : 'all', revs: true, latest: o.latest, attachments: false }, leaves)) as Revision[];
  } catch (err) {
    if ((err as { status?: number }).status === 404) return rev ? [{ missing: rev }] : [];
    throw err;
  }
}

export async function bulkGet(ctx: Ctx, name: string): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  await requireReader(ctx, name);
  const q = ctx.query;
  for (const p of REFUSED_PARAMS) if (q.has(p)) throw badRequest(`"${p}" query parameter is not acceptable`);
  const opts = { revs: q.bool('revs') ?? false, attachments: q.bool('attachments') ?? false, latest: q.bool('latest') ?? false };
  const body = await readJsonObject(ctx.req, ctx.maxBody);
  if (body.docs === undefined) throw badRequest("Missing JSON list of 'docs'.");
  if (!Array.isArray(body.docs) || body.docs.length > MAX_DOCS) throw badRequest(`docs must be an array of at most ${MAX_DOCS} {id, rev} objects`);
  const db = ctx.store.get(name);
  const leaves = new Map<string, Promise<unknown>>();
  const one = async (d: unknown): Promise<Item> => {
    const e = parseEntry(d);
    if ('error' in e) return e;
    const revisions = await revisionsOf(db, e.id, e.rev, opts, leaves);
    // No revision at all: CouchDB's not_found with the rev asked for, or "undefined" without one.
    if (!revisions.length) return { error: { id: e.id, rev: e.rev ?? 'undefined', error: 'not_found', reason: 'missing' } };
    return { id: e.id, attsSince: e.attsSince, revisions, rev: e.rev ?? 'undefined' };
  };
  const items: Item[] = [];
  for (let i = 0; i < body.docs.length; i += 64) items.push(...(await Promise.all(body.docs.slice(i, i + 64).map(one))));
  const mixed = acceptsExplicitly(ctx.req, 'multipart/mixed');
  if (mixed || acceptsExplicitly(ctx.req, 'multipart/related')) return sendMultipart(ctx, db, items, opts.revs, mixed ? 'multipart/mixed' : 'multipart/related');
  const results: unknown[] = [];
  for (const it of items) {
    if ('error' in it) {
      results.push({ id: it.error.id, docs: [{ error: errorMap(it.error) }] });
      continue;
    }
    const mode = opts.attachments || it.attsSince.length ? 'inline' : 'stub';
    const docs: unknown[] = [];
    for (const r of it.revisions) {
      if ('missing' in r) docs.push({ error: errorMap({ id: it.id, rev: r.missing, error: 'not_found', reason: 'missing' }) });
      else docs.push({ ok: (await openDoc(db, r.ok, { mode, attsSince: it.attsSince, keepRevisions: opts.revs })).json });
    }
    results.push({ id: it.id, docs });
  }
  sendJson(ctx.res, 200, { results });
}

/** CouchDB's bulk_get_json_error_map, members in the order CouchDB 3.5 writes them. */
const errorMap = (e: ItemError) => ({ rev: e.rev, reason: e.reason, id: e.id, error: e.error });

/** CouchDB's bulk_get_ret_multipart: its boundary starts with "--"; a revision with attachment bodies is a nested multipart/related part. */
async function sendMultipart(ctx: Ctx, db: PouchDB.Database, items: Item[], revs: boolean, type: string): Promise<void> {
  const outer = `--${newBoundary()}`;
  const inner = `--${newBoundary()}`;
  const errorPart = (e: Record<string, unknown>) => Buffer.from(`\r\n--${outer}\r\nContent-Type: application/json; error="true"\r\n\r\n${JSON.stringify(e)}`);
  ctx.res.writeHead(200, { 'Content-Type': `${type}; boundary="${outer}"`, 'Cache-Control': 'must-revalidate' });
  try {
    for (const it of items) {
      if ('error' in it) {
        await writeChunks(ctx.res, [errorPart(errorMap(it.error))]);
        continue;
      }
      for (const r of it.revisions) {
        if ('missing' in r) {
          await writeChunks(ctx.res, [errorPart({ rev: r.missing, error: 'not_found', reason: 'missing' })]);
          continue;
        }
        const opened = await openDoc(db, r.ok, { mode: 'follows', attsSince: it.attsSince, keepRevisions: revs });
        const head = opened.bodies.length
          ? `\r\n--${outer}\r\nX-Doc-Id: ${it.id.replace(/[\r\n]/g, '')}\r\nX-Rev-Id: ${String(r.ok._rev)}\r\nContent-Type: multipart/related; boundary=${inner}\r\n\r\n`
          : `\r\n--${outer}\r\nContent-Type: application/json\r\n\r\n`;
        await writeChunks(ctx.res, [Buffer.from(head), ...relatedChunks(inner, JSON.stringify(opened.json), opened.bodies)]);
      }
    }
    if (items.length) await writeChunks(ctx.res, [Buffer.from(`\r\n--${outer}--\r\n`)]);
    ctx.res.end();
  } catch (err) {
    ctx.res.destroy(); // cut, so the client does not take a truncated answer for a whole one
    throw err;
  }
}
