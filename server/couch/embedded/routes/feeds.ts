// _changes and _db_updates: one feed engine for normal, longpoll and continuous feeds, with heartbeat,
// timeout and limit, woken by the store's change signal. Subscribe-before-fetch means a write that
// lands while we query is never missed; a client that goes away ends the loop.
import { randomBytes, randomUUID } from 'node:crypto';
import { filter, type Observable } from 'rxjs';
import { badRequest, methodNotAllowed, toCouchError } from '../../errors.ts';
import { isObject, readJsonObject, sendJson } from '../../http.ts';
import { type Ctx, requireReader, requireServerAdmin } from '../context.ts';
import type { DbStore, DbUpdate } from '../store.ts';
import { compileSelector } from '../mango.ts';
import { cleanDoc } from '../attachments.ts';
import { FilterRunner, filterChanges, filterSpec, type ChangeRow } from '../filters.ts';
import { dbInfo } from './server.ts';

type Mode = 'normal' | 'longpoll' | 'continuous';
interface Batch<Row> { results: Row[]; last_seq: unknown }
interface FeedSource<Row> {
  fetch(since: unknown, limit: number | undefined): Promise<Batch<Row>>;
  signal$: Observable<unknown>;
}
interface FeedOptions { mode: Mode; since: unknown; limit?: number; heartbeat?: number; timeout: number; descending?: boolean }

const MIN_HEARTBEAT = 500;
const MAX_TIMEOUT = 10 * 60_000;

function feedOptions(ctx: Ctx, since: unknown): FeedOptions {
  const q = ctx.query;
  const feed = q.str('feed') ?? 'normal';
  if (feed !== 'normal' && feed !== 'longpoll' && feed !== 'continuous') throw badRequest('feed must be normal, longpoll or continuous');
  let heartbeat: number | undefined;
  const hb = q.str('heartbeat');
  if (hb === 'true') heartbeat = 60_000;
  else if (hb !== undefined && hb !== 'false') heartbeat = Math.max(MIN_HEARTBEAT, q.int('heartbeat', 0, MAX_TIMEOUT)!);
  const timeout = Math.min(q.int('timeout', 0) ?? 60_000, MAX_TIMEOUT);
  return { mode: feed, since, limit: q.int('limit', 0), heartbeat, timeout, descending: q.bool('descending') };
}

async function serveFeed<Row extends { seq?: unknown }>(ctx: Ctx, source: FeedSource<Row>, o: FeedOptions): Promise<void> {
  const { res } = ctx;
  if (o.mode === 'normal' || o.descending) {
    const batch = await source.fetch(o.since, o.limit);
    sendJson(res, 200, { results: batch.results, last_seq: batch.last_seq, pending: 0 });
    return;
  }
  let dirty = false;
  let wake: (() => void) | null = null;
  const sub = source.signal$.subscribe(() => {
    dirty = true;
    wake?.();
  });
  const onClose = () => wake?.();
  res.on('close', onClose);
  let headers = false;
  const startStream = () => {
    if (!headers) {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'must-revalidate' });
      headers = true;
    }
  };
  const write = async (text: string) => {
    startStream();
    if (!res.write(text)) await new Promise<void>((resolve) => { res.once('drain', resolve); res.once('close', resolve); });
  };
  /** Waits for a signal, the deadline or the client leaving, writing heartbeats meanwhile. */
  const waitChange = async (deadline: number): Promise<boolean> => {
    while (!dirty && !ctx.closed()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      const slice = o.heartbeat ? Math.min(o.heartbeat, left) : left;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, slice);
        wake = () => { clearTimeout(timer); resolve(); };
      });
      wake = null;
      if (!dirty && o.heartbeat && !ctx.closed()) await write('\n');
    }
    return dirty;
  };
  try {
    let since = o.since;
    let remaining = o.limit;
    for (;;) {
      dirty = false;
      let batch: Batch<Row>;
      try {
        batch = await source.fetch(since, remaining);
      } catch (err) {
        // Mid-stream (a continuous feed, a heartbeat sent): the error is the last line, as CouchDB ends it.
        if (!headers) throw err;
        const e = toCouchError(err);
        await write(JSON.stringify({ error: e.error, reason: e.reason }) + '\n');
        res.end();
        return;
      }
      since = batch.last_seq;
      if (o.mode === 'longpoll') {
        const deadline = o.heartbeat ? Infinity : Date.now() + o.timeout;
        if (batch.results.length || !(await waitChange(deadline)) || ctx.closed()) {
          startStream();
          res.end(JSON.stringify({ results: batch.results, last_seq: batch.last_seq, pending: 0 }) + '\n');
          return;
        }
        continue;
      }
      for (const row of batch.results) await write(JSON.stringify(row) + '\n');
      if (remaining !== undefined) {
        remaining -= batch.results.length;
        if (remaining <= 0) break;
      }
      if (batch.results.length) continue; // drain what is there before waiting
      const deadline = o.heartbeat ? Infinity : Date.now() + o.timeout;
      if (!(await waitChange(deadline)) || ctx.closed()) break;
    }
    if (!ctx.closed()) {
      await write(JSON.stringify({ last_seq: since, pending: 0 }) + '\n');
      res.end();
    }
  } finally {
    sub.unsubscribe();
    res.off('close', onClose);
  }
}

