// Conflicts and revision history (issue 6). CouchDB is multi-master: a spec edited at two sites while they
// are apart comes back with two leaf revisions; CouchDB picks a deterministic winner and keeps the others
// as `_conflicts`. These routes make that visible and safe:
//   GET  /api/conflicts                                   every document in conflict (index, read rights)
//   GET  /api/nodes/:node/{systems|volumes}/:name/conflicts   all live leaves side by side, with a diff
//   POST /api/nodes/:node/{systems|volumes}/:name/conflicts/resolve   {keep: REV} | {merged: DOC}
//   (the same two under /api/templates/:name/…)
//   GET  /api/nodes/:node/systems/:name/history            stored revisions, newest first, with changes
//   POST /api/nodes/:node/systems/:name/restore {rev}      an earlier revision's content as a new one
// Everything acts with the caller's credentials. A resolution is ONE `_bulk_docs` request: the kept or
// merged content as a new revision on top of the winner, and a deletion of every other leaf, so the
// document ends with a single leaf and every losing revision stays in its history (until compaction).
import type express from 'express';
import type { Request } from 'express';
import { CATALOG_DB, NODE_DB_PREFIX } from '../../ddocs/build.ts';
import type { Caller } from './caller.ts';
import type { ApiContext } from './context.ts';
import { ApiError, fromCouch, invalid, notFound } from './errors.ts';
import { COUCH_META, jsonDiff, jsonEqual, type Difference } from './json-diff.ts';
import { checkName, normalize, putSpec, validateOrThrow, whereCatalog, whereNode, type Where } from './resources.ts';

type Doc = Record<string, unknown>;

export interface ConflictRow { node: string | null; db: string; id: string; type: string; name: string; winner: string; conflicts: string[] }
export interface LeafView { rev: string; doc: Doc }
export interface ConflictView { id: string; winner: LeafView; others: (LeafView & { diff: { path: string; kind: Difference['kind']; winner?: unknown; other?: unknown }[] })[] }
export interface HistoryEntry { rev: string; status: 'available' | 'missing' | 'deleted'; doc?: Doc; changes: { path: string; kind: Difference['kind']; before?: unknown; after?: unknown }[] }

const REV_RE = /^[1-9]\d{0,9}-[0-9a-zA-Z]{1,64}$/;
const revNum = (rev: string) => Number.parseInt(rev, 10);
const statusOf = (err: unknown) => (err as { statusCode?: number }).statusCode;

/** The document without CouchDB's bookkeeping members (what a new revision may carry). */
function content(doc: Doc): Doc {
  const out = { ...doc };
  for (const k of COUCH_META) delete out[k];
  delete out._deleted;
  return out;
}

/** The spec a route addresses: where it lives and its document id. */
interface Target { where: Where; db: string; id: string; name: string; what: string }

/** Revisions of one document by open_revs (JSON list); missing ones are left out. */
async function openRevs(caller: Caller, db: string, id: string, revs: string[]): Promise<Map<string, Doc>> {
  const out = new Map<string, Doc>();
  if (!revs.length) return out;
  const rows = (await caller.couch.request({ db, doc: id, qs: { open_revs: JSON.stringify(revs) } })) as ({ ok?: Doc; missing?: string })[];
  for (const r of rows) if (r.ok && typeof r.ok._rev === 'string') out.set(r.ok._rev, r.ok);
  return out;
}

/** The winning revision with its `_conflicts` (404 when the document does not exist). */
async function winnerOf(caller: Caller, t: Target, extra: Record<string, unknown> = {}): Promise<Doc> {
  try {
    return (await caller.couch.request({ db: t.db, doc: t.id, qs: { conflicts: true, ...extra } })) as Doc;
  } catch (err) {
    if (statusOf(err) === 404) throw notFound(t.what);
    throw fromCouch(err, t.what);
  }
}

