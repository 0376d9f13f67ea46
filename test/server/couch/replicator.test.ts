// The embedded server's replicator over HTTP, between real embedded servers: `_replicate` (one-shot,
// continuous, cancel, database names as CouchDB 3.5 takes them), `_replicator` documents (owner,
// credentials hidden from other users, completed/failed states, a restart that resumes from the
// checkpoints), `_scheduler/jobs|docs`, `_active_tasks`, `/_session` at the server root, bad bodies with
// CouchDB's status codes, and hostile callers: a non-admin never reads another's credentials and never
// makes the server reach loopback or link-local addresses (docs/couchdb.md, "Replication").
import test from 'ava';
import { lookup } from 'node:dns/promises';
import { hostname, networkInterfaces } from 'node:os';
import { basic, call, removeDataDir, startServer, type TestServer } from '../../helpers/server.ts';
import { eventually } from '../../helpers/wait.ts';
import { startTcpProxy } from '../../helpers/tcp-proxy.ts';

let A: TestServer;
let B: TestServer;
/** An address of this machine that is not loopback: B listens there, so non-admins' jobs may reach it. */
const lanIp = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
const bob = basic('bob', 'bob-password');
const eve = basic('eve', 'eve-password');

/** `http://admin:pw@host/db/<name>` on a server. */
const dbUrl = (s: TestServer, name: string, user = 'admin', password = s.adminPassword) => `${s.couchUrl}/${name}`.replace('://', `://${user}:${encodeURIComponent(password)}@`);
const as = (s: TestServer, path: string, init: Parameters<typeof call>[2] = {}) => call(s.couchUrl, path, { auth: s.adminAuth, ...init });
const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 20_000) => eventually(what, fn, pred, { ms, context: () => `${A?.output() ?? ''}` });

async function fill(s: TestServer, db: string, n: number, from = 0): Promise<void> {
  await as(s, `/${db}`, { method: 'PUT' });
  const docs = Array.from({ length: n }, (_, i) => ({ _id: `doc-${String(from + i).padStart(4, '0')}`, n: from + i }));
  const r = await as(s, `/${db}/_bulk_docs`, { method: 'POST', json: { docs } });
  if (r.status !== 201) throw new Error(`bulk_docs ${r.status} ${r.text}`);
}

test.before(async () => {
  [A, B] = await Promise.all([startServer({ embedded: true }), startServer({ embedded: true, args: lanIp ? ['--host', lanIp, '--insecure-http'] : [] })]);
  for (const [name, password] of [['bob', 'bob-password'], ['eve', 'eve-password']]) {
    const r = await as(A, `/_users/org.couchdb.user:${name}`, { method: 'PUT', json: { name, password, roles: [], type: 'user' } });
    if (r.status !== 201) throw new Error(`user ${name}: ${r.status} ${r.text}`);
  }
  // As in CouchDB 3 (default_security admin_only), users write to _replicator once an admin lets them.
  const sec = await as(A, '/_replicator/_security', { method: 'PUT', json: { members: { names: ['bob', 'eve'], roles: [] }, admins: { names: [], roles: [] } } });
  if (sec.status !== 200) throw new Error(`_security: ${sec.status} ${sec.text}`);
});

test.after.always(async () => {
  for (const s of [A, B]) {
    if (!s) continue;
    await s.stop();
    removeDataDir(s.dataDir);
  }
});

test.serial('_replicate one-shot between two servers: CouchDB result shape, create_target, documents arrive', async (t) => {
  await fill(B, 'one-src', 25);
  const r = await as(A, '/_replicate', { method: 'POST', json: { source: dbUrl(B, 'one-src'), target: { url: `${A.couchUrl}/one-dst`, auth: { basic: { username: 'admin', password: A.adminPassword } } }, create_target: true } });
  t.is(r.status, 200, r.text);
  t.true(r.body.ok);
  t.is(r.body.replication_id_version, 4);
  t.is(r.body.history[0].docs_written, 25);
  t.is(r.body.history[0].missing_checked, 25);
  t.is(r.body.history[0].doc_write_failures, 0);
  t.is((await as(A, '/one-dst')).body.doc_count, 25);
  // Done: a one-shot job is not listed among the jobs any more.
  t.deepEqual((await as(A, '/_scheduler/jobs')).body.jobs.filter((j: { source: string }) => j.source.includes('one-src')), []);
  // Again: nothing is missing, nothing is written.
  const again = await as(A, '/_replicate', { method: 'POST', json: { source: dbUrl(B, 'one-src'), target: dbUrl(A, 'one-dst') } });
  t.is(again.status, 200, again.text);
  t.is(again.body.history[0].docs_written, 0);
});

