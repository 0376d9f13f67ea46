// Server-level endpoints: welcome, _session, _all_dbs, _dbs_info, _uuids, _up.
import { randomUUID } from 'node:crypto';
import { badRequest, methodNotAllowed, notFound } from '../../errors.ts';
import { isObject, parseJson, readBody, readJsonObject, sendJson } from '../../http.ts';
import { type Ctx, requireServerAdmin, requireUser } from '../context.ts';
import { sessionCookieFor } from '../../../tls/transport.ts';

export const COUCH_VERSION = '3.3.3';

export async function root(ctx: Ctx): Promise<void> {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw methodNotAllowed('GET,HEAD');
  requireUser(ctx);
  sendJson(ctx.res, 200, { couchdb: 'Welcome', version: COUCH_VERSION, uuid: ctx.uuid, features: [], vendor: { name: 'anybios embedded (PouchDB)' } });
}

export async function up(ctx: Ctx): Promise<void> {
  sendJson(ctx.res, 200, { status: 'ok' });
}

export async function session(ctx: Ctx): Promise<void> {
  const { res } = ctx;
  if (ctx.method === 'GET') {
    sendJson(res, 200, { ok: true, userCtx: ctx.userCtx, info: { authentication_handlers: ['cookie', 'default'], ...(ctx.authVia ? { authenticated: ctx.authVia } : {}) } });
    return;
  }
  if (ctx.method === 'DELETE') {
    sendJson(res, 200, { ok: true }, { 'Set-Cookie': sessionCookieFor(ctx.req, 'AuthSession=; Version=1; Path=/; Max-Age=0; HttpOnly; SameSite=Lax') });
    return;
  }
  if (ctx.method !== 'POST') throw methodNotAllowed('GET,POST,DELETE');
  const type = String(ctx.req.headers['content-type'] ?? '');
  let name: unknown;
  let password: unknown;
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams((await readBody(ctx.req, 64 * 1024)).toString('utf8'));
    name = form.get('name');
    password = form.get('password');
  } else {
    const body = await readJsonObject(ctx.req, 64 * 1024);
    name = body.name;
    password = body.password;
  }
  if (typeof name !== 'string' || typeof password !== 'string') throw badRequest('name and password are required strings');
  const userCtx = await ctx.auth.login(name, password);
  sendJson(res, 200, { ok: true, name: userCtx.name, roles: userCtx.roles }, { 'Set-Cookie': sessionCookieFor(ctx.req, await ctx.auth.sessionCookie(name)) });
}

export async function allDbs(ctx: Ctx): Promise<void> {
  if (ctx.method !== 'GET') throw methodNotAllowed('GET');
  requireServerAdmin(ctx);
  let names = ctx.store.list();
  // Key ranges as CouchDB takes them (JSON strings): Fauxton's "Database name" box asks for
  // startkey="<typed prefix>"&endkey="<prefix>香" to suggest names.
  const key = (a: string, b: string) => {
    const v = ctx.query.json(a) ?? ctx.query.json(b);
    if (v !== undefined && typeof v !== 'string') throw badRequest(`${a} must be a JSON string`);
    return v as string | undefined;
  };
  const start = key('startkey', 'start_key');
  const end = key('endkey', 'end_key');
  const descending = ctx.query.bool('descending') ?? false;
  if (descending) names = names.reverse();
  const [low, high] = descending ? [end, start] : [start, end];
  names = names.filter((n) => (low === undefined || n >= low) && (high === undefined || n <= high));
  const skip = ctx.query.int('skip') ?? 0;
  const limit = ctx.query.int('limit') ?? names.length;
  sendJson(ctx.res, 200, names.slice(skip, skip + limit));
}

export async function dbInfo(ctx: Ctx, name: string): Promise<Record<string, unknown>> {
  const info = await ctx.store.get(name).info();
  // LevelDB does not tell live data from garbage, so all three sizes are the bytes of the database's
  // files (without its view indexes); Fauxton's database list shows them in its "Size" column.
  const bytes = await ctx.store.diskSize(name);
  return {
    db_name: name,
    doc_count: info.doc_count,
    doc_del_count: 0,
    update_seq: info.update_seq,
    purge_seq: 0,
    compact_running: false,
    disk_format_version: 8,
    instance_start_time: '0',
    sizes: { active: bytes, external: bytes, file: bytes },
    props: {},
  };
}

export async function dbsInfo(ctx: Ctx): Promise<void> {
  requireServerAdmin(ctx);
  let keys: unknown;
  if (ctx.method === 'POST') keys = (await readJsonObject(ctx.req, ctx.maxBody)).keys;
  else if (ctx.method === 'GET') keys = ctx.store.list();
  else throw methodNotAllowed('GET,POST');
  if (!Array.isArray(keys) || keys.length > 1000 || !keys.every((k) => typeof k === 'string')) throw badRequest('keys must be an array of at most 1000 database names');
  const out = [];
  for (const key of keys as string[]) {
    if (!ctx.store.exists(key)) out.push({ key, error: 'not_found' });
    else out.push({ key, info: await dbInfo(ctx, key) });
  }
  sendJson(ctx.res, 200, out);
}

export async function uuids(ctx: Ctx): Promise<void> {
  requireUser(ctx);
  const count = ctx.query.int('count', 1, 1000) ?? 1;
  sendJson(ctx.res, 200, { uuids: Array.from({ length: count }, () => randomUUID().replace(/-/g, '')) });
}

export async function notSupported(ctx: Ctx): Promise<void> {
  requireUser(ctx);
  throw notFound(`${ctx.path.join('/')} is not served by the embedded CouchDB`);
}

export { isObject, parseJson };