/** Every live leaf: the winner first, then the others in CouchDB's `_conflicts` order. */
async function leavesOf(caller: Caller, t: Target): Promise<{ winner: Doc; others: Doc[] }> {
  for (let attempt = 0; ; attempt++) {
    const winner = await winnerOf(caller, t);
    const revs = (winner._conflicts as string[] | undefined) ?? [];
    const got = await openRevs(caller, t.db, t.id, revs).catch((err) => { throw fromCouch(err, t.what); });
    // A leaf that vanished between the two reads: the leaf set changed meanwhile; read again.
    if (revs.every((r) => got.has(r))) return { winner, others: revs.map((r) => got.get(r)!) };
    if (attempt >= 2) throw new ApiError(409, 'conflict', `the revisions of ${t.what} keep changing; try again`);
  }
}

/** The conflict list from the fleet index, filtered by the caller's read rights. */
async function listConflicts(ctx: ApiContext, caller: Caller, node?: string): Promise<ConflictRow[]> {
  const all = ctx.index.conflicts().filter((c) => node === undefined || c.db === NODE_DB_PREFIX + node);
  const readable = await ctx.access.readableOf(caller, [...new Set(all.map((c) => c.db))]);
  const rows: ConflictRow[] = [];
  for (const c of all) {
    if (!readable.has(c.db)) continue;
    const colon = c.id.indexOf(':');
    const winner = ctx.index.dbs.get(c.db)?.docs[c.id]?._rev;
    rows.push({
      node: c.db.startsWith(NODE_DB_PREFIX) ? c.db.slice(NODE_DB_PREFIX.length) : null,
      db: c.db,
      id: c.id,
      type: colon > 0 ? c.id.slice(0, colon) : '',
      name: colon > 0 ? c.id.slice(colon + 1) : c.id,
      winner: typeof winner === 'string' ? winner : '',
      conflicts: [...c.conflicts],
    });
  }
  return rows.sort((x, y) => (x.node ?? '').localeCompare(y.node ?? '') || x.db.localeCompare(y.db) || x.id.localeCompare(y.id));
}

/** One leaf's differences against the winner, as `{path, kind, winner, other}`. */
const diffAgainstWinner = (winner: Doc, other: Doc) =>
  jsonDiff(winner, other, { ignore: COUCH_META }).map((d) => ({ path: d.path, kind: d.kind, winner: d.a, other: d.b }));

async function showConflicts(caller: Caller, t: Target): Promise<ConflictView> {
  const { winner, others } = await leavesOf(caller, t);
  const w = content(winner);
  return {
    id: t.id,
    winner: { rev: String(winner._rev), doc: w },
    others: others.map((o) => ({ rev: String(o._rev), doc: content(o), diff: diffAgainstWinner(w, content(o)) })),
  };
}

interface ResolveBody { keep?: unknown; merged?: unknown; revs?: unknown }