test.serial('_replicate with database names (Fauxton "Verify"): this server, with the caller\'s own credentials', async (t) => {
  await fill(A, 'verifytestdb', 4);
  const r = await as(A, '/_replicate', { method: 'POST', json: { create_target: true, source: 'verifytestdb', target: 'verifytestdb_replicate' } });
  t.is(r.status, 200, r.text);
  t.is((await as(A, '/verifytestdb_replicate')).body.doc_count, 4);
  // bob may not read verifytestdb (admin only): the replication runs as bob and is refused, as in CouchDB.
  const byBob = await call(A.couchUrl, '/_replicate', { method: 'POST', auth: bob, json: { source: 'verifytestdb', target: 'bob-copy', create_target: true } });
  t.is(byBob.status, 500, byBob.text);
  t.is(byBob.body.error, 'unauthorized');
  t.regex(byBob.body.reason, /verifytestdb/);
  t.is((await as(A, '/bob-copy')).status, 404);
  // A session cookie is carried as well (Fauxton sends only that).
  const login = await call(A.couchUrl, '/_session', { method: 'POST', json: { name: 'admin', password: A.adminPassword } });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
  const byCookie = await call(A.couchUrl, '/_replicate', { method: 'POST', headers: { Cookie: cookie }, json: { source: 'verifytestdb', target: 'cookie-copy', create_target: true } });
  t.is(byCookie.status, 200, byCookie.text);
});

test.serial('bad _replicate bodies: CouchDB\'s status and error, naming the field', async (t) => {
  const post = (json: unknown, init: Parameters<typeof call>[2] = {}) => as(A, '/_replicate', { method: 'POST', json, ...init });
  const src = dbUrl(B, 'one-src');
  const cases: [unknown, number, string, RegExp][] = [
    [{ source: src, target: dbUrl(A, 'x'), continuous: 'yes' }, 400, 'bad_request', /parameter `continuous` must be a boolean/],
    [{ source: src, target: dbUrl(A, 'x'), create_target: 1 }, 400, 'bad_request', /parameter `create_target` must be a boolean/],
    [{ source: src, target: dbUrl(A, 'x'), doc_ids: 'a' }, 400, 'bad_request', /parameter `doc_ids` must be an array/],
    [{ source: src, target: dbUrl(A, 'x'), selector: [] }, 400, 'bad_request', /parameter `selector` must be a JSON object/],
    [{ source: src, target: dbUrl(A, 'x'), query_params: 3 }, 400, 'bad_request', /parameter `query_params` must be an object/],
    [{ source: src, target: dbUrl(A, 'x'), doc_ids: ['a'], selector: {} }, 400, 'bad_request', /mutually exclusive/],
    [{ source: src, target: dbUrl(A, 'x'), filter: 'nofilter' }, 400, 'bad_request', /Invalid filter/],
    [{ source: src, target: dbUrl(A, 'x'), cancel: 'yes' }, 400, 'bad_request', /parameter `cancel` must be a boolean/],
    [{ target: dbUrl(A, 'x') }, 400, 'bad_request', /source is missing/],
    [{ source: { url: 5 }, target: dbUrl(A, 'x') }, 400, 'invalid_replication', /source has an invalid url/],
    [{ source: { url: 'ftp://x/y' }, target: dbUrl(A, 'x') }, 400, 'invalid_replication', /source has an invalid url/],
    [{ source: 'file:///etc/passwd', target: dbUrl(A, 'x') }, 400, 'invalid_replication', /source has an invalid url/],
    [{ source: src, target: { url: 'http://x/y', headers: { 'Bad Header': 'v' } } }, 400, 'bad_request', /target.headers/],
    [{ source: src, target: { url: 'http://x/y', headers: { A: 'v\r\nInjected: 1' } } }, 400, 'bad_request', /target.headers/],
    [{ source: src, target: { url: 'http://x/y', auth: { basic: { username: 1 } } } }, 400, 'bad_request', /target.auth.basic/],
    [{ source: `http://x/${'a'.repeat(5000)}`, target: dbUrl(A, 'x') }, 400, 'invalid_replication', /longer than/],
    [{ source: src, target: dbUrl(A, 'x'), doc_ids: Array.from({ length: 10_001 }, (_, i) => `d${i}`) }, 400, 'bad_request', /more than 10000/],
    [[], 400, 'bad_request', /JSON object/],
    [{ source: '..', target: 'x' }, 400, 'illegal_database_name', /Only lowercase/],
    [{ source: 'verifytestdb', target: { url: 'Bad/Name' } }, 400, 'illegal_database_name', /Only lowercase/],
  ];
  for (const [body, status, error, reason] of cases) {
    const r = await post(body);
    t.is(r.status, status, `${JSON.stringify(body).slice(0, 120)} → ${r.text}`);
    t.is(r.body.error, error, JSON.stringify(body).slice(0, 120));
    t.regex(r.body.reason, reason);
  }
  t.is((await as(A, '/_replicate', { method: 'POST', body: '{"source":', headers: { 'Content-Type': 'application/json' } })).status, 400);
  t.is((await as(A, '/_replicate', { method: 'POST', body: '[' .repeat(100_000), headers: { 'Content-Type': 'application/json' } })).status, 400);
  const plain = await as(A, '/_replicate', { method: 'POST', body: '{}', headers: { 'Content-Type': 'text/plain' } });
  t.is(plain.status, 415);
  t.is(plain.body.error, 'bad_content_type');
  t.is((await as(A, '/_replicate', { method: 'POST', body: 'x'.repeat(2 * 1024 * 1024), headers: { 'Content-Type': 'application/json' } })).status, 413);
  t.is((await as(A, '/_replicate')).status, 405);
  t.is((await call(A.couchUrl, '/_replicate', { method: 'POST', json: { source: src, target: dbUrl(A, 'x') } })).status, 401, 'anonymous');
  const cancelUnknown = await post({ cancel: true, replication_id: 'nope' });
  t.is(cancelUnknown.status, 404);
  t.true(A.alive());
});

