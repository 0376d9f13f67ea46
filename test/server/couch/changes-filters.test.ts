// `_changes?filter=ddoc/name` and `filter=_view&view=ddoc/name` as Apache CouchDB 3.5 serves them
// (couch_changes.erl configure_filter/filter, share/server/filter.js), over HTTP against the embedded
// server: every feed type, `req` as CouchDB builds it, style=all_docs, limit, CouchDB's errors; a
// PouchDB filtered replication (filter + query_params, and _view); and hostile filters (loops,
// allocation, throws, odd results, sandbox escapes) that fail the request and never hold the server.
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const dbs: string[] = [];
const localDir = mkdtempSync(join(tmpdir(), 'anybios-changes-filters-'));
const A = () => server.adminAuth;
const couch = (path: string, init: Parameters<typeof call>[2] = {}) => call(server.couchUrl, path, { auth: A(), ...init });

const DDOC = {
  filters: {
    bytype: 'function (doc, req) { return doc.type === req.query.type; }',
    // What CouchDB's req carries: the caller, the database, the query; not the caller's credentials.
    req: 'function (doc, req) { return doc.type === "a" && req.userCtx.name === "admin" && req.userCtx.db === req.info.db_name && req.method === "GET" && req.query.x === "1" && !req.headers.authorization && req.path[1] === "_changes" && Array.isArray(req.secObj.admins.names); }',
    deleted: 'function (doc) { return doc._deleted === true; }',
    stubs: 'function (doc) { return !!doc._attachments && doc._attachments["a.txt"].stub === true && doc._attachments["a.txt"].data === undefined; }',
    vb: 'function (doc) { return doc.v === "b"; }',
    lib: 'function (doc) { return require("lib/types").wanted.indexOf(doc.type) >= 0; }',
    self: 'function (doc) { return this._id === "_design/app" && doc.type === "a"; }',
    truthy: 'function (doc) { return doc.type === "a" ? "yes" : 0; }',
    objects: 'function (doc) { return doc.type === "b" ? {} : null; }',
  },
  lib: { types: 'exports.wanted = ["b"];' },
  views: { onlyb: { map: 'function (doc) { if (doc.type === "b") emit(doc._id, null); }' } },
};

test.before(async () => {
  server = await startServer({ embedded: true });
});

test.after.always(async () => {
  if (!server) return;
  if (server.alive()) for (const db of dbs) await couch(`/${db}`, { method: 'DELETE' }).catch(() => {});
  await server.stop();
  removeDataDir(server.dataDir);
  rmSync(localDir, { recursive: true, force: true });
});

/** A database with _design/app, docs a1 a2 (type a), b1 (type b); and whatever `ddocs` adds. */
async function freshDb(base: string, extra: Record<string, unknown> = {}): Promise<string> {
  const db = uniq(base);
  t_ok(await couch(`/${db}`, { method: 'PUT' }));
  dbs.push(db);
  t_ok(await couch(`/${db}/_design/app`, { method: 'PUT', json: { ...DDOC, ...extra } }));
  t_ok(await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { docs: [{ _id: 'a1', type: 'a' }, { _id: 'b1', type: 'b' }, { _id: 'a2', type: 'a' }] } }));
  return db;
}

function t_ok(r: Awaited<ReturnType<typeof call>>): void {
  if (r.status >= 300) throw new Error(`${r.status} ${r.text}`);
}

const ids = (r: Awaited<ReturnType<typeof call>>) => (r.body.results as { id: string }[]).map((x) => x.id);

function isError(t: ExecutionContext, r: Awaited<ReturnType<typeof call>>, status: number, error: string, reason?: string | RegExp): void {
  t.is(r.status, status, r.text);
  t.is(r.body?.error, error, r.text);
  if (typeof reason === 'string') t.is(r.body?.reason, reason);
  else if (reason) t.regex(r.body?.reason ?? '', reason);
}