async function resolveConflicts(caller: Caller, t: Target, body: ResolveBody | undefined): Promise<Doc> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('send {"keep": REV} or {"merged": DOC}', [{ path: '/', message: 'must be an object' }]);
  const { keep, merged, revs } = body;
  if ((keep === undefined) === (merged === undefined)) throw invalid('send exactly one of keep (a revision) or merged (a document)', [{ path: '/keep', message: 'exactly one of keep or merged' }]);
  if (keep !== undefined && (typeof keep !== 'string' || !REV_RE.test(keep))) throw invalid('keep must be a revision', [{ path: '/keep', message: 'must be a revision like 3-abc…' }]);
  if (revs !== undefined && (!Array.isArray(revs) || !revs.every((r) => typeof r === 'string'))) throw invalid('revs must be the list of leaf revisions you saw', [{ path: '/revs', message: 'must be an array of revisions' }]);
  // The merged document is checked before anything is read or written.
  let mergedDoc: Doc | undefined;
  if (merged !== undefined) {
    mergedDoc = normalize(t.where, merged, t.name);
    validateOrThrow(content(mergedDoc));
  }

  const { winner, others } = await leavesOf(caller, t);
  const winnerRev = String(winner._rev);
  const leafRevs = [winnerRev, ...others.map((o) => String(o._rev))];
  const stale = (why: string) => new ApiError(409, 'conflict', `${t.what}: ${why}; look at its conflicts again and retry`);
  if (!others.length) throw stale('it is not in conflict (any more)');
  if (Array.isArray(revs) && (revs.length !== leafRevs.length || !leafRevs.every((r) => revs.includes(r)))) throw stale('its revisions changed meanwhile');
  if (typeof keep === 'string' && !leafRevs.includes(keep)) throw stale(`${keep} is not one of its current revisions (${leafRevs.join(', ')})`);
  if (mergedDoc && mergedDoc._rev !== undefined && mergedDoc._rev !== winnerRev) throw stale(`the merged document is based on ${String(mergedDoc._rev)}, the winning revision is now ${winnerRev}`);

  let next: Doc | undefined;
  if (mergedDoc) next = content(mergedDoc);
  else if (keep !== winnerRev) {
    next = content(others.find((o) => o._rev === keep)!);
    validateOrThrow(next);
  }
  // Writing the winner's own content again would only make a needless revision.
  if (next && jsonEqual(next, content(winner))) next = undefined;
  const losers = others.map((o) => String(o._rev));
  const docs: Doc[] = [
    ...(next ? [{ ...next, _id: t.id, _rev: winnerRev }] : []),
    ...losers.map((rev) => ({ _id: t.id, _rev: rev, _deleted: true })),
  ];
  let results: { id?: string; rev?: string; ok?: boolean; error?: string; reason?: string }[];
  try {
    results = (await caller.couch.use(t.db).bulk({ docs })) as typeof results;
  } catch (err) {
    throw fromCouch(err, t.what);
  }
  const failed = results.map((r, i) => ({ r, doc: docs[i] })).filter(({ r }) => r.error);
  if (failed.length) {
    const details = failed.map(({ r, doc }) => ({ path: doc._deleted ? `/revs/${String(doc._rev)}` : '/winner', message: `${r.error}: ${r.reason ?? ''}`.trim() }));
    const errors = failed.map(({ r }) => r.error);
    const partly = failed.length < docs.length ? ' (the other writes of the resolution were made)' : '';
    if (errors.some((e) => e === 'forbidden' || e === 'unauthorized')) throw new ApiError(403, 'forbidden', `you may not resolve ${t.what}: ${failed[0].r.reason ?? 'forbidden'}${partly}`, details);
    if (errors.some((e) => e === 'conflict')) throw new ApiError(409, 'conflict', `${t.what} changed while it was being resolved${partly}; look at its conflicts again`, details);
    throw new ApiError(400, 'invalid', `${t.what}: the resolution was refused: ${failed[0].r.reason ?? failed[0].r.error}${partly}`, details);
  }
  const written = next ? results[0].rev : winnerRev;
  return { ok: true, id: t.id, rev: written, kept: typeof keep === 'string' ? keep : null, merged: !!mergedDoc, deleted: losers };
}

async function history(caller: Caller, t: Target): Promise<HistoryEntry[]> {
  const current = await winnerOf(caller, t, { revs_info: true });
  const info = (current._revs_info as { rev: string; status: HistoryEntry['status'] }[] | undefined) ?? [{ rev: String(current._rev), status: 'available' as const }];
  const wanted = info.filter((i) => i.status === 'available').map((i) => i.rev);
  const docs = await openRevs(caller, t.db, t.id, wanted).catch((err) => { throw fromCouch(err, t.what); });
  const entries: HistoryEntry[] = info.map((i) => {
    const doc = docs.get(i.rev);
    // Listed as available, but gone by the time it was read (compaction in between).
    const status = i.status === 'available' && !doc ? 'missing' : i.status;
    return { rev: i.rev, status, ...(doc && status === 'available' ? { doc: content(doc) } : {}), changes: [] };
  });
  // Changes of each available revision against the previous (older) available one; a first revision
  // (1-…) shows everything as added; the oldest one left after compaction has no baseline.
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k];
    if (!e.doc) continue;
    const before = entries.slice(k + 1).find((p) => p.doc)?.doc ?? (revNum(e.rev) === 1 ? {} : undefined);
    if (before === undefined) continue;
    e.changes = jsonDiff(before, e.doc, { ignore: ['_id'] }).map((d) => ({ path: d.path, kind: d.kind, before: d.a, after: d.b }));
  }
  return entries;
}