test.serial('continuous _replicate: 202 with the id, listed in _scheduler/jobs and _active_tasks, cancelled by its owner or an admin only', async (t) => {
  await fill(B, 'cont-src', 3);
  const body = { source: dbUrl(B, 'cont-src'), target: dbUrl(A, 'cont-dst'), create_target: true, continuous: true };
  const r = await as(A, '/_replicate', { method: 'POST', json: body });
  t.is(r.status, 202, r.text);
  t.regex(r.body._local_id, /^[0-9a-f]{32}\+continuous\+create_target$/);
  const id = r.body._local_id;
  await until('3 docs', () => as(A, '/cont-dst'), (x) => x.body.doc_count === 3);
  await as(B, '/cont-src/later', { method: 'PUT', json: { later: true } });
  await until('later doc', () => as(A, '/cont-dst/later'), (x) => x.status === 200);
  const jobs = (await as(A, '/_scheduler/jobs')).body;
  const job = jobs.jobs.find((j: { id: string }) => j.id === id);
  t.truthy(job, JSON.stringify(jobs));
  t.is(job.database, null);
  t.is(job.user, 'admin');
  t.is(job.source, `${B.couchUrl}/cont-src/`, 'no credentials shown');
  t.is(job.history.at(-1).type, 'added');
  t.is((await as(A, `/_scheduler/jobs/${encodeURIComponent(id)}`)).body.id, id);
  const tasks = (await as(A, '/_active_tasks')).body;
  const task = tasks.find((x: { replication_id: string }) => x.replication_id === id);
  t.is(task?.type, 'replication');
  t.regex(task?.pid ?? '', /^<anybios\.\d+\.\d+>$/, "a string: Fauxton's Active Tasks page reads it");
  t.is(task?.continuous, true);
  t.is(task?.docs_written, 4);
  t.notRegex(JSON.stringify(tasks), new RegExp(`${B.adminPassword}|Authorization`));
  // Someone else's job: bob may neither cancel nor join it.
  const byBob = await call(A.couchUrl, '/_replicate', { method: 'POST', auth: bob, json: { replication_id: id, cancel: true } });
  t.is(byBob.status, 401, byBob.text);
  t.is((await call(A.couchUrl, '/_scheduler/jobs', { auth: bob })).status, 401, '_scheduler is for server admins');
  const cancel = await as(A, '/_replicate', { method: 'POST', json: { ...body, cancel: true } });
  t.is(cancel.status, 200, cancel.text);
  t.is(cancel.body._local_id, id);
  t.falsy((await as(A, '/_scheduler/jobs')).body.jobs.find((j: { id: string }) => j.id === id));
  await as(B, '/cont-src/after-cancel', { method: 'PUT', json: {} });
  await new Promise((res) => setTimeout(res, 1500));
  t.is((await as(A, '/cont-dst/after-cancel')).status, 404, 'no longer replicated');
});

