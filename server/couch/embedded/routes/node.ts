// Node-level endpoints Fauxton asks for on every admin page: _membership, _node/{node}/_config,
// _cluster_setup and _active_tasks. The embedded server is one node with a fixed configuration whose
// only background work is replication, so these answer CouchDB's shapes with what is true here,
// read-only.
// All of them are admin-only, as in CouchDB 3 (chttpd_auth_request requires a server admin for them).
import { forbidden, methodNotAllowed, notFound } from '../../errors.ts';
import { sendJson } from '../../http.ts';
import { SESSION_SECONDS } from '../auth.ts';
import { type Ctx, requireServerAdmin } from '../context.ts';

import { NODE_NAME } from '../node-name.ts';

export { NODE_NAME };

export async function membership(ctx: Ctx): Promise<void> {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,HEAD');
  requireServerAdmin(ctx);
  sendJson(ctx.res, 200, { all_nodes: [NODE_NAME], cluster_nodes: [NODE_NAME] });
}

/**
 * The configuration as CouchDB's `_config` sections (all values strings), limited to settings that
 * hold for the embedded server. Fauxton's CORS page reads `httpd.enable_cors` and `cors`.
 */
function config(ctx: Ctx): Record<string, Record<string, string>> {
  return {
    couchdb: { single_node: 'true', max_document_size: String(ctx.maxBody) },
    chttpd: { max_http_request_size: String(ctx.maxBody) },
    chttpd_auth: { timeout: String(SESSION_SECONDS), allow_persistent_cookies: 'true' },
    httpd: { enable_cors: 'false' },
    cors: {},
    // What the embedded replicator does (replicator/): PouchDB's batches, http(s) endpoints only.
    replicator: { worker_batch_size: '100', valid_endpoint_protocols: 'http,https', max_history: '20' },
    vendor: { name: 'anybios embedded (PouchDB)' },
  };
}

/** `/_node/{node}/...`: `{node}` is `_local` or our node name; only `_config` is served below it. */
export async function node(ctx: Ctx): Promise<void> {
  requireServerAdmin(ctx);
  const [, name, what, section, key, ...extra] = ctx.path;
  if (name !== '_local' && name !== NODE_NAME) throw notFound(`no node ${name ?? ''}; this server is the single node ${NODE_NAME}`);
  if (what !== '_config' || extra.length) throw notFound(`${ctx.path.join('/')} is not served by the embedded CouchDB`);
  if (ctx.method === 'PUT' || ctx.method === 'DELETE') {
    // Fauxton's config editor, CORS page and "create server admin" write here. The embedded server's
    // settings come from its command line and environment (the admin from ANYBIOS_ADMIN_PASSWORD).
    throw forbidden('the embedded CouchDB configuration is read-only; the admin password comes from ANYBIOS_ADMIN_PASSWORD');
  }
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,HEAD');
  const all = config(ctx);
  if (section === undefined) return sendJson(ctx.res, 200, all);
  const values = all[section] ?? {}; // CouchDB answers an unknown section with {}
  if (key === undefined) return sendJson(ctx.res, 200, values);
  if (!Object.hasOwn(values, key)) throw notFound('unknown_config_value');
  sendJson(ctx.res, 200, values[key]);
}

/** Fauxton's setup page: a single node that needs no setup. Setting up a cluster is refused. */
export async function clusterSetup(ctx: Ctx): Promise<void> {
  requireServerAdmin(ctx);
  if (ctx.method === 'POST') throw forbidden('the embedded CouchDB is a single node and needs no setup');
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,HEAD,POST');
  sendJson(ctx.res, 200, { state: 'single_node_enabled' });
}

/**
 * What runs in the background: the replications (in CouchDB's task shape, from replicator/scheduler.ts).
 * The embedded server has no compaction daemon and indexes views when they are read, so nothing else.
 */
export async function activeTasks(ctx: Ctx): Promise<void> {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,HEAD');
  requireServerAdmin(ctx);
  sendJson(ctx.res, 200, ctx.replicator.activeTasks());
}
