// The embedded CouchDB API: a thin CouchDB-protocol layer over PouchDB. One dispatcher maps paths to
// route functions; one funnel turns every failure into `{error, reason}`. No request can take the
// process down: every route is awaited inside a try/catch and every stream error is absorbed.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CouchError, badRequest, notFound, toCouchError } from '../errors.ts';
import { DEFAULT_MAX_BODY, Query, sendJson } from '../http.ts';
import { Auth, type AuthOptions } from './auth.ts';
import { type Ctx, type Services, requireDbAdmin } from './context.ts';
import { DbStore, checkDbName } from './store.ts';
import { Validator } from './validation.ts';
import * as server from './routes/server.ts';
import * as dbRoutes from './routes/database.ts';
import * as nodeRoutes from './routes/node.ts';
import { attachment, document, postDocument } from './routes/documents.ts';
import { DbUpdatesLog, changes } from './routes/feeds.ts';
import { localDoc } from './routes/local.ts';
import { bulkGet } from './routes/bulk-get.ts';
import * as replication from './routes/replication.ts';
import { Replicator, REPLICATOR_DB } from './replicator/scheduler.ts';
import * as mango from './routes/mango.ts';
import { setCacheBytes } from './mango-cache.ts';
import { noteCaller } from '../../limits/gate.ts';
import type { NodeDbQuota } from '../../limits/quota.ts';

export interface EmbeddedCouchOptions extends AuthOptions {
  dataDir: string;
  maxBody?: number;
  quota?: NodeDbQuota;
  /** Called with every 5xx, for the server's log. */
  onError?: (err: unknown, req: IncomingMessage) => void;
  /** Notices for the server's log (the one-time `_security` migration). */
  log?: (msg: string) => void;
  /** A continuous replication silent this long is restarted (limits: replicationStallMs). */
  replicationStallMs?: number;
  /** Memory for Mango's kept JSON indexes (the `mangoIndexBytes` limit). */
  mangoIndexBytes?: number;
}

export interface EmbeddedCouch {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  store: DbStore;
  auth: Auth;
  /** Started by the server once it listens (jobs may replicate from or to itself). */
  replicator: Replicator;
  close(): Promise<void>;
}

const MAX_URL = 16 * 1024;

function splitPath(rawPath: string): string[] {
  const parts = rawPath.split('/').filter((p, i, all) => p !== '' || (i > 0 && i < all.length - 1 && false));
  try {
    return parts.map((p) => decodeURIComponent(p));
  } catch {
    throw badRequest('the path is not valid percent-encoding');
  }
}

/**
 * `_replicator` holds other users' credentials: besides a single document (shown without them,
 * replicator/doc-rules.ts) and writes, its read paths are for database admins only.
 */
async function guardReplicatorRead(ctx: Ctx, second: string, more: string[]): Promise<void> {
  const doc = !second.startsWith('_') || second.startsWith('_design/') || second === '_design';
  const write = ctx.method !== 'GET' && ctx.method !== 'HEAD';
  if ((doc && (more.length === 0 || (second === '_design' && more.length === 1)) && !(ctx.query.has('open_revs') || ctx.query.has('attachments'))) || (second === '_bulk_docs' && write)) return;
  await requireDbAdmin(ctx, REPLICATOR_DB);
}