test.serial('the reach rule: a non-admin\'s replication never reaches loopback or link-local addresses', async (t) => {
  const target = 'http://bob:bob-password@db.invalid/db/bob-target';
  const sources = [`${A.couchUrl}/anybios`, 'http://localhost:1/x', 'http://a.localhost:1/x', 'http://[::1]:1/x', 'http://169.254.169.254/latest/meta-data', 'http://0.0.0.0:1/x', 'http://[::]:1/x',
    'http://[::ffff:127.0.0.1]:1/x', 'http://2130706433:1/x', 'http://0x7f.1:1/x', 'http://127.1:1/x', 'http://[fe80::1]:1/x', 'http://224.0.0.1:1/x', { url: 'http://127.0.0.1:1/x', headers: {} }];
  for (const source of sources) {
    const r = await call(A.couchUrl, '/_replicate', { method: 'POST', auth: bob, json: { source, target } });
    t.is(r.status, 403, `${JSON.stringify(source)}: ${r.text}`);
    t.regex(r.body.reason, /may not reach loopback/);
    const d = await call(A.couchUrl, `/_replicator/bob-${sources.indexOf(source)}`, { method: 'PUT', auth: bob, json: { source, target } });
    t.is(d.status, 403, `doc ${JSON.stringify(source)}: ${d.text}`);
  }
  // A name that resolves to loopback passes the literal check; the connection is refused at lookup time.
  const name = hostname();
  const resolved = await lookup(name).catch(() => null);
  if (resolved && /^127\./.test(resolved.address)) {
    const source = `http://${name}:${new URL(A.couchUrl).port}/db/anybios`;
    const w = await call(A.couchUrl, '/_replicator/bob-dns', { method: 'PUT', auth: bob, json: { source, target: `http://${name}.invalid/x`, continuous: true } });
    t.is(w.status, 201, w.text);
    const row = await until('bob-dns crashing', () => as(A, '/_scheduler/docs/_replicator/bob-dns'), (x) => x.body.state === 'crashing');
    t.regex(row.body.info.error, new RegExp(`${name} resolves to 127\\.[0-9.]+: a replication not owned by a server admin may not reach loopback`));
    t.true(row.body.error_count >= 1);
    const doc = (await call(A.couchUrl, '/_replicator/bob-dns', { auth: bob })).body;
    t.is((await call(A.couchUrl, `/_replicator/bob-dns?rev=${doc._rev}`, { method: 'DELETE', auth: bob })).status, 200);
  } else t.log(`${name} does not resolve to loopback here: the lookup-time check is not exercised`);
  // The same URL is fine for an admin (the site links' own documents reach this server that way).
  const ok = await as(A, '/_replicate', { method: 'POST', json: { source: dbUrl(A, 'verifytestdb'), target: dbUrl(A, 'admin-loopback'), create_target: true } });
  t.is(ok.status, 200, ok.text);
});

