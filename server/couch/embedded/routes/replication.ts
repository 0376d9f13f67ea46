// `POST /_replicate` and `GET /_scheduler/{jobs,docs}`, answered as CouchDB 3.5 answers them
// (couch_replicator_httpd): any authenticated user may `_replicate` (its jobs are its own: only it or a
// server admin may cancel them, and the reach rule of replicator/endpoint.ts applies unless it is a
// server admin); `_scheduler` is for server admins.
import { CouchError, badRequest, methodNotAllowed, unsupportedMedia } from '../../errors.ts';
import { readJsonObject, sendJson } from '../../http.ts';
import { type Ctx, isServerAdmin, requireServerAdmin } from '../context.ts';
import { REPLICATOR_DB } from '../replicator/scheduler.ts';
import { parseRepRequest, replicationId } from '../replicator/spec.ts';
import { forbiddenHost, type LocalNames } from '../replicator/endpoint.ts';
import { checkDbName } from '../store.ts';

const MAX_BODY = 1024 * 1024;
const STATES = ['initializing', 'error', 'running', 'pending', 'crashing', 'completed', 'failed'];

export async function replicate(ctx: Ctx): Promise<void> {
  if (ctx.method !== 'POST') throw methodNotAllowed('POST');
  if (ctx.userCtx.name === null) throw new CouchError(401, 'unauthorized', 'You are not an authenticated user');
  const type = String(ctx.req.headers['content-type'] ?? '');
  if (!/^application\/json\s*(;|$)/i.test(type)) throw unsupportedMedia('Content-Type must be application/json');
  const body = await readJsonObject(ctx.req, Math.min(ctx.maxBody, MAX_BODY));
  const request = parseRepRequest(body, localNames(ctx));
  const user = { name: ctx.userCtx.name, admin: isServerAdmin(ctx.userCtx) };
  if (request.cancel) {
    const id = request.id ?? replicationId(request.spec!);
    const cancelled = ctx.replicator.cancel(id, user);
    if (!cancelled) return sendJson(ctx.res, 404, { error: 'not_found', reason: `no replication ${id} started by _replicate` });
    return sendJson(ctx.res, 200, { ok: true, _local_id: cancelled });
  }
  const spec = request.spec!;
  if (!user.admin) {
    const host = forbiddenHost(spec.source) ?? forbiddenHost(spec.target);
    if (host) throw new CouchError(403, 'forbidden', `${host}: a replication not started by a server admin may not reach loopback, link-local or unspecified addresses`);
  }
  let out;
  try {
    out = await ctx.replicator.replicate(spec, user);
  } catch (err) {
    if (err instanceof CouchError) throw err;
    // A one-shot replication that failed: CouchDB answers 500 with the replicator's error and reason.
    const e = err as { error?: string; reason?: string; message?: string };
    return sendJson(ctx.res, 500, { error: e.error ?? 'replication_failed', reason: String(e.reason ?? e.message ?? err) });
  }
  if (out.continuous) return sendJson(ctx.res, 202, { ok: true, _local_id: out.id });
  sendJson(ctx.res, 200, out.result);
}

/** Database names in `_replicate`: this server's, with the caller's own credentials (endpoint.ts). */
function localNames(ctx: Ctx): LocalNames | undefined {
  const self = ctx.replicator.selfUrl;
  if (!self) return undefined;
  const headers: Record<string, string> = {};
  const auth = ctx.req.headers.authorization;
  if (auth) headers.Authorization = auth;
  const session = /(?:^|;\s*)AuthSession=([^;]*)/.exec(String(ctx.req.headers.cookie ?? ''));
  if (session) headers.Cookie = `AuthSession=${session[1]}`;
  return (name) => {
    checkDbName(name); // 400 illegal_database_name; and never `..`, which would leave /db
    return { url: `${self}/${encodeURIComponent(name)}`, headers: { ...headers }, self: true };
  };
}

/** `/_scheduler/jobs[/<id>]`, `/_scheduler/docs[/_replicator[/<docid>]]`. */
export async function scheduler(ctx: Ctx): Promise<void> {
  requireServerAdmin(ctx);
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,HEAD');
  const [, what, ...rest] = ctx.path;
  const skip = ctx.query.int('skip') ?? 0;
  const limit = ctx.query.int('limit') ?? Number.MAX_SAFE_INTEGER;
  if (what === 'jobs' && rest.length === 0) {
    const all = ctx.replicator.jobs();
    const offset = Math.min(skip, all.length);
    return sendJson(ctx.res, 200, { total_rows: all.length, offset, jobs: all.slice(offset, offset + Math.min(limit, 100_000)) });
  }
  if (what === 'jobs' && rest.length === 1) {
    const job = ctx.replicator.job(rest[0]);
    if (!job) throw new CouchError(404, 'not_found', 'missing');
    return sendJson(ctx.res, 200, job);
  }
  if (what === 'docs' && (rest.length === 0 || (rest[0] === REPLICATOR_DB && rest.length === 1))) {
    const states = ctx.query.str('states');
    let rows = ctx.replicator.docRows();
    if (states !== undefined) {
      const wanted = states.split(',').map((s) => s.trim());
      const bad = wanted.find((s) => !STATES.includes(s));
      if (bad !== undefined) throw new CouchError(400, 'query_parse_error', `States must be one or more of [${STATES.join(',')}]`);
      rows = rows.filter((r) => wanted.includes(String(r.state)));
    }
    const offset = Math.min(skip, rows.length);
    return sendJson(ctx.res, 200, { total_rows: rows.length, offset, docs: rows.slice(offset, offset + limit) });
  }
  if (what === 'docs' && rest[0] === REPLICATOR_DB && rest.length >= 2) {
    const doc = ctx.replicator.doc(rest.slice(1).join('/'));
    if (!doc) throw new CouchError(404, 'not_found', 'missing');
    return sendJson(ctx.res, 200, doc);
  }
  if (what === 'docs') throw badRequest('Invalid path');
  sendJson(ctx.res, 404, { error: 'not found' });
}