/** A PouchDB sequence from a `since` parameter: numbers (also quoted) and `now`; anything else is not ours. */
function parseSince(raw: unknown): number | 'now' {
  if (raw === undefined || raw === null || raw === '') return 0;
  if (raw === 'now') return 'now';
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw;
  const s = String(raw).replace(/^"(.*)"$/, '$1');
  if (/^\d{1,15}$/.test(s)) return Number(s);
  throw badRequest(`since must be a sequence from this server or "now", not ${JSON.stringify(String(raw).slice(0, 60))}`);
}

export async function changes(ctx: Ctx, dbName: string): Promise<void> {
  if (ctx.method !== 'GET' && ctx.method !== 'POST') throw methodNotAllowed('GET,POST');
  await requireReader(ctx, dbName);
  const db = ctx.store.get(dbName);
  const q = ctx.query;
  const body = ctx.method === 'POST' ? await readJsonObject(ctx.req, ctx.maxBody).catch((err) => {
    // CouchDB accepts an empty POST body here.
    if ((err as { reason?: string }).reason === 'a JSON body is required') return {} as Record<string, unknown>;
    throw err;
  }) : {};
  let since = parseSince(q.str('since') ?? body.since);
  if (since === 'now') since = (await db.info()).update_seq as number;
  const style = q.str('style') ?? 'main_only';
  if (style !== 'main_only' && style !== 'all_docs') throw badRequest('style must be main_only or all_docs');
  const base: PouchDB.Core.ChangesOptions & Record<string, unknown> = {
    include_docs: q.bool('include_docs') ?? false,
    conflicts: q.bool('conflicts') ?? false,
    attachments: q.bool('attachments') ?? false,
    binary: false,
    style,
    descending: q.bool('descending') ?? false,
    return_docs: true,
  };
  const filterName = q.str('filter');
  let selectorFailure: unknown;
  let runner: FilterRunner | undefined;
  if (filterName === '_doc_ids') {
    const ids = body.doc_ids ?? q.json('doc_ids');
    if (!Array.isArray(ids) || ids.length > 10_000 || !ids.every((i) => typeof i === 'string')) throw badRequest('filter=_doc_ids needs doc_ids: an array of document ids');
    base.doc_ids = ids as string[];
  } else if (filterName === '_selector') {
    // CouchDB 3.5.0's words (checked): PouchDB's suite matches on them.
    if (ctx.method !== 'POST') throw badRequest('Selector must be specified in POST payload');
    if (!isObject(body.selector)) throw badRequest('Selector error: expected a JSON object');
    // Our evaluator, not PouchDB's: its $regex is linear-time (mango.ts), PouchDB's could freeze the server.
    // A selector that fails on a document (a $regex over its time budget) fails the request with our
    // error; PouchDB would report it as "Filter function threw", so it is kept and rethrown below.
    const matches = compileSelector(body.selector);
    base.filter = (doc: unknown) => {
      if (selectorFailure) return false;
      try {
        return matches(doc);
      } catch (err) {
        selectorFailure = err;
        throw err;
      }
    };
  } else if (filterName === '_design') {
    base.filter = (doc: { _id: string }) => doc._id.startsWith('_design/');
  } else if (filterName !== undefined && filterName !== '') {
    // A design document's filter function, or _view: run in a worker (filters.ts).
    const spec = await filterSpec(filterName, q.str('view'), async (id) => (await db.get(id)) as unknown as Record<string, unknown>, await requestObject(ctx, dbName, body));
    runner = new FilterRunner(spec);
  }
  // Under the store's read lock: a write committing mid-read would drop a change (store.ts `writing`).
  const read = async (from: unknown, limit: number | undefined, opts: Record<string, unknown> = base) => {
    const r = await ctx.store.reading(dbName, () => db.changes({ ...opts, since: from as number, ...(limit !== undefined ? { limit } : {}) })).catch((err) => {
      throw selectorFailure ?? err;
    });
    return { results: r.results as unknown as ChangeRow[], last_seq: r.last_seq };
  };
  const filtered = runner;
  const source: FeedSource<{ seq?: unknown }> = {
    signal$: ctx.store.updates$.pipe(filter((u) => u.db_name === dbName)),
    async fetch(from, limit) {
      const r = filtered
        ? await filterChanges(filtered, {
          read: (since, pageLimit) => read(since, pageLimit, { ...base, include_docs: true }),
          leaves: async (row) => ((await db.get(row.id, { open_revs: row.changes.map((c) => c.rev), conflicts: base.conflicts } as PouchDB.Core.GetOptions)) as unknown as { ok?: Record<string, unknown> }[])
            .flatMap((x) => (x.ok ? [x.ok] : [])),
          since: from,
          limit,
          includeDocs: base.include_docs === true,
          allDocs: style === 'all_docs',
          descending: base.descending === true,
        })
        : await read(from, limit);
      for (const row of r.results as { doc?: unknown }[]) cleanDoc(row.doc);
      return r;
    },
  };
  try {
    await serveFeed(ctx, source, feedOptions(ctx, since));
  } finally {
    runner?.close();
  }
}