test.serial('_replicator documents: owner, credentials hidden from other users, every other read path admin-only', async (t) => {
  await fill(B, 'bob-src', 2);
  const secret = B.adminPassword;
  // B listens on a LAN address when there is one (a non-admin's job may go there); else only the rules are checked.
  const host = lanIp ? new URL(B.couchUrl).host : 'db.invalid';
  const doc = { source: `http://admin:${secret}@${host}/db/bob-src`, target: { url: `http://${host}/db/bob-dst`, headers: { Authorization: basic('admin', secret) } }, create_target: true };
  const w = await call(A.couchUrl, '/_replicator/bobs', { method: 'PUT', auth: bob, json: doc });
  t.is(w.status, 201, w.text);
  const own = await call(A.couchUrl, '/_replicator/bobs', { auth: bob });
  t.is(own.body.owner, 'bob');
  t.is(own.body.source, doc.source, 'the owner sees its own credentials');
  const other = await call(A.couchUrl, '/_replicator/bobs', { auth: eve });
  t.is(other.status, 200);
  t.notRegex(other.text, new RegExp(secret));
  t.notRegex(other.text, new RegExp(basic('admin', secret).slice(6)));
  t.is(other.body.source, `http://${host}/db/bob-src`);
  t.deepEqual(other.body.target, { url: `http://${host}/db/bob-dst` });
  t.not(other.body._rev, own.body._rev, 'a made-up revision, as CouchDB');
  for (const path of ['/_replicator/_all_docs?include_docs=true', '/_replicator/_changes?include_docs=true', '/_replicator/bobs?open_revs=all', '/_replicator/bobs?revs=true&open_revs=["' + own.body._rev + '"]', '/_replicator/_design_docs', '/_replicator/_local/x']) {
    const r = await call(A.couchUrl, path, { auth: eve, headers: { Accept: 'application/json' } });
    t.true(r.status === 401 || r.status === 403, `${path}: ${r.status}`);
    t.notRegex(r.text, new RegExp(secret));
  }
  const bulkGet = await call(A.couchUrl, '/_replicator/_bulk_get', { method: 'POST', auth: eve, json: { docs: [{ id: 'bobs' }] } });
  t.is(bulkGet.status, 401, bulkGet.text);
  t.notRegex(bulkGet.text, new RegExp(secret));
  t.is((await call(A.couchUrl, '/_scheduler/docs', { auth: eve })).status, 401);
  // eve may not take bob's document over under bob's name; with the real or the made-up revision.
  for (const rev of [own.body._rev, other.body._rev]) {
    const r = await call(A.couchUrl, `/_replicator/bobs?rev=${rev}`, { method: 'PUT', auth: eve, json: { source: 'http://a.invalid/b', target: 'http://a.invalid/c', owner: 'bob' } });
    t.is(r.status, 403, r.text);
    t.is(r.body.reason, "Can't update replication documents from other users.");
  }
  // Replicating INTO _replicator (new_edits=false) would carry an owner nobody checked: admins only.
  const forged = await call(A.couchUrl, '/_replicator/_bulk_docs', { method: 'POST', auth: eve, json: { new_edits: false, docs: [{ _id: 'forged', _rev: '1-abc', source: 'http://127.0.0.1:1/x', target: 'http://a.invalid/y', owner: 'admin' }] } });
  t.true(forged.status === 403 || (forged.status === 201 && forged.body[0]?.error === 'forbidden'), forged.text);
  t.is((await as(A, '/_replicator/forged')).status, 404);
  // Not a replication: 403 with the reason, as CouchDB.
  const bad = await call(A.couchUrl, '/_replicator/bad', { method: 'PUT', auth: eve, json: { source: 'http://a.invalid/b', target: 'http://a.invalid/c', continuous: 1 } });
  t.is(bad.status, 403);
  t.regex(bad.body.reason, /parameter `continuous` must be a boolean/);
  const local = await call(A.couchUrl, '/_replicator/local', { method: 'PUT', auth: eve, json: { source: 'verifytestdb', target: 'http://a.invalid/c' } });
  t.is(local.status, 403);
  t.regex(local.body.reason, /^local_endpoints_not_supported/);
  if (!lanIp) return t.log('no non-loopback address here: bob\'s job itself is not run');
  // bob's one-shot document completes: the document says so (as CouchDB 3 writes it), _scheduler too.
  const row = await until('bobs completed', () => as(A, '/_scheduler/docs/_replicator/bobs'), (x) => x.body.state === 'completed');
  t.is(row.body.info.docs_written, 2);
  t.is(row.body.source, `http://${host}/db/bob-src/`);
  const done = (await call(A.couchUrl, '/_replicator/bobs', { auth: bob })).body;
  t.is(done._replication_state, 'completed');
  t.is(done._replication_stats.docs_written, 2);
  t.is((await as(B, '/bob-dst')).body.doc_count, 2);
});

