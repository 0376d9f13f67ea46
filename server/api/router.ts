// The REST API under /api: fleet listings from the index, spec CRUD and actions through CouchDB with the
// caller's credentials, live events. Every handler is async and funnels errors to errors.ts.
import express, { type NextFunction, type Request, type Response } from 'express';
import { nodeDbName, CATALOG_DB } from '../../ddocs/build.ts';
import type { FleetIndex, SystemRow } from '../fleet/fleet-index.ts';
import { Access } from './access.ts';
import { jsonBody } from './body.ts';
import { noteCaller } from '../limits/gate.ts';
import { Callers, type Caller } from './caller.ts';
import { ApiError, invalid, notFound } from './errors.ts';
import { EventLog, EventStats, serveEvents } from './events.ts';
import { checkName, deleteSpec, getSpec, getStatus, normalize, putSpec, whereCatalog, whereNode, type Where } from './resources.ts';
import type { ServerScope } from 'nano';
import type { ApiContext, Handler } from './context.ts';
import { mountConflictRoutes } from './conflicts.ts';
import { mountSiteRoutes } from './sites.ts';
import { mountEnrolRoutes } from './enrol.ts';

export interface ApiOptions {
  index: FleetIndex;
  admin: ServerScope;
  /** How the server reaches the CouchDB API without credentials (its own /db or COUCH_URL stripped). */
  couchUrl: string;
  eventsMaxQueue?: number;
  /** Largest JSON body (default 1 MiB). */
  maxBody?: number;
  eventStats?: EventStats;
  /** Extra services for route modules (see ApiContext.services). */
  services?: Record<string, unknown>;
}