/**
 * CouchDB's request object for a filter function (chttpd_external:json_req_obj), minus the caller's
 * credentials (its Authorization and Cookie headers): the design document's code has no business with them.
 */
async function requestObject(ctx: Ctx, dbName: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { authorization: _a, cookie: _c, ...headers } = ctx.req.headers;
  const url = ctx.req.url ?? '';
  return {
    info: await dbInfo(ctx, dbName),
    id: null,
    uuid: randomUUID().replace(/-/g, ''),
    method: ctx.method,
    requested_path: ctx.path,
    path: ctx.path,
    raw_path: url,
    query: Object.fromEntries(ctx.query.params),
    headers,
    body: ctx.method === 'POST' ? JSON.stringify(body) : 'undefined',
    peer: ctx.req.socket?.remoteAddress ?? null,
    form: {},
    cookie: {},
    userCtx: { db: dbName, name: ctx.userCtx.name, roles: ctx.userCtx.roles },
    secObj: await ctx.store.getSecurity(dbName),
  };
}

/**
 * _db_updates for the embedded store. Sequences are `<boot>-<n>`: a `since` from an earlier boot
 * replays every existing database as `updated`, so a follower never misses one across our restarts.
 */
export class DbUpdatesLog {
  private readonly boot = randomBytes(4).toString('hex');
  private counter = 0;
  private readonly latest = new Map<string, { seq: number; type: DbUpdate['type'] }>();

  constructor(readonly store: DbStore) {
    for (const name of store.list()) this.latest.set(name, { seq: ++this.counter, type: 'updated' });
    store.updates$.subscribe((u) => this.latest.set(u.db_name, { seq: ++this.counter, type: u.type }));
  }

  private parse(raw: string | undefined): number {
    if (raw === undefined || raw === '0' || raw === '') return 0;
    if (raw === 'now') return this.counter;
    const m = /^"?([0-9a-f]{8})-(\d{1,15})"?$/.exec(raw);
    if (!m) throw badRequest('since must be a sequence from this server, 0 or "now"');
    return m[1] === this.boot ? Number(m[2]) : 0;
  }

  fetch(since: number, limit?: number): Batch<{ db_name: string; type: string; seq: string }> {
    const rows = [...this.latest.entries()].filter(([, v]) => v.seq > since).sort((a, b) => a[1].seq - b[1].seq);
    const picked = limit !== undefined ? rows.slice(0, limit) : rows;
    const last = picked.length ? picked[picked.length - 1][1].seq : Math.max(since, limit === undefined ? this.counter : since);
    return { results: picked.map(([db_name, v]) => ({ db_name, type: v.type, seq: `${this.boot}-${v.seq}` })), last_seq: `${this.boot}-${last}` };
  }

  async serve(ctx: Ctx): Promise<void> {
    if (ctx.method !== 'GET' && ctx.method !== 'POST') throw methodNotAllowed('GET,POST');
    requireServerAdmin(ctx);
    const since = this.parse(ctx.query.str('since'));
    const source: FeedSource<{ seq: string }> = {
      signal$: this.store.updates$,
      fetch: async (from, limit) => this.fetch(typeof from === 'number' ? from : this.parse(String(from)), limit),
    };
    await serveFeed(ctx, source, feedOptions(ctx, since));
  }
}