test.serial('_replicator: continuous job, states in _scheduler/docs, duplicates fail, deletion stops; a restart resumes from the checkpoints', async (t) => {
  await fill(B, 'r-src', 30);
  const doc = { source: dbUrl(B, 'r-src'), target: dbUrl(B, 'r-dst'), create_target: true, continuous: true };
  t.is((await as(A, '/_replicator/cont', { method: 'PUT', json: doc })).status, 201);
  await until('30 docs at r-dst', () => as(B, '/r-dst'), (x) => x.body.doc_count === 30);
  const row = await until('cont running', () => as(A, '/_scheduler/docs/_replicator/cont'), (x) => x.body.state === 'running' && x.body.info?.revisions_checked === 30);
  t.is(row.body.database, '_replicator');
  t.is(row.body.error_count, 0);
  t.is(row.body.info.docs_written, 30);
  t.is(row.body.target, `${B.couchUrl}/r-dst/`);
  const list = (await as(A, '/_scheduler/docs/_replicator')).body;
  t.true(list.total_rows >= 1);
  t.true(list.docs.some((d: { doc_id: string }) => d.doc_id === 'cont'));
  t.is((await as(A, '/_scheduler/docs?states=running,crashing')).status, 200);
  const badState = await as(A, '/_scheduler/docs?states=bogus');
  t.is(badState.status, 400);
  t.is(badState.body.error, 'query_parse_error');
  t.is((await as(A, '/_scheduler/docs/foo')).body.reason, 'Invalid path');
  t.is((await as(A, '/_scheduler/docs/_replicator/nope')).status, 404);
  t.is((await as(A, '/_scheduler/nope')).status, 404);
  // The same replication in a second document: failed, with CouchDB's reason, written into the document.
  t.is((await as(A, '/_replicator/twin', { method: 'PUT', json: doc })).status, 201);
  const twin = await until('twin failed', () => as(A, '/_scheduler/docs/_replicator/twin'), (x) => x.body.state === 'failed');
  t.regex(twin.body.info.error, /specified by document `twin` already started, triggered by document `cont`/);
  t.is((await as(A, '/_replicator/twin')).body._replication_state, 'failed');

  // Restart: the job comes back and asks the target only about what changed since its checkpoint.
  A = await A.restart();
  await as(B, '/r-src/after-restart', { method: 'PUT', json: { x: 1 } });
  await until('after-restart at r-dst', () => as(B, '/r-dst/after-restart'), (x) => x.status === 200);
  const resumed = await until('resumed', () => as(A, '/_scheduler/docs/_replicator/cont'), (x) => x.body.state === 'running' && x.body.info?.docs_written === 1);
  t.is(resumed.body.info.revisions_checked, 1, 'resumed from the checkpoint: only the new revision was checked');
  t.is(resumed.body.info.missing_revisions_found, 1);

  // A job that cannot reach its source: crashing, with the error and a count, retried with back-off.
  t.is((await as(A, '/_replicator/broken', { method: 'PUT', json: { source: 'http://127.0.0.1:9/nothing', target: dbUrl(B, 'never'), continuous: true } })).status, 201);
  const broken = await until('broken crashing', () => as(A, '/_scheduler/docs/_replicator/broken'), (x) => x.body.state === 'crashing');
  t.regex(broken.body.info.error, /ECONNREFUSED|could not open/);
  t.true(broken.body.error_count >= 1);

  // Deleting the document stops its job.
  const cur = (await as(A, '/_replicator/cont')).body;
  t.is((await as(A, `/_replicator/cont?rev=${cur._rev}`, { method: 'DELETE' })).status, 200);
  await until('cont gone', () => as(A, '/_scheduler/jobs'), (x) => !x.body.jobs.some((j: { doc_id: string }) => j.doc_id === 'cont'));
  await as(B, '/r-src/after-delete', { method: 'PUT', json: {} });
  await new Promise((res) => setTimeout(res, 1500));
  t.is((await as(B, '/r-dst/after-delete')).status, 404);
});

