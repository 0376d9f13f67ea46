// The agent's loopback API: edits made on the device itself, with or without the server. It writes
// the agent's local database (which replicates when the link is up), with the same schema checks as
// everywhere. Bound to 127.0.0.1 only; a random bearer token in <data>/agent/local.json (0600)
// proves the caller may read that file, i.e. is the device's owner.
import http from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { DocError, checkName, checkSpec, normalizeSpec } from '../ddocs/normalize.ts';
import { parseJson, readBody } from '../server/couch/http.ts';
import type { NodeSync } from './sync/node-sync.ts';
import { handleBundleRequest, type BundleApiOptions } from './bundle-api.ts';

export interface LocalApiOptions {
  db: PouchDB.Database;
  node: string;
  sync: NodeSync;
  /** Where to write {url, token}. */
  infoPath: string;
  port?: number;
  /** More of the agent's state for GET /status (templates: pulls with bytes, rate, ETA; disk use). */
  status?: () => Promise<Record<string, unknown>>;
  /** Bundle import/export at /bundle (see agent/bundle-api.ts). */
  bundle?: BundleApiOptions;
}

export interface LocalApi { url: string; token: string; close(): Promise<void> }

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown) {
    super(message);
  }
}

const COLLECTIONS: Record<string, 'system' | 'volume'> = { systems: 'system', volumes: 'volume' };

export async function startLocalApi(o: LocalApiOptions): Promise<LocalApi> {
  const token = randomBytes(24).toString('base64url');
  const expected = Buffer.from(`Bearer ${token}`);

  const checkToken = (req: http.IncomingMessage) => {
    const given = Buffer.from(String(req.headers.authorization ?? ''));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new HttpError(401, 'unauthorized', `send the token from ${o.infoPath}`);
  };

  async function route(req: http.IncomingMessage): Promise<[number, unknown]> {
    checkToken(req);
    const url = new URL(req.url ?? '/', 'http://local');
    const [coll, rawName, action, ...extra] = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (coll === 'status' && !rawName) return [200, { node: o.node, sync: o.sync.state, server: o.sync.remoteUrl.replace(/\/db\/[^/]+$/, ''), switches: o.sync.switches, syncRestarts: o.sync.restarts, lastError: o.sync.lastError, memory: process.memoryUsage(), ...(await o.status?.()) }];
    const kind = COLLECTIONS[coll ?? ''];
    if (!kind || extra.length) throw new HttpError(404, 'not_found', 'routes: /status, /systems[/NAME[/start|/stop]], /volumes[/NAME], /bundle');
    if (!rawName) {
      if (req.method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'GET only');
      const rows = await o.db.allDocs({ startkey: `${kind}:`, endkey: `${kind}:\ufff0`, include_docs: true });
      const out = [];
      for (const r of rows.rows) {
        const spec = r.doc as unknown as { name: string };
        const status = kind === 'system' ? await o.db.get(`status:${spec.name}`).catch(() => null) : undefined;
        out.push(kind === 'system' ? { spec, status } : spec);
      }
      return [200, out];
    }
    const name = checkName(rawName, kind);
    const id = `${kind}:${name}`;
    const current = await o.db.get(id).catch((err) => {
      if ((err as { status?: number }).status === 404) return null;
      throw err;
    }) as (Record<string, unknown> & { _rev: string }) | null;
    if (action) {
      if (kind !== 'system' || (action !== 'start' && action !== 'stop') || req.method !== 'POST') throw new HttpError(404, 'not_found', 'actions: POST /systems/NAME/start|stop');
      if (!current) throw new HttpError(404, 'not_found', `system ${name} not found`);
      const r = await o.db.put({ ...current, state: action === 'start' ? 'running' : 'stopped' });
      return [200, { ok: true, id, rev: r.rev }];
    }
    if (req.method === 'GET') {
      if (!current) throw new HttpError(404, 'not_found', `${kind} ${name} not found`);
      return [200, kind === 'system' ? { spec: current, status: await o.db.get(`status:${name}`).catch(() => null) } : current];
    }
    if (req.method === 'DELETE') {
      if (!current) throw new HttpError(404, 'not_found', `${kind} ${name} not found`);
      const r = await o.db.remove(current as unknown as PouchDB.Core.RemoveDocument);
      return [200, { ok: true, id, rev: r.rev }];
    }
    if (req.method === 'PUT') {
      const raw = await readBody(req, 1024 * 1024);
      const doc = normalizeSpec(kind, parseJson(raw.toString('utf8')), name);
      checkSpec(doc);
      // The device speaks with the node's credential, which may never ask for root of the host (the
      // server's validate_doc_update refuses it too; refusing here keeps it from running meanwhile).
      if ((doc as { privileged?: unknown }).privileged === true) {
        throw new HttpError(403, 'forbidden', '/privileged: only admins and operators may make a system privileged (root of the host, no user namespace); edit it on the server');
      }
      if (current && doc._rev === undefined) throw new HttpError(409, 'conflict', `${kind} ${name} exists; send its _rev to update it`);
      const r = await o.db.put(doc as PouchDB.Core.PutDocument<object>);
      return [current ? 200 : 201, { ok: true, id, rev: r.rev }];
    }
    throw new HttpError(405, 'method_not_allowed', 'GET, PUT, DELETE');
  }

  const server = http.createServer((req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    // Bundles stream (a template may be large): their own handler, after the same token check.
    if (o.bundle && (req.url ?? '').split('?')[0] === '/bundle') {
      try {
        checkToken(req);
      } catch (err) {
        res.writeHead(401, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: 'unauthorized', reason: (err as Error).message }) + '\n');
        return;
      }
      handleBundleRequest(req, res, o.bundle).catch(() => res.destroy());
      return;
    }
    route(req).then(
      ([status, body]) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body) + '\n');
      },
      (err) => {
        const e = err as { status?: number; code?: string; message?: string; details?: unknown; reason?: string };
        const status = err instanceof HttpError ? err.status : err instanceof DocError ? 400 : typeof e.status === 'number' && e.status < 500 ? e.status : 500;
        const code = err instanceof HttpError ? err.code : err instanceof DocError ? 'invalid' : status === 409 ? 'conflict' : status === 400 ? 'invalid' : 'internal';
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: code, reason: e.reason ?? e.message, ...(err instanceof DocError ? { details: err.details } : {}) }) + '\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  writeFileSync(o.infoPath, JSON.stringify({ url, token, node: o.node }) + '\n', { mode: 0o600 });
  return {
    url,
    token,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