async function restore(caller: Caller, t: Target, body: { rev?: unknown } | undefined): Promise<Doc> {
  const rev = body?.rev;
  if (typeof rev !== 'string' || !REV_RE.test(rev)) throw invalid('restore needs {"rev": REV}', [{ path: '/rev', message: 'must be a revision like 3-abc…' }]);
  let old: Doc;
  try {
    old = (await caller.couch.request({ db: t.db, doc: t.id, qs: { rev } })) as Doc;
  } catch (err) {
    if (statusOf(err) === 404) throw notFound(`revision ${rev} of ${t.what} (never stored, or compacted)`);
    throw fromCouch(err, t.what);
  }
  if (old._deleted) throw notFound(`content of revision ${rev} of ${t.what} (it is a deletion)`);
  const current = await winnerOf(caller, t);
  const conflicts = (current._conflicts as string[] | undefined) ?? [];
  if (conflicts.length) throw new ApiError(409, 'conflict', `${t.what} is in conflict (${[String(current._rev), ...conflicts].join(', ')}): resolve that first`);
  const next = content(old);
  if (jsonEqual(next, content(current))) return { ok: true, id: t.id, rev: String(current._rev), restored: rev, unchanged: true };
  const r = await putSpec(caller, t.where, { ...next, _rev: current._rev }, 'put');
  return { ok: true, id: r.id, rev: r.rev, restored: rev };
}

export function mountConflictRoutes(router: express.Router, ctx: ApiContext): void {
  const { h, param } = ctx;

  router.get('/conflicts', h(async (req, _res, caller) => {
    const q = req.query as Record<string, unknown>;
    for (const [k, v] of Object.entries(q)) {
      if (k !== 'node') throw invalid(`unknown filter ${k}`, [{ path: `/${k}`, message: 'the only filter is node' }]);
      if (typeof v !== 'string') throw invalid('node must be given once', [{ path: '/node', message: 'must be a single string' }]);
    }
    if (typeof q.node === 'string') await ctx.nodeExists(caller, checkName(q.node, 'node'));
    return listConflicts(ctx, caller, q.node as string | undefined);
  }));

  /** Resolves a route's spec: node specs need the node to exist and be readable; templates the catalog. */
  const nodeTarget = (kind: 'system' | 'volume') => async (req: Request, caller: Caller): Promise<Target> => {
    const node = param(req, 'node');
    const name = checkName(param(req, 'name'), kind);
    const db = await ctx.nodeExists(caller, node);
    return { where: whereNode(node, kind), db, id: `${kind}:${name}`, name, what: `${kind} ${name} on node ${node}` };
  };
  const templateTarget = async (req: Request, caller: Caller): Promise<Target> => {
    const name = checkName(param(req, 'name'), 'template');
    if (!(await ctx.access.canRead(caller, CATALOG_DB))) throw new ApiError(403, 'forbidden', 'you may not read the catalog');
    return { where: whereCatalog, db: CATALOG_DB, id: `template:${name}`, name, what: `template ${name}` };
  };

  const specs: [string, (req: Request, caller: Caller) => Promise<Target>][] = [
    ['/nodes/:node/systems/:name', nodeTarget('system')],
    ['/nodes/:node/volumes/:name', nodeTarget('volume')],
    ['/templates/:name', templateTarget],
  ];
  for (const [base, target] of specs) {
    router.get(`${base}/conflicts`, h(async (req, _res, caller) => showConflicts(caller, await target(req, caller))));
    router.post(`${base}/conflicts/resolve`, h(async (req, _res, caller) => resolveConflicts(caller, await target(req, caller), req.body as ResolveBody | undefined)));
    router.get(`${base}/history`, h(async (req, _res, caller) => history(caller, await target(req, caller))));
    router.post(`${base}/restore`, h(async (req, _res, caller) => restore(caller, await target(req, caller), req.body as { rev?: unknown } | undefined)));
  }
}