test.serial('a user who is not a server admin runs at most 20 replications from documents; the 21st fails, saying why', async (t) => {
  const ids = Array.from({ length: 21 }, (_, i) => `cap-${String(i).padStart(2, '0')}`);
  for (const id of ids) {
    const r = await call(A.couchUrl, `/_replicator/${id}`, { method: 'PUT', auth: eve, json: { source: `http://${id}.invalid/a`, target: `http://${id}.invalid/b`, continuous: true } });
    t.is(r.status, 201, r.text);
  }
  const last = await until('cap-20 failed', () => as(A, '/_scheduler/docs/_replicator/cap-20'), (x) => x.body.state === 'failed');
  t.regex(last.body.info.error, /eve has 20 replications running already/);
  const rows = (await as(A, '/_scheduler/docs/_replicator')).body.docs.filter((d: { doc_id: string }) => d.doc_id.startsWith('cap-'));
  t.is(rows.filter((d: { state: string }) => d.state !== 'failed').length, 20);
  for (const id of ids) {
    const d = (await call(A.couchUrl, `/_replicator/${id}`, { auth: eve })).body;
    t.is((await call(A.couchUrl, `/_replicator/${id}?rev=${d._rev}`, { method: 'DELETE', auth: eve })).status, 200);
  }
  await until('cap jobs gone', () => as(A, '/_scheduler/jobs'), (x) => !x.body.jobs.some((j: { doc_id: string | null }) => j.doc_id?.startsWith('cap-')));
  t.true(A.alive());
});

test.serial('a continuous job whose connection dies without a word is taken for dead and restarted (replicationStallMs)', async (t) => {
  const S = await startServer({ embedded: true, env: { ANYBIOS_LIMIT_REPLICATION_STALL_MS: '3s' } });
  const proxy = await startTcpProxy(Number(new URL(A.couchUrl).port)); // A listens on loopback (B may not)
  t.teardown(async () => {
    await S.stop(); // first: the proxy's close waits for the connections S holds through it
    await proxy.close();
    removeDataDir(S.dataDir);
  });
  await fill(A, 'stall-src', 2);
  const source = `http://admin:${A.adminPassword}@127.0.0.1:${proxy.port}/db/stall-src`;
  const w = await as(S, '/_replicator/stall', { method: 'PUT', json: { source, target: dbUrl(S, 'stall-dst'), create_target: true, continuous: true } });
  t.is(w.status, 201, w.text);
  await until('caught up', () => as(S, '/stall-dst'), (x) => x.body.doc_count === 2);
  await until('idle on its long poll', () => as(S, '/_scheduler/docs/_replicator/stall'), (x) => x.body.state === 'running' && x.body.info?.changes_pending === 0);
  await new Promise((res) => setTimeout(res, 1500)); // its checkpoint written, the next long poll open
  // Every open connection through the proxy goes silent (the long poll's heartbeats stop): the job notices.
  proxy.freeze();
  const dead = await until('taken for dead', () => as(S, '/_scheduler/jobs'), (x) => /taken for dead/.test(JSON.stringify(x.body)), 15_000);
  t.regex(JSON.stringify(dead.body), /no answer from http:\/\/127\.0\.0\.1:\d+\/db\/stall-src\/ or .* for 3 s/);
  // New connections work: the restarted run carries a new document.
  await as(A, '/stall-src/after-stall', { method: 'PUT', json: {} });
  await until('after-stall arrives', () => as(S, '/stall-dst/after-stall'), (x) => x.status === 200, 20_000);
  t.true(S.alive());
});

test.serial('/_session at the server root answers as CouchDB (its replicator logs in there)', async (t) => {
  const form = await call(A.url, '/_session', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ name: 'admin', password: A.adminPassword }).toString() });
  t.is(form.status, 200, form.text);
  t.deepEqual(form.body, { ok: true, name: 'admin', roles: ['_admin'] });
  const cookie = (form.headers.get('set-cookie') ?? '').split(';')[0];
  t.regex(cookie, /^AuthSession=/);
  const who = await call(A.url, '/_session', { headers: { Cookie: cookie } });
  t.is(who.body.userCtx.name, 'admin');
  const wrong = await call(A.url, '/_session', { method: 'POST', json: { name: 'admin', password: 'wrong' } });
  t.is(wrong.status, 401);
  t.is(wrong.body.error, 'unauthorized');
});