export function createEmbeddedCouch(opts: EmbeddedCouchOptions): EmbeddedCouch {
  const store = new DbStore(opts.dataDir, opts.log);
  const auth = new Auth(store, opts);
  // A replication reaches loopback only when a server admin owns it (replicator/endpoint.ts).
  const replicator = new Replicator({ store, isTrustedOwner: (name) => name === opts.adminName, log: opts.log, stallMs: opts.replicationStallMs });
  const services: Services = { store, auth, validator: new Validator(store), maxBody: opts.maxBody ?? DEFAULT_MAX_BODY, quota: opts.quota, uuid: randomBytes(16).toString('hex'), replicator };
  const dbUpdates = new DbUpdatesLog(store);
  if (opts.mangoIndexBytes !== undefined) setCacheBytes(opts.mangoIndexBytes);

  async function route(ctx: Ctx): Promise<void> {
    const [first, ...rest] = ctx.path;
    if (first === undefined) return server.root(ctx);
    if (first.startsWith('_')) {
      switch (first) {
        case '_session': return server.session(ctx);
        case '_up': return server.up(ctx);
        case '_all_dbs': return server.allDbs(ctx);
        case '_dbs_info': return server.dbsInfo(ctx);
        case '_uuids': return server.uuids(ctx);
        case '_db_updates': return dbUpdates.serve(ctx);
        // What Fauxton's admin pages (setup, config, CORS, active tasks) read; see routes/node.ts.
        case '_membership': return nodeRoutes.membership(ctx);
        case '_node': return nodeRoutes.node(ctx);
        case '_cluster_setup': return nodeRoutes.clusterSetup(ctx);
        case '_active_tasks': return nodeRoutes.activeTasks(ctx);
        case '_replicate': return replication.replicate(ctx);
        case '_scheduler': return replication.scheduler(ctx);
        case '_users': case '_replicator': case '_global_changes': break; // databases, handled below
        default: return server.notSupported(ctx);
      }
    }
    const db = first;
    checkDbName(db);
    if (ctx.quota) ctx.maxBody = ctx.quota.bodyLimit(db, rest, ctx.maxBody);
    if (rest.length === 0) {
      if (ctx.method === 'POST') {
        ctx.store.get(db);
        return postDocument(ctx, db);
      }
      return dbRoutes.database(ctx, db);
    }
    ctx.store.get(db); // 404 for unknown databases before anything else
    const [second, ...more] = rest;
    if (db === REPLICATOR_DB) await guardReplicatorRead(ctx, second, more);
    switch (second) {
      case '_all_docs': return dbRoutes.allDocs(ctx, db);
      case '_design_docs': return dbRoutes.allDocs(ctx, db, true);
      case '_bulk_docs': return dbRoutes.bulkDocs(ctx, db);
      case '_bulk_get': return bulkGet(ctx, db);
      case '_revs_diff': return dbRoutes.revsDiff(ctx, db);
      case '_changes': return changes(ctx, db);
      case '_security': return dbRoutes.security(ctx, db);
      case '_ensure_full_commit': return dbRoutes.ensureFullCommit(ctx, db);
      case '_revs_limit': return dbRoutes.revsLimit(ctx, db);
      case '_compact': return dbRoutes.compact(ctx, db, 'compact');
      case '_view_cleanup': return dbRoutes.compact(ctx, db, 'view_cleanup');
      case '_find': if (more.length) throw notFound(); return mango.find(ctx, db);
      case '_explain': if (more.length) throw notFound(); return mango.explain(ctx, db);
      case '_index': return mango.index(ctx, db, more);
      case '_local': return localDoc(ctx, db, more[0], more.slice(1));
      case '_design': {
        const [ddoc, ...tail] = more;
        if (!ddoc) throw notFound();
        if (tail.length === 0) return document(ctx, db, `_design/${ddoc}`);
        if (tail[0] === '_view' && tail.length === 2) return dbRoutes.view(ctx, db, ddoc, tail[1]);
        if (tail[0] === '_info' && tail.length === 1) return dbRoutes.designInfo(ctx, db, ddoc); // Fauxton's metadata page
        if (tail[0].startsWith('_')) throw notFound(`${tail[0]} is not served by the embedded CouchDB`);
        return attachment(ctx, db, `_design/${ddoc}`, tail.join('/'));
      }
    }
    if (second.startsWith('_design/') || second.startsWith('_local/')) {
      if (second.startsWith('_local/')) return localDoc(ctx, db, second.slice(7), more);
      return more.length ? attachment(ctx, db, second, more.join('/')) : document(ctx, db, second);
    }
    // As CouchDB: such a document cannot exist (404) and cannot be written (illegal_docid).
    if (second.startsWith('_')) throw ctx.method === 'GET' || ctx.method === 'HEAD' ? notFound() : new CouchError(400, 'illegal_docid', 'Only reserved document ids may start with underscore.');
    if (more.length) return attachment(ctx, db, second, more.join('/'));
    return document(ctx, db, second);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on('error', () => {}); // a client that vanished mid-response is not our failure
    req.on('error', () => {});
    let closed = false;
    res.on('close', () => { closed = true; });
    try {
      const url = req.url ?? '/';
      if (url.length > MAX_URL) throw new CouchError(414, 'uri_too_long', `the URL is longer than ${MAX_URL} characters`);
      const q = url.indexOf('?');
      const rawPath = q < 0 ? url : url.slice(0, q);
      const { userCtx, via } = await auth.authenticate(req);
      noteCaller(req, userCtx.name, userCtx.roles); // lifts the anonymous body allowance (server/limits/gate.ts)
      if (userCtx.name !== null && userCtx.name !== opts.adminName) auth.live.track(userCtx.name, req, res); // ended if its credentials change
      const ctx: Ctx = {
        ...services,
        req,
        res,
        method: req.method ?? 'GET',
        path: splitPath(rawPath),
        query: new Query(new URLSearchParams(q < 0 ? '' : url.slice(q + 1))),
        userCtx,
        authVia: via,
        closed: () => closed,
      };
      await route(ctx);
    } catch (err) {
      const e = toCouchError(err);
      // error_saving_ddoc: CouchDB's 500 for a refused index write (routes/mango.ts), not a fault of ours.
      if (e.status >= 500 && e.error !== 'error_saving_ddoc') opts.onError?.(err, req);
      if (!res.headersSent) sendJson(res, e.status, { error: e.error, reason: e.reason });
      else res.end();
      if (!req.complete) req.resume();
    }
  }

  return {
    handle,
    store,
    auth,
    replicator,
    close: async () => {
      await replicator.stop();
      await store.close();
    },
  };
}