test('filter=ddoc/name: only documents the function passes, with query parameters as req.query (CouchDB)', async (t) => {
  const db = await freshDb('cf-basic');
  const a = await couch(`/${db}/_changes?filter=app/bytype&type=a`);
  t.is(a.status, 200, a.text);
  t.deepEqual(ids(a), ['a1', 'a2']);
  t.is(typeof a.body.last_seq, typeof (await couch(`/${db}/_changes`)).body.last_seq);
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/bytype&type=b`)), ['b1']);
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/req&x=1`)), ['a1', 'a2']);
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/lib`)), ['b1'], 'CommonJS require over the design document');
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/self`)), ['a1', 'a2'], 'this is the design document');
  // Results: truthy passes, falsy does not (filter.js: `(fun(...) && true) || false`).
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/truthy`)), ['a1', 'a2']);
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/objects`)), ['b1']);
  // include_docs, limit (last_seq: the last row's), deletions (the filter sees _deleted).
  const lim = await couch(`/${db}/_changes?filter=app/bytype&type=a&limit=1&include_docs=true`);
  t.deepEqual(ids(lim), ['a1']);
  t.is(lim.body.results[0].doc.type, 'a');
  const rest = await couch(`/${db}/_changes?filter=app/bytype&type=a&since=${encodeURIComponent(JSON.stringify(lim.body.last_seq))}`);
  t.deepEqual(ids(rest), ['a2']);
  const a1 = await couch(`/${db}/a1`);
  t_ok(await couch(`/${db}/a1?rev=${a1.body._rev}`, { method: 'DELETE' }));
  const del = await couch(`/${db}/_changes?filter=app/deleted`);
  t.deepEqual(ids(del), ['a1']);
  t.true(del.body.results[0].deleted);
});

test('filter=_view&view=ddoc/name: documents the map function emits for (CouchDB)', async (t) => {
  const db = await freshDb('cf-view');
  const r = await couch(`/${db}/_changes?filter=_view&view=app/onlyb`);
  t.is(r.status, 200, r.text);
  t.deepEqual(ids(r), ['b1']);
});

test('the filter sees attachments as stubs; style=all_docs tests every leaf and lists the ones that pass', async (t) => {
  const db = await freshDb('cf-leaves');
  t_ok(await couch(`/${db}/att`, { method: 'PUT', json: { _attachments: { 'a.txt': { content_type: 'text/plain', data: Buffer.from('hello').toString('base64') } } } }));
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/stubs&attachments=true&include_docs=true`)), ['att']);
  const ra = `1-${'a'.repeat(32)}`;
  const rb = `1-${'b'.repeat(32)}`;
  t_ok(await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { new_edits: false, docs: [{ _id: 'c', _rev: ra, v: 'a' }, { _id: 'c', _rev: rb, v: 'b' }] } }));
  const all = await couch(`/${db}/_changes?filter=app/vb&style=all_docs`);
  t.deepEqual(ids(all), ['c']);
  t.deepEqual(all.body.results[0].changes, [{ rev: rb }]);
  // main_only: the winner (rb) is tested.
  t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/vb`)), ['c']);
});

test('longpoll and continuous feeds with a filter wake only for documents that pass', async (t) => {
  const db = await freshDb('cf-live');
  const now = (await couch(`/${db}/_changes?since=now`)).body.last_seq;
  const since = encodeURIComponent(JSON.stringify(now));
  const poll = couch(`/${db}/_changes?feed=longpoll&filter=app/bytype&type=b&since=${since}&timeout=20000`);
  await new Promise((r) => setTimeout(r, 300));
  t_ok(await couch(`/${db}/x-a`, { method: 'PUT', json: { type: 'a' } }));
  await new Promise((r) => setTimeout(r, 300));
  t_ok(await couch(`/${db}/x-b`, { method: 'PUT', json: { type: 'b' } }));
  const got = await poll;
  t.is(got.status, 200, got.text);
  t.deepEqual(ids(got), ['x-b']);

  const ctl = new AbortController();
  const res = await fetch(`${server.couchUrl}/${db}/_changes?feed=continuous&filter=app/bytype&type=a&since=${since}&heartbeat=1000`, { headers: { Authorization: A() }, signal: ctl.signal });
  const reader = res.body!.getReader();
  let text = '';
  const seen = async (id: string) => {
    const until = Date.now() + 10_000;
    while (!text.includes(`"id":"${id}"`) && Date.now() < until) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
  };
  await seen('x-a');
  t_ok(await couch(`/${db}/y-b`, { method: 'PUT', json: { type: 'b' } }));
  t_ok(await couch(`/${db}/y-a`, { method: 'PUT', json: { type: 'a' } }));
  await seen('y-a');
  ctl.abort();
  const rows = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { id?: string });
  t.deepEqual(rows.map((r) => r.id), ['x-a', 'y-a']);
});