export function createApiRouter(opts: ApiOptions): express.Router {
  const { index } = opts;
  const callers = new Callers(opts.couchUrl);
  const access = new Access(opts.admin);
  const eventLog = new EventLog(index);
  const router = express.Router();
  const readBody = jsonBody(opts.maxBody);

  /**
   * Wraps a handler: authenticates, then reads the JSON body (so an unknown caller's body is never
   * read), runs, sends JSON (status from the handler's {status} when given).
   */
  const h = (fn: Handler, status = 200) => async (req: Request, res: Response, next: NextFunction) => {
    res.locals.route = req.baseUrl + (req.route?.path ?? '');
    try {
      const caller = await callers.of(req);
      noteCaller(req, caller.name, caller.roles);
      await readBody(req);
      const out = await fn(req, res, caller);
      if (!res.headersSent) res.status(status).json(out);
    } catch (err) {
      next(err);
    }
  };

  const param = (req: Request, name: string) => String(req.params[name]);
  const nodeExists = async (caller: Caller, node: string) => {
    checkName(node, 'node');
    const db = nodeDbName(node);
    if (!index.dbs.has(db)) {
      // The index may lag a brand-new node; CouchDB is the authority.
      try {
        await caller.couch.request({ db, method: 'HEAD' });
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code === 404) throw notFound(`node ${node}`);
        if (code === 401 || code === 403) throw new ApiError(403, 'forbidden', `you may not read node ${node}`);
        throw err;
      }
    }
    if (!(await access.canRead(caller, db))) throw new ApiError(403, 'forbidden', `you may not read node ${node}`);
    return db;
  };
  const revOf = (req: Request) => {
    const q = typeof req.query.rev === 'string' ? req.query.rev : undefined;
    const m = req.headers['if-match'];
    return q ?? (typeof m === 'string' ? m.replace(/"/g, '') : undefined);
  };

  // Feature modules first: their paths (e.g. …/systems/:name/history) must win over the generic ones.
  const ctx: ApiContext = { index, admin: opts.admin, access, h, param, nodeExists, revOf, services: opts.services ?? {} };
  mountConflictRoutes(router, ctx);
  mountSiteRoutes(router, ctx);
  mountEnrolRoutes(router, ctx);

  // ---- fleet ------------------------------------------------------------------------------------
  router.get('/nodes', h(async (_req, _res, caller) => {
    const readable = await access.readableOf(caller, index.nodeIds().map(nodeDbName));
    return index.nodeIds().filter((n) => readable.has(nodeDbName(n))).map((n) => index.nodeRow(n));
  }));
  router.get('/nodes/:node', h(async (req, _res, caller) => {
    const node = param(req, 'node');
    await nodeExists(caller, node);
    return index.nodeRow(node) ?? { id: node, db: nodeDbName(node), hostname: null, heartbeat: null, online: false, agentVersion: null, systems: 0, phases: {} };
  }));

  router.get('/systems', h(async (req, _res, caller) => {
    const q = req.query as Record<string, unknown>;
    for (const [k, v] of Object.entries(q)) {
      if (!['node', 'phase', 'kind', 'label', 'state'].includes(k)) throw invalid(`unknown filter ${k}`, [{ path: `/${k}`, message: 'filters are node, phase, kind, state, label' }]);
      if (typeof v !== 'string') throw invalid(`filter ${k} must be given once, as a string`, [{ path: `/${k}`, message: 'must be a single string' }]);
    }
    const f = q as Record<string, string | undefined>;
    let rows: SystemRow[] = index.systemRows(f.node);
    const readable = await access.readableOf(caller, [...new Set(rows.map((r) => nodeDbName(r.node)))]);
    rows = rows.filter((r) => readable.has(nodeDbName(r.node)));
    if (f.phase) rows = rows.filter((r) => (r.phase ?? 'unknown') === f.phase);
    if (f.kind) rows = rows.filter((r) => r.kind === f.kind);
    if (f.state) rows = rows.filter((r) => r.state === f.state);
    if (f.label) {
      // `k` (has the label) or `k=v`; only the first `=` separates, values may contain more.
      const eq = f.label.indexOf('=');
      const k = eq < 0 ? f.label : f.label.slice(0, eq);
      const v = eq < 0 ? undefined : f.label.slice(eq + 1);
      rows = rows.filter((r) => (v === undefined ? k in r.labels : r.labels[k] === v));
    }
    return rows;
  }));

  // ---- specs in a node's database ---------------------------------------------------------------
  for (const [coll, kind] of [['systems', 'system'], ['volumes', 'volume']] as const) {
    const where = (req: Request): Where => whereNode(param(req, 'node'), kind);
    router.get(`/nodes/:node/${coll}`, h(async (req, _res, caller) => {
      const node = param(req, 'node');
      await nodeExists(caller, node);
      return kind === 'system' ? index.systemRows(node) : index.volumes(node);
    }));
    router.post(`/nodes/:node/${coll}`, h(async (req, _res, caller) => {
      await nodeExists(caller, param(req, 'node'));
      const doc = normalize(where(req), req.body);
      return { ok: true, ...(await putSpec(caller, where(req), doc, 'create')) };
    }, 201));
    router.get(`/nodes/:node/${coll}/:name`, h(async (req, _res, caller) => {
      const node = param(req, 'node');
      await nodeExists(caller, node);
      const spec = await getSpec(caller, where(req), param(req, 'name'));
      if (kind !== 'system') return spec;
      return { spec, status: await getStatus(caller, node, param(req, 'name')) };
    }));
    router.put(`/nodes/:node/${coll}/:name`, h(async (req, res, caller) => {
      await nodeExists(caller, param(req, 'node'));
      const doc = normalize(where(req), req.body, param(req, 'name'));
      const rev = revOf(req);
      if (rev !== undefined) doc._rev = rev;
      const r = await putSpec(caller, where(req), doc, 'put');
      res.status(doc._rev ? 200 : 201);
      return { ok: true, ...r };
    }));
    router.delete(`/nodes/:node/${coll}/:name`, h(async (req, _res, caller) => {
      await nodeExists(caller, param(req, 'node'));
      return { ok: true, ...(await deleteSpec(caller, where(req), param(req, 'name'), revOf(req))) };
    }));
  }

  // start | stop | restart | move: each is one document write any CouchDB tool could make.
  router.post('/nodes/:node/systems/:name/:action', h(async (req, _res, caller) => {
    const node = param(req, 'node');
    const name = param(req, 'name');
    const action = param(req, 'action');
    await nodeExists(caller, node);
    const where = whereNode(node, 'system');
    const spec = await getSpec(caller, where, name);
    delete spec._conflicts;
    if (action === 'start' || action === 'stop') {
      const state = action === 'start' ? 'running' : 'stopped';
      if (spec.state === state) return { ok: true, id: spec._id, rev: spec._rev, unchanged: true };
      return { ok: true, ...(await putSpec(caller, where, { ...spec, state }, 'put')) };
    }
    if (action === 'restart') return { ok: true, ...(await putSpec(caller, where, { ...spec, state: 'running', restartedAt: new Date().toISOString() }, 'put')) };
    if (action === 'move') {
      const to = (req.body as { to?: unknown } | undefined)?.to;
      if (typeof to !== 'string') throw invalid('move needs {"to": "<node>"}', [{ path: '/to', message: 'is required' }]);
      checkName(to, 'node');
      if (to === node) throw invalid(`system ${name} is on ${to} already`, [{ path: '/to', message: 'must be another node' }]);
      await nodeExists(caller, to);
      const target = whereNode(to, 'system');
      const { _rev, ...copy } = spec;
      // Create on the target first, then delete at the source: a failure in between never loses the spec.
      const created = await putSpec(caller, target, copy, 'create');
      try {
        await deleteSpec(caller, where, name, String(_rev));
      } catch (err) {
        await deleteSpec(caller, target, name, created.rev).catch(() => {});
        throw err;
      }
      return { ok: true, from: node, to, id: created.id, rev: created.rev };
    }
    throw notFound(`action ${action} (use start, stop, restart or move)`);
  }));

  // ---- templates in the catalog -----------------------------------------------------------------
  router.get('/templates', h(async (_req, _res, caller) => {
    if (!(await access.canRead(caller, CATALOG_DB))) throw new ApiError(403, 'forbidden', 'you may not read the catalog');
    return index.templates();
  }));
  router.post('/templates', h(async (req, _res, caller) => ({ ok: true, ...(await putSpec(caller, whereCatalog, normalize(whereCatalog, req.body), 'create')) }), 201));
  router.get('/templates/:name', h(async (req, _res, caller) => getSpec(caller, whereCatalog, param(req, 'name'))));
  router.put('/templates/:name', h(async (req, res, caller) => {
    const doc = normalize(whereCatalog, req.body, param(req, 'name'));
    const rev = revOf(req);
    if (rev !== undefined) doc._rev = rev;
    const r = await putSpec(caller, whereCatalog, doc, 'put');
    res.status(doc._rev ? 200 : 201);
    return { ok: true, ...r };
  }));
  router.delete('/templates/:name', h(async (req, _res, caller) => ({ ok: true, ...(await deleteSpec(caller, whereCatalog, param(req, 'name'), revOf(req))) })));

  // ---- live events ------------------------------------------------------------------------------
  router.get('/events', async (req, res, next) => {
    try {
      const caller = await callers.of(req);
      noteCaller(req, caller.name, caller.roles);
      await serveEvents(req, res, caller, index, eventLog, access, { maxQueue: opts.eventsMaxQueue, stats: opts.eventStats });
    } catch (err) {
      next(err);
    }
  });

  router.use((_req, _res, next) => next(new ApiError(404, 'not_found', 'no such API route')));
  return router;
}