test('malformed or missing filters: CouchDB\'s answers', async (t) => {
  const db = await freshDb('cf-errors');
  isError(t, await couch(`/${db}/_changes?filter=nope/x`), 404, 'not_found', 'missing');
  isError(t, await couch(`/${db}/_changes?filter=app/nope`), 404, 'not_found', 'missing json key: nope');
  t_ok(await couch(`/${db}/_design/empty`, { method: 'PUT', json: {} }));
  isError(t, await couch(`/${db}/_changes?filter=empty/x`), 404, 'not_found', 'missing json key: filters');
  isError(t, await couch(`/${db}/_changes?filter=app`), 400, 'bad_request', '`filter` must be of the form `designname/filtername`');
  isError(t, await couch(`/${db}/_changes?filter=a/b/c`), 400, 'bad_request', '`filter` must be of the form `designname/filtername`');
  isError(t, await couch(`/${db}/_changes?filter=_nope`), 400, 'bad_request', 'unknown builtin filter name');
  isError(t, await couch(`/${db}/_changes?filter=_view`), 400, 'bad_request', '`view` filter parameter is not provided.');
  isError(t, await couch(`/${db}/_changes?filter=_view&view=app`), 400, 'bad_request', '`view` must be of the form `designname/viewname`');
  isError(t, await couch(`/${db}/_changes?filter=_view&view=app/nope`), 404, 'not_found', 'missing json key: nope');
  // A reader who is not a member gets the database's 401/403 before any filter runs.
  t.is((await call(server.couchUrl, `/${db}/_changes?filter=app/bytype`)).status, 401);
});

// ---------------------------------------------------------------------------------------------------
// hostile filters (design documents are admin-written; still, they cannot hold or break the server)

const HOSTILE = {
  loop: 'function (doc) { for (;;) {} }',
  slower: 'function (doc) { var t = Date.now(); while (Date.now() - t < 400) {} return true; }',
  slow: 'function (doc) { var t = Date.now(); while (Date.now() - t < 25) {} return true; }',
  alloc: 'function (doc) { var a = []; for (;;) a.push(new Array(1e6).fill(1)); }',
  hoard: 'function (doc) { globalThis.keep = globalThis.keep || []; keep.push(new Array(1e6).fill(doc._id)); return true; }',
  throws: 'function (doc) { throw new TypeError("boom " + doc._id); }',
  throwsObj: 'function (doc) { throw { error: "nope", reason: "not this one" }; }',
  evilThrow: 'function (doc) { throw { get error() { for (;;) {} } }; }',
  notAFunction: '42',
  syntax: 'function (doc) {',
  escape: 'function (doc) { try { return typeof log.constructor("return process")().pid === "number"; } catch (e) { return false; } }',
  escapeThis: 'function (doc) { try { return typeof this.constructor.constructor("return process")().pid === "number"; } catch (e) { return false; } }',
  recurse: 'function (doc) { function f() { return f() + 1; } return f(); }',
};

async function hostileDb(): Promise<string> {
  const db = await freshDb('cf-hostile', { filters: { ...DDOC.filters, ...HOSTILE } });
  const docs = Array.from({ length: 40 }, (_, i) => ({ _id: `h${String(i).padStart(2, '0')}`, type: 'h' }));
  t_ok(await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { docs } }));
  return db;
}

/** Times `GET /_up` while `busy` runs: the event loop must keep answering. */
async function latencyDuring(busy: Promise<unknown>): Promise<number> {
  let worst = 0;
  let done = false;
  void busy.finally(() => { done = true; });
  while (!done) {
    const t0 = Date.now();
    await couch('/_up');
    worst = Math.max(worst, Date.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return worst;
}

test('a filter that loops forever fails the request (500 os_process_error) and never holds the server', async (t) => {
  const db = await hostileDb();
  const t0 = Date.now();
  const req = couch(`/${db}/_changes?filter=app/loop`);
  const worst = await latencyDuring(req);
  const r = await req;
  isError(t, r, 500, 'os_process_error', /the filter _design\/app\/filters\/loop took longer than 1000 ms on document "_design\/app"/);
  t.true(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
  t.true(worst < 750, `the server answered /_up in ${worst} ms at worst`);
});

test('eight looping filters at once: four workers run, the rest wait their turn; all fail, the server answers', async (t) => {
  const db = await hostileDb();
  const t0 = Date.now();
  const all = Promise.all(Array.from({ length: 8 }, () => couch(`/${db}/_changes?filter=app/loop`)));
  const worst = await latencyDuring(all);
  for (const r of await all) isError(t, r, 500, 'os_process_error', /took longer than 1000 ms/);
  t.true(Date.now() - t0 < 15_000, `${Date.now() - t0} ms`);
  t.true(worst < 750, `the server answered /_up in ${worst} ms at worst`);
});

test('each request\'s own req reaches the filter, also on a worker another caller used before', async (t) => {
  const db = await freshDb('cf-users', { filters: { ...DDOC.filters, mine: 'function (doc, req) { return doc.owner === req.userCtx.name; }' } });
  const name = uniq('ursula');
  const password = 'ursula-password-1';
  t_ok(await couch(`/_users/org.couchdb.user:${name}`, { method: 'PUT', json: { _id: `org.couchdb.user:${name}`, name, type: 'user', roles: [], password } }));
  t_ok(await couch(`/${db}/_security`, { method: 'PUT', json: { admins: { names: [], roles: [] }, members: { names: [name], roles: [] } } }));
  t_ok(await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { docs: [{ _id: 'mine-admin', owner: 'admin' }, { _id: 'mine-u', owner: name }] } }));
  const asUser = { auth: 'Basic ' + Buffer.from(`${name}:${password}`).toString('base64') };
  try {
    for (let i = 0; i < 2; i++) {
      t.deepEqual(ids(await couch(`/${db}/_changes?filter=app/mine`)), ['mine-admin']);
      t.deepEqual(ids(await call(server.couchUrl, `/${db}/_changes?filter=app/mine`, asUser)), ['mine-u']);
    }
  } finally {
    const u = await couch(`/_users/org.couchdb.user:${name}`);
    await couch(`/_users/org.couchdb.user:${name}?rev=${u.body._rev}`, { method: 'DELETE' });
  }
});

test('a slow filter (25 ms a document, 44 documents) runs off the event loop', async (t) => {
  const db = await hostileDb();
  const req = couch(`/${db}/_changes?filter=app/slow`);
  const worst = await latencyDuring(req);
  const r = await req;
  t.is(r.status, 200, r.text);
  t.is(r.body.results.length, 44); // the design document, a1 b1 a2, 40 h docs
  t.true(worst < 750, `the server answered /_up in ${worst} ms at worst while the filter ran ~1.1 s`);
});

test('a filter over its budget for one batch (400 ms a document) fails the request after 5 s', async (t) => {
  const db = await hostileDb();
  const t0 = Date.now();
  const req = couch(`/${db}/_changes?filter=app/slower`);
  const worst = await latencyDuring(req);
  const r = await req;
  isError(t, r, 500, 'os_process_error', /the filter _design\/app\/filters\/slower took longer than 5000 ms over one batch of changes/);
  const took = Date.now() - t0;
  t.true(took >= 5000 && took < 15_000, `${took} ms`);
  t.true(worst < 750, `the server answered /_up in ${worst} ms at worst`);
});

test('filters that allocate without end fail the request, the server lives', async (t) => {
  const db = await hostileDb();
  // One call that allocates in a loop: stopped by its time limit or its heap, whichever comes first.
  isError(t, await couch(`/${db}/_changes?filter=app/alloc`), 500, 'os_process_error', /ran out of memory|took longer than/);
  // Calls that each keep 8 MB in the sandbox's globals: the worker's heap ends it, not the server's.
  isError(t, await couch(`/${db}/_changes?filter=app/hoard`), 500, 'os_process_error', /ran out of memory \(its limit is 96 MiB\)/);
  t.is((await couch('/_up')).status, 200);
  t.is((await couch(`/${db}/_changes?filter=app/bytype&type=a`)).body.results.length, 2);
});

test('filters that throw, recurse or are not functions: CouchDB\'s 500 with the error\'s name', async (t) => {
  const db = await hostileDb();
  isError(t, await couch(`/${db}/_changes?filter=app/throws`), 500, 'TypeError', /threw on document "_design\/app": boom _design\/app/);
  isError(t, await couch(`/${db}/_changes?filter=app/throwsObj`), 500, 'nope', /not this one/);
  isError(t, await couch(`/${db}/_changes?filter=app/evilThrow`), 500, 'os_process_error', /took longer than/);
  isError(t, await couch(`/${db}/_changes?filter=app/recurse`), 500, 'RangeError');
  isError(t, await couch(`/${db}/_changes?filter=app/notAFunction`), 500, 'compilation_error', /does not compile/);
  isError(t, await couch(`/${db}/_changes?filter=app/syntax`), 500, 'compilation_error', /does not compile/);
  // Mid-stream, a continuous feed ends with the error as its last line.
  const res = await fetch(`${server.couchUrl}/${db}/_changes?feed=continuous&filter=app/throws&heartbeat=100&since=now`, { headers: { Authorization: A() } });
  t.is(res.status, 200);
  await new Promise((r) => setTimeout(r, 300));
  t_ok(await couch(`/${db}/late`, { method: 'PUT', json: {} }));
  const text = await res.text();
  const last = JSON.parse(text.trim().split('\n').pop()!);
  t.is(last.error, 'TypeError', text);
});

test('the sandbox gives filter code no way to the host process', async (t) => {
  const db = await hostileDb();
  for (const name of ['escape', 'escapeThis']) {
    const r = await couch(`/${db}/_changes?filter=app/${name}`);
    t.is(r.status, 200, r.text);
    t.deepEqual(r.body.results, [], `${name} reached the host's process`);
  }
});

test('validate_doc_update code has no way to the host process either (log was a host function)', async (t) => {
  const db = await freshDb('cf-vdu');
  const vdu = 'function (doc) { var p; try { p = log.constructor("return process")(); } catch (e) {} if (p && p.pid) throw({ forbidden: "escaped to the host" }); }';
  t_ok(await couch(`/${db}/_design/vdu`, { method: 'PUT', json: { validate_doc_update: vdu } }));
  const w = await couch(`/${db}/after-vdu`, { method: 'PUT', json: { v: 1 } });
  t.is(w.status, 201, w.text);
});

// ---------------------------------------------------------------------------------------------------
// PouchDB's replicator, which sends filter= with query_params

test('a PouchDB filtered replication (filter + query_params, and _view) pulls only what passes', async (t) => {
  const db = await freshDb('cf-pouch');
  const remote = new PouchDB(`${server.couchUrl}/${db}`, { auth: { username: 'admin', password: server.adminPassword }, skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);
  const byType = new PouchDB(join(localDir, 'bytype'));
  const byView = new PouchDB(join(localDir, 'byview'));
  try {
    const r = await byType.replicate.from(remote, { filter: 'app/bytype', query_params: { type: 'a' } });
    t.true(r.ok);
    t.deepEqual((await byType.allDocs()).rows.map((x) => x.id), ['a1', 'a2']);
    const v = await byView.replicate.from(remote, { filter: '_view', view: 'app/onlyb' } as PouchDB.Replication.ReplicateOptions);
    t.true(v.ok);
    t.deepEqual((await byView.allDocs()).rows.map((x) => x.id), ['b1']);
    // Later changes, live: only type a arrives.
    const live = byType.replicate.from(remote, { live: true, filter: 'app/bytype', query_params: { type: 'a' } });
    try {
      t_ok(await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { docs: [{ _id: 'a3', type: 'a' }, { _id: 'b3', type: 'b' }] } }));
      const until = Date.now() + 10_000;
      while (Date.now() < until && !(await byType.get('a3').then(() => true, () => false))) await new Promise((r) => setTimeout(r, 100));
      t.deepEqual((await byType.allDocs()).rows.map((x) => x.id), ['a1', 'a2', 'a3']);
    } finally {
      live.cancel();
    }
  } finally {
    await byType.close();
    await byView.close();
    await remote.close();
  }
});
