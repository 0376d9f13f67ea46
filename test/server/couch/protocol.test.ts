// Conformance of the CouchDB endpoints that PouchDB, nano and Fauxton use, over real HTTP against a
// real server process: the embedded server, or (COUCH_URL set) Apache CouchDB behind our forwarding.
// Sequences are opaque (only ever taken from a previous response); names are unique per run.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { addNode, removeNode } from '../../../server/nodes.ts';
import { basic, call, external, ownUserDocReadable, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const nodeId = uniq('pn');
const userName = uniq('ursula');
const userPassword = 'ursula-password-1';
let nodeAuth: string;
let nodeUser: string;
const dbs: string[] = [];
const A = () => server.adminAuth;
const couch = (path: string, init: Parameters<typeof call>[2] = {}) => call(server.couchUrl, path, { auth: A(), ...init });
const JSON_ACCEPT = { Accept: 'application/json' };
const rev1 = (c: string) => `1-${c.repeat(32)}`;

test.before(async () => {
  server = await startServer();
  const cred = await addNode(server.admin, nodeId);
  nodeUser = cred.user;
  nodeAuth = basic(cred.user, cred.password);
});

test.after.always(async () => {
  if (!server) return;
  if (server.alive()) {
    for (const db of dbs) await server.admin.db.destroy(db).catch(() => {});
    await removeNode(server.admin, nodeId).catch(() => {});
    const users = server.admin.use('_users');
    await users.get(`org.couchdb.user:${userName}`).then((d) => users.destroy(d._id, d._rev)).catch(() => {});
  }
  await server.stop();
  removeDataDir(server.dataDir);
});

/** A fresh database for one test, removed afterwards. */
async function freshDb(base: string): Promise<string> {
  const name = uniq(base);
  await server.admin.db.create(name);
  dbs.push(name);
  return name;
}

async function put(t: ExecutionContext, db: string, id: string, body: object): Promise<string> {
  const r = await couch(`/${db}/${encodeURIComponent(id)}`, { method: 'PUT', json: body });
  t.is(r.status, 201, r.text);
  return r.body.rev;
}

/** A database with one document in conflict: two first revisions written as replication would. */
async function conflicted(t: ExecutionContext, db: string, id: string): Promise<{ winner: string; loser: string }> {
  const r = await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { new_edits: false, docs: [{ _id: id, _rev: rev1('a'), v: 'a' }, { _id: id, _rev: rev1('b'), v: 'b' }] } });
  t.is(r.status, 201, r.text);
  // CouchDB's deterministic winner: the same position, the greater revision id.
  return { winner: rev1('b'), loser: rev1('a') };
}

/** Reads a streaming response until it ends, `ms` pass or `until(text)`; returns the text and whether it ended. */
async function readStream(path: string, ms: number, auth = A(), until?: (text: string) => boolean): Promise<{ status: number; text: string; ended: boolean; elapsed: number }> {
  const started = Date.now();
  const ctl = new AbortController();
  const res = await fetch(server.couchUrl + path, { headers: { Authorization: auth }, signal: ctl.signal });
  const reader = res.body!.getReader();
  let text = '';
  let ended = false;
  const timer = setTimeout(() => ctl.abort(), ms);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      text += Buffer.from(value).toString();
      if (until?.(text)) {
        ctl.abort();
        break;
      }
    }
  } catch {
    // aborted at `ms`
  } finally {
    clearTimeout(timer);
  }
  return { status: res.status, text, ended, elapsed: Date.now() - started };
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const ids = (results: { id: string }[]) => results.map((r) => r.id);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------
// _changes

test('_changes normal: results, last_seq, since taken from a previous response, limit, include_docs', async (t) => {
  const db = await freshDb('ch-normal');
  await put(t, db, 'a', { n: 1 });
  await put(t, db, 'b', { n: 2 });
  const first = await couch(`/${db}/_changes`);
  t.is(first.status, 200);
  t.deepEqual(ids(first.body.results).sort(), ['a', 'b']);
  t.not(first.body.last_seq, undefined);
  await put(t, db, 'c', { n: 3 });
  const next = await couch(`/${db}/_changes?since=${encodeURIComponent(String(first.body.last_seq))}`);
  t.deepEqual(ids(next.body.results), ['c']);
  t.true(Array.isArray(next.body.results[0].changes) && typeof next.body.results[0].changes[0].rev === 'string');
  const limited = await couch(`/${db}/_changes?limit=1`);
  t.is(limited.body.results.length, 1);
  // since from a row's seq: everything after that row
  const after = await couch(`/${db}/_changes?since=${encodeURIComponent(String(limited.body.results[0].seq))}`);
  const rest = ['a', 'b', 'c'].filter((id) => id !== limited.body.results[0].id);
  t.deepEqual(ids(after.body.results).filter((id: string) => rest.includes(id)).sort(), rest);
  // A clustered CouchDB may repeat rows around a row's seq; the embedded one never does.
  if (!external) t.is(after.body.results.length, 2);
  const withDocs = await couch(`/${db}/_changes?include_docs=true&since=${encodeURIComponent(String(first.body.last_seq))}`);
  t.is(withDocs.body.results[0].doc.n, 3);
  t.is(withDocs.body.results[0].doc._id, 'c');
  const noDocs = await couch(`/${db}/_changes`);
  t.is(noDocs.body.results[0].doc, undefined);
  // POST works the same (PouchDB posts when it has doc_ids)
  const posted = await couch(`/${db}/_changes?limit=2`, { method: 'POST', json: {} });
  t.is(posted.status, 200, posted.text);
  t.is(posted.body.results.length, 2);
});

test('_changes style=all_docs lists every leaf of a conflicted document; deletions are marked', async (t) => {
  const db = await freshDb('ch-style');
  const { winner, loser } = await conflicted(t, db, 'c');
  const main = await couch(`/${db}/_changes`);
  t.is(main.body.results.length, 1);
  t.deepEqual(main.body.results[0].changes.map((c: { rev: string }) => c.rev), [winner]);
  const all = await couch(`/${db}/_changes?style=all_docs`);
  t.deepEqual(all.body.results[0].changes.map((c: { rev: string }) => c.rev).sort(), [loser, winner].sort());
  const rev = await put(t, db, 'gone', { x: 1 });
  t.is((await couch(`/${db}/gone?rev=${rev}`, { method: 'DELETE' })).status, 200);
  const del = await couch(`/${db}/_changes`);
  const row = del.body.results.find((r: { id: string }) => r.id === 'gone');
  t.is(row.deleted, true);
});

test('_changes filter=_doc_ids (GET and POST)', async (t) => {
  const db = await freshDb('ch-docids');
  for (const id of ['x', 'y', 'z']) await put(t, db, id, { id });
  const posted = await couch(`/${db}/_changes?filter=_doc_ids`, { method: 'POST', json: { doc_ids: ['x', 'z'] } });
  t.is(posted.status, 200, posted.text);
  t.deepEqual(ids(posted.body.results).sort(), ['x', 'z']);
  const got = await couch(`/${db}/_changes?filter=_doc_ids&doc_ids=${encodeURIComponent('["y"]')}`);
  t.is(got.status, 200, got.text);
  t.deepEqual(ids(got.body.results), ['y']);
});

test('_changes filter=_selector (POST) returns only matching documents', async (t) => {
  const db = await freshDb('ch-selector');
  await put(t, db, 'r1', { kind: 'red' });
  await put(t, db, 'b1', { kind: 'blue' });
  const r = await couch(`/${db}/_changes?filter=_selector`, { method: 'POST', json: { selector: { kind: 'red' } } });
  t.is(r.status, 200, r.text);
  t.deepEqual(ids(r.body.results), ['r1']);
});

test('_changes longpoll returns at once when there are results', async (t) => {
  const db = await freshDb('ch-lp-now');
  await put(t, db, 'a', {});
  const started = Date.now();
  const r = await couch(`/${db}/_changes?feed=longpoll&timeout=10000`);
  t.is(r.status, 200);
  t.deepEqual(ids(r.body.results), ['a']);
  t.true(Date.now() - started < 3000, 'did not wait for the timeout');
});

test('_changes longpoll waits and wakes on a write', async (t) => {
  const db = await freshDb('ch-lp-wake');
  await put(t, db, 'before', {});
  const seq = (await couch(`/${db}/_changes`)).body.last_seq;
  const started = Date.now();
  const pending = couch(`/${db}/_changes?feed=longpoll&timeout=10000&include_docs=true&since=${encodeURIComponent(String(seq))}`);
  await sleep(400);
  await put(t, db, 'woken', { w: 1 });
  const r = await pending;
  const elapsed = Date.now() - started;
  t.is(r.status, 200);
  t.deepEqual(ids(r.body.results), ['woken']);
  t.is(r.body.results[0].doc.w, 1);
  t.true(elapsed >= 350, `answered after ${elapsed} ms, before the write`);
  t.true(elapsed < 5000, `answered after ${elapsed} ms: not woken by the write`);
});

test('_changes longpoll returns empty after timeout', async (t) => {
  const db = await freshDb('ch-lp-timeout');
  await put(t, db, 'a', {});
  const seq = (await couch(`/${db}/_changes`)).body.last_seq;
  const started = Date.now();
  const r = await couch(`/${db}/_changes?feed=longpoll&timeout=400&since=${encodeURIComponent(String(seq))}`);
  const elapsed = Date.now() - started;
  t.is(r.status, 200);
  t.deepEqual(r.body.results, []);
  t.not(r.body.last_seq, undefined);
  t.true(elapsed >= 350 && elapsed < 5000, `${elapsed} ms`);
});

test('_changes continuous: rows, live rows, heartbeat newlines, limit, timeout ending with last_seq', async (t) => {
  const db = await freshDb('ch-cont');
  await put(t, db, 'a', {});
  await put(t, db, 'b', {});
  // limit: two rows then the last_seq line, and the response ends
  const limited = await readStream(`/${db}/_changes?feed=continuous&limit=2&since=0`, 5000);
  t.is(limited.status, 200);
  t.true(limited.ended, 'a continuous feed with limit ends');
  const ll = lines(limited.text);
  t.deepEqual(ids(ll.slice(0, 2)).sort(), ['a', 'b']);
  t.not(ll[ll.length - 1].last_seq, undefined);
  // timeout: existing rows, then last_seq when nothing more comes
  const timed = await readStream(`/${db}/_changes?feed=continuous&timeout=400`, 5000);
  t.true(timed.ended, 'the feed ends after its timeout');
  const tl = lines(timed.text);
  t.deepEqual(ids(tl.filter((l) => l.id)).sort(), ['a', 'b']);
  t.not(tl[tl.length - 1].last_seq, undefined);
  // heartbeat: empty lines while waiting; a write shows up live
  const seq = tl[tl.length - 1].last_seq;
  // Read until the live row arrives: Apache CouchDB 3.5 sends it up to ~1 s after the write (its
  // clustered feed waits for the shards' update events); the embedded server at once.
  const streaming = readStream(`/${db}/_changes?feed=continuous&heartbeat=500&since=${encodeURIComponent(String(seq))}`, 8000, A(), (text) => text.includes('"live"') && text.endsWith('\n'));
  await sleep(1100);
  await put(t, db, 'live', {});
  const hb = await streaming;
  t.false(hb.ended, 'a heartbeat feed stays open');
  t.true((hb.text.match(/^\n/gm) ?? []).length >= 1, `heartbeats: ${JSON.stringify(hb.text)}`);
  t.deepEqual(ids(lines(hb.text)), ['live']);
});

// ---------------------------------------------------------------------------------------------------
// _db_updates

test('_db_updates: admin only; a new database and a write appear; longpoll wakes', async (t) => {
  const denied = await call(server.couchUrl, '/_db_updates', { auth: nodeAuth });
  t.true(denied.status === 401 || denied.status === 403, `${denied.status}`);
  t.is((await call(server.couchUrl, '/_db_updates')).status, 401);
  const start = await couch('/_db_updates?since=now');
  t.is(start.status, 200, start.text);
  t.not(start.body.last_seq, undefined);
  // longpoll from there: wakes when a database is created
  const name = uniq('dbupd');
  const started = Date.now();
  const pending = couch(`/_db_updates?feed=longpoll&timeout=10000&since=${encodeURIComponent(String(start.body.last_seq))}`);
  await sleep(300);
  await server.admin.db.create(name);
  dbs.push(name);
  let r = await pending;
  t.is(r.status, 200, r.text);
  t.true(Date.now() - started < 8000, 'woken by the new database');
  // Other databases may be busy on a shared CouchDB: follow the feed until ours shows up.
  const seen = new Map<string, Set<string>>();
  const note = (results: { db_name: string; type: string }[]) => results.forEach((u) => seen.set(u.db_name, (seen.get(u.db_name) ?? new Set()).add(u.type)));
  note(r.body.results);
  for (let i = 0; i < 20 && !seen.has(name); i++) {
    r = await couch(`/_db_updates?feed=longpoll&timeout=2000&since=${encodeURIComponent(String(r.body.last_seq))}`);
    note(r.body.results);
  }
  t.true(seen.has(name), `the new database ${name} appears in _db_updates`);
  // a write to it appears as an update
  const before = r.body.last_seq;
  await put(t, name, 'doc', { x: 1 });
  let found = false;
  for (let i = 0; i < 20 && !found; i++) {
    r = await couch(`/_db_updates?feed=longpoll&timeout=2000&since=${encodeURIComponent(String(i === 0 ? before : r.body.last_seq))}`);
    found = r.body.results.some((u: { db_name: string; type: string }) => u.db_name === name && u.type === 'updated');
  }
  t.true(found, 'a write shows up as "updated"');
});

// ---------------------------------------------------------------------------------------------------
// authentication: basic, _session, _users

test('basic auth: the admin is recognised; the welcome answers', async (t) => {
  const r = await couch('/');
  t.is(r.status, 200);
  t.is(r.body.couchdb, 'Welcome');
  const s = await couch('/_session');
  t.is(s.status, 200);
  t.is(s.body.userCtx.name, external ? decodeURIComponent(new URL(process.env.COUCH_URL!).username) : 'admin');
  t.true(s.body.userCtx.roles.includes('_admin'));
});

test.serial('_users: admin creates a user; no password stored, a derived key is; the user logs in; reads only its own doc', async (t) => {
  const id = `org.couchdb.user:${userName}`;
  const created = await couch(`/_users/${encodeURIComponent(id)}`, { method: 'PUT', json: { _id: id, type: 'user', name: userName, roles: ['operator'], password: userPassword } });
  t.is(created.status, 201, created.text);
  const stored = await couch(`/_users/${encodeURIComponent(id)}`);
  t.is(stored.status, 200);
  t.is(stored.body.password, undefined);
  t.is(typeof stored.body.derived_key, 'string');
  t.is(typeof stored.body.salt, 'string');
  t.is(stored.body.password_scheme, 'pbkdf2');
  // the user logs in with basic auth and reads its own document
  const self = await call(server.couchUrl, `/_users/${encodeURIComponent(id)}`, { auth: basic(userName, userPassword) });
  if (await ownUserDocReadable(server, 'operator')) {
    t.is(self.status, 200, self.text);
    t.is(self.body.name, userName);
  } else t.is(self.status, 403, `CouchDB's admin-only _users: ${self.text}`);
  t.is((await call(server.couchUrl, '/_session', { auth: basic(userName, 'not-the-password') })).status, 401);
  // and nobody else's, nor the whole database
  const other = await call(server.couchUrl, `/_users/${encodeURIComponent(`org.couchdb.user:${nodeUser}`)}`, { auth: basic(userName, userPassword) });
  t.true(other.status === 403 || other.status === 404, `${other.status} ${other.text}`);
  const all = await call(server.couchUrl, '/_users/_all_docs', { auth: basic(userName, userPassword) });
  t.true(all.status === 401 || all.status === 403, `${all.status}`);
});

test.serial('_session: POST JSON and form give an AuthSession cookie usable for requests; GET shows userCtx; DELETE clears it', async (t) => {
  const cookieOf = (r: Awaited<ReturnType<typeof call>>) => /AuthSession=[^;]*/.exec(r.headers.get('set-cookie') ?? '')?.[0];
  const json = await call(server.couchUrl, '/_session', { method: 'POST', json: { name: userName, password: userPassword } });
  t.is(json.status, 200, json.text);
  t.is(json.body.ok, true);
  t.is(json.body.name, userName);
  t.true(json.body.roles.includes('operator'));
  const cookie = cookieOf(json);
  t.truthy(cookie && cookie.length > 'AuthSession='.length, 'a session cookie is set');
  const who = await call(server.couchUrl, '/_session', { headers: { Cookie: cookie! } });
  t.is(who.status, 200);
  t.is(who.body.userCtx.name, userName);
  t.deepEqual(who.body.userCtx.roles, ['operator']);
  t.is(who.body.info.authenticated, 'cookie');
  // the cookie opens what the user may open: the catalog admits operators
  const cat = await call(server.couchUrl, '/anybios/_all_docs?limit=1', { headers: { Cookie: cookie! } });
  t.is(cat.status, 200, cat.text);
  t.is((await call(server.couchUrl, '/anybios/_all_docs?limit=1')).status, 401);
  // form-encoded login, as Fauxton does
  const form = await call(server.couchUrl, '/_session', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ name: userName, password: userPassword }).toString() });
  t.is(form.status, 200, form.text);
  const formCookie = cookieOf(form);
  t.truthy(formCookie);
  t.is((await call(server.couchUrl, '/_session', { headers: { Cookie: formCookie! } })).body.userCtx.name, userName);
  // anonymous session
  const anon = await call(server.couchUrl, '/_session');
  t.is(anon.status, 200);
  t.is(anon.body.userCtx.name, null);
  // logout
  const out = await call(server.couchUrl, '/_session', { method: 'DELETE', headers: { Cookie: cookie! } });
  t.is(out.status, 200);
  t.is(out.body.ok, true);
  t.regex(out.headers.get('set-cookie') ?? '', /AuthSession=;/);
});

// ---------------------------------------------------------------------------------------------------
// replication helpers: _bulk_get, _revs_diff, _local, _bulk_docs new_edits=false

test('_bulk_get with revs and attachments; missing revisions are errors', async (t) => {
  const db = await freshDb('bulkget');
  const data = randomBytes(300);
  const r1 = await put(t, db, 'd', { v: 1, _attachments: { 'blob.bin': { content_type: 'application/octet-stream', data: data.toString('base64') } } });
  const r2 = (await couch(`/${db}/d`, { method: 'PUT', json: { ...(await couch(`/${db}/d`)).body, v: 2 } })).body.rev;
  t.regex(r2, /^2-/);
  const r = await couch(`/${db}/_bulk_get?revs=true&attachments=true`, { method: 'POST', headers: JSON_ACCEPT, json: { docs: [{ id: 'd', rev: r2 }, { id: 'd', rev: r1 }, { id: 'd', rev: '9-ffffffffffffffffffffffffffffffff' }, { id: 'nope' }] } });
  t.is(r.status, 200, r.text);
  t.is(r.body.results.length, 4);
  t.deepEqual(r.body.results.map((x: { id: string }) => x.id), ['d', 'd', 'd', 'nope']);
  const latest = r.body.results[0].docs[0].ok;
  t.is(latest._rev, r2);
  t.is(latest.v, 2);
  t.is(latest._revisions.start, 2);
  t.deepEqual(latest._revisions.ids, [r2.slice(2), r1.slice(2)]);
  t.is(Buffer.from(latest._attachments['blob.bin'].data, 'base64').toString('hex'), data.toString('hex'));
  t.is(r.body.results[1].docs[0].ok.v, 1);
  t.is(r.body.results[2].docs[0].error.error, 'not_found');
  t.is(r.body.results[2].docs[0].error.rev, '9-ffffffffffffffffffffffffffffffff');
  t.is(r.body.results[3].docs[0].error.error, 'not_found');
  // without attachments=true: stubs
  const stubs = await couch(`/${db}/_bulk_get`, { method: 'POST', headers: JSON_ACCEPT, json: { docs: [{ id: 'd', rev: r2 }] } });
  t.is(stubs.body.results[0].docs[0].ok._attachments['blob.bin'].stub, true);
});

test('_revs_diff reports only the revisions the target lacks', async (t) => {
  const db = await freshDb('revsdiff');
  const have = await put(t, db, 'd', { v: 1 });
  const r = await couch(`/${db}/_revs_diff`, { method: 'POST', json: { d: [have, '2-abcdef0123456789abcdef0123456789'], other: [rev1('c')] } });
  t.is(r.status, 200, r.text);
  t.deepEqual(r.body.d.missing, ['2-abcdef0123456789abcdef0123456789']);
  t.deepEqual(r.body.other.missing, [rev1('c')]);
  const none = await couch(`/${db}/_revs_diff`, { method: 'POST', json: { d: [have] } });
  t.deepEqual(none.body, {});
});

test('_bulk_docs new_edits=false stores given revisions as they are', async (t) => {
  const db = await freshDb('newedits');
  const r = await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { new_edits: false, docs: [{ _id: 'x', _rev: '3-' + 'c'.repeat(32), _revisions: { start: 3, ids: ['c'.repeat(32), 'b'.repeat(32), 'a'.repeat(32)] }, v: 3 }] } });
  t.is(r.status, 201, r.text);
  t.deepEqual(r.body, []);
  const doc = await couch(`/${db}/x?revs=true`);
  t.is(doc.body._rev, '3-' + 'c'.repeat(32));
  t.deepEqual(doc.body._revisions, { start: 3, ids: ['c'.repeat(32), 'b'.repeat(32), 'a'.repeat(32)] });
});

test('_local documents: put, update, get, delete; not in _changes or _all_docs', async (t) => {
  const db = await freshDb('local');
  await put(t, db, 'visible', {});
  const p1 = await couch(`/${db}/_local/checkpoint`, { method: 'PUT', json: { last_seq: 'x1', session_id: 's' } });
  t.is(p1.status, 201, p1.text);
  t.is(p1.body.id, '_local/checkpoint');
  const g1 = await couch(`/${db}/_local/checkpoint`);
  t.is(g1.status, 200);
  t.is(g1.body.last_seq, 'x1');
  t.is(g1.body._id, '_local/checkpoint');
  const p2 = await couch(`/${db}/_local/checkpoint`, { method: 'PUT', json: { ...g1.body, last_seq: 'x2' } });
  t.is(p2.status, 201, p2.text);
  t.is((await couch(`/${db}/_local/checkpoint`)).body.last_seq, 'x2');
  // A stale local revision: the embedded server refuses it (409); Apache CouchDB 3.5 never checks a
  // `_local` revision (it writes, numbering from the revision given), so both are correct where they run.
  const stale = await couch(`/${db}/_local/checkpoint`, { method: 'PUT', json: { ...g1.body, last_seq: 'x3' } });
  if (external) t.is(stale.status, 201, stale.text);
  else t.is(stale.status, 409, stale.text);
  t.deepEqual(ids((await couch(`/${db}/_changes`)).body.results), ['visible']);
  t.deepEqual((await couch(`/${db}/_all_docs`)).body.rows.map((r: { id: string }) => r.id), ['visible']);
  const del = await couch(`/${db}/_local/checkpoint?rev=${external ? stale.body.rev : p2.body.rev}`, { method: 'DELETE' });
  t.is(del.status, 200, del.text);
  t.is((await couch(`/${db}/_local/checkpoint`)).status, 404);
});

// ---------------------------------------------------------------------------------------------------
// attachments

test('attachments: PUT, GET with content type and bytes, update, DELETE', async (t) => {
  const db = await freshDb('att');
  const text = 'hello, attachment';
  const p1 = await couch(`/${db}/holder/greeting.txt`, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: text });
  t.is(p1.status, 201, p1.text);
  const g1 = await fetch(`${server.couchUrl}/${db}/holder/greeting.txt`, { headers: { Authorization: A() } });
  t.is(g1.status, 200);
  t.regex(g1.headers.get('content-type') ?? '', /^text\/plain/);
  t.is(await g1.text(), text);
  const bin = randomBytes(2048);
  const p2 = await couch(`/${db}/holder/image.png?rev=${p1.body.rev}`, { method: 'PUT', headers: { 'Content-Type': 'image/png' }, body: bin });
  t.is(p2.status, 201, p2.text);
  const g2 = await fetch(`${server.couchUrl}/${db}/holder/image.png`, { headers: { Authorization: A() } });
  t.is(g2.headers.get('content-type'), 'image/png');
  t.true(Buffer.from(await g2.arrayBuffer()).equals(bin));
  const doc = await couch(`/${db}/holder`);
  t.deepEqual(Object.keys(doc.body._attachments).sort(), ['greeting.txt', 'image.png']);
  t.is(doc.body._attachments['image.png'].length, 2048);
  t.is(doc.body._attachments['image.png'].stub, true);
  const d = await couch(`/${db}/holder/greeting.txt?rev=${p2.body.rev}`, { method: 'DELETE' });
  t.is(d.status, 200, d.text);
  t.is((await couch(`/${db}/holder/greeting.txt`)).status, 404);
  t.is((await couch(`/${db}/holder`)).body._attachments['image.png'].content_type, 'image/png');
});

// ---------------------------------------------------------------------------------------------------
// _all_docs, _all_dbs

test('_all_docs with keys, startkey/endkey, include_docs, limit, descending', async (t) => {
  const db = await freshDb('alldocs');
  for (const id of ['a', 'b', 'c', 'd']) await put(t, db, id, { id, n: id.charCodeAt(0) });
  const all = await couch(`/${db}/_all_docs`);
  t.is(all.body.total_rows, 4);
  t.deepEqual(all.body.rows.map((r: { id: string }) => r.id), ['a', 'b', 'c', 'd']);
  t.is(typeof all.body.rows[0].value.rev, 'string');
  const range = await couch(`/${db}/_all_docs?startkey=${encodeURIComponent('"b"')}&endkey=${encodeURIComponent('"c"')}&include_docs=true`);
  t.deepEqual(range.body.rows.map((r: { id: string }) => r.id), ['b', 'c']);
  t.is(range.body.rows[1].doc.n, 99);
  const keysGet = await couch(`/${db}/_all_docs?keys=${encodeURIComponent('["d","a","zz"]')}`);
  t.deepEqual(keysGet.body.rows.map((r: { key: string }) => r.key), ['d', 'a', 'zz']);
  t.is(keysGet.body.rows[2].error, 'not_found');
  const keysPost = await couch(`/${db}/_all_docs?include_docs=true`, { method: 'POST', json: { keys: ['c', 'b'] } });
  t.is(keysPost.status, 200, keysPost.text);
  t.deepEqual(keysPost.body.rows.map((r: { doc: { id: string } }) => r.doc.id), ['c', 'b']);
  const desc = await couch(`/${db}/_all_docs?descending=true&limit=2`);
  t.deepEqual(desc.body.rows.map((r: { id: string }) => r.id), ['d', 'c']);
});

test('_all_dbs: admin only, lists the databases', async (t) => {
  const db = await freshDb('alldbs');
  const r = await couch('/_all_dbs');
  t.is(r.status, 200);
  t.true(r.body.includes(db));
  t.true(r.body.includes('_users'));
  t.true(r.body.includes('anybios'));
  const denied = await call(server.couchUrl, '/_all_dbs', { auth: nodeAuth });
  t.true(denied.status === 401 || denied.status === 403, `${denied.status}`);
  t.is((await call(server.couchUrl, '/_all_dbs')).status, 401);
});

// ---------------------------------------------------------------------------------------------------
// views of _design/anybios

test('views of _design/anybios in a node database: by_type, status_by_phase with reduce', async (t) => {
  const db = `anybios-node-${nodeId}`;
  const updated = new Date().toISOString();
  const statuses = [['web', 'running'], ['db', 'running'], ['job', 'failed']] as const;
  for (const [name, phase] of statuses) {
    const r = await call(server.couchUrl, `/${db}/status:${name}`, { method: 'PUT', auth: nodeAuth, json: { type: 'status', name, phase, updated } });
    t.is(r.status, 201, r.text);
  }
  const base = `/${db}/_design/anybios/_view`;
  const byType = await call(server.couchUrl, `${base}/by_type?reduce=false&startkey=${encodeURIComponent('["status"]')}&endkey=${encodeURIComponent('["status",{}]')}`, { auth: nodeAuth });
  t.is(byType.status, 200, byType.text);
  t.deepEqual(byType.body.rows.map((r: { key: unknown }) => r.key), [['status', 'db'], ['status', 'job'], ['status', 'web']]);
  t.deepEqual(byType.body.rows.map((r: { id: string }) => r.id), ['status:db', 'status:job', 'status:web']);
  const counted = await call(server.couchUrl, `${base}/by_type?key=${encodeURIComponent('["status","web"]')}`, { auth: nodeAuth });
  t.deepEqual(counted.body.rows.map((r: { value: number }) => r.value), [1]);
  const perPhase = await call(server.couchUrl, `${base}/status_by_phase?group_level=1`, { auth: nodeAuth });
  t.is(perPhase.status, 200, perPhase.text);
  t.deepEqual(perPhase.body.rows, [{ key: ['failed'], value: 1 }, { key: ['running'], value: 2 }]);
  const total = await call(server.couchUrl, `${base}/status_by_phase`, { auth: nodeAuth });
  t.deepEqual(total.body.rows.map((r: { value: number }) => r.value), [3]);
  const running = await call(server.couchUrl, `${base}/status_by_phase?reduce=false&include_docs=true&startkey=${encodeURIComponent('["running"]')}&endkey=${encodeURIComponent('["running",{}]')}`, { auth: nodeAuth });
  t.deepEqual(running.body.rows.map((r: { key: unknown[] }) => r.key), [['running', 'db'], ['running', 'web']]);
  t.is(running.body.rows[0].doc.phase, 'running');
  t.is(running.body.rows[0].value.updated, updated);
  // a view that does not exist
  t.is((await call(server.couchUrl, `${base}/no_such_view`, { auth: nodeAuth })).status, 404);
});

// ---------------------------------------------------------------------------------------------------
// revisions: open_revs, conflicts

test('open_revs: all leaves, and named revisions (missing ones marked)', async (t) => {
  const db = await freshDb('openrevs');
  const { winner, loser } = await conflicted(t, db, 'c');
  const all = await couch(`/${db}/c?open_revs=all`, { headers: JSON_ACCEPT });
  t.is(all.status, 200, all.text);
  t.deepEqual(all.body.map((x: { ok: { _rev: string } }) => x.ok._rev).sort(), [loser, winner].sort());
  const named = await couch(`/${db}/c?revs=true&open_revs=${encodeURIComponent(JSON.stringify([loser, rev1('f')]))}`, { headers: JSON_ACCEPT });
  t.is(named.status, 200, named.text);
  t.is(named.body.length, 2);
  const ok = named.body.find((x: { ok?: unknown }) => x.ok);
  t.is(ok.ok._rev, loser);
  t.is(ok.ok.v, 'a');
  t.deepEqual(ok.ok._revisions, { start: 1, ids: ['a'.repeat(32)] });
  t.is(named.body.find((x: { missing?: string }) => x.missing)?.missing, rev1('f'));
});

test('conflicts=true shows _conflicts on the winner (document, _all_docs, _changes)', async (t) => {
  const db = await freshDb('conflicts');
  const { winner, loser } = await conflicted(t, db, 'c');
  const plain = await couch(`/${db}/c`);
  t.is(plain.body._rev, winner);
  t.is(plain.body._conflicts, undefined);
  const doc = await couch(`/${db}/c?conflicts=true`);
  t.is(doc.body._rev, winner);
  t.is(doc.body.v, 'b');
  t.deepEqual(doc.body._conflicts, [loser]);
  const listed = await couch(`/${db}/_all_docs?include_docs=true&conflicts=true`);
  t.deepEqual(listed.body.rows[0].doc._conflicts, [loser]);
  const changed = await couch(`/${db}/_changes?include_docs=true&conflicts=true`);
  t.deepEqual(changed.body.results[0].doc._conflicts, [loser]);
  // resolving: delete the loser, the conflict is gone
  t.is((await couch(`/${db}/c?rev=${loser}`, { method: 'DELETE' })).status, 200);
  t.is((await couch(`/${db}/c?conflicts=true`)).body._conflicts, undefined);
});

test('a design document takes effect on the very next write, and stops when it changes or goes', async (t) => {
  const db = await freshDb('vdu');
  const refuse = 'function (doc) { if (doc.bad) throw({ forbidden: "bad documents are refused" }); }';
  const put = await couch(`/${db}/_design/rules`, { method: 'PUT', json: { validate_doc_update: refuse } });
  t.is(put.status, 201);
  const bad = await couch(`/${db}/one`, { method: 'PUT', json: { bad: true } });
  t.is(bad.status, 403);
  t.is(bad.body.reason, 'bad documents are refused');
  t.is((await couch(`/${db}/two`, { method: 'PUT', json: { bad: false } })).status, 201);
  const allow = await couch(`/${db}/_design/rules?rev=${put.body.rev}`, { method: 'PUT', json: { validate_doc_update: 'function (doc) {}' } });
  t.is(allow.status, 201);
  t.is((await couch(`/${db}/three`, { method: 'PUT', json: { bad: true } })).status, 201, 'the changed rule applies at once');
  const back = await couch(`/${db}/_design/rules?rev=${allow.body.rev}`, { method: 'PUT', json: { validate_doc_update: refuse } });
  t.is((await couch(`/${db}/four`, { method: 'PUT', json: { bad: true } })).status, 403);
  t.is((await couch(`/${db}/_design/rules?rev=${back.body.rev}`, { method: 'DELETE' })).status, 200);
  t.is((await couch(`/${db}/five`, { method: 'PUT', json: { bad: true } })).status, 201, 'a deleted design document no longer applies');
});

test('views: stale=update_after answers the index as it is, then brings it up to date; update=false does not; bad values are query_parse_error', async (t) => {
  // As CouchDB 3.5.0 answers (checked), and as PouchDB's suite expects ("stale update_after").
  const db = await freshDb('pv-stale');
  t.is((await couch(`/${db}/_design/d`, { method: 'PUT', json: { views: { v: { map: 'function (doc) { emit(doc.n); }' } } } })).status, 201);
  t.is((await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { docs: Array.from({ length: 10 }, (_, n) => ({ n })) } })).status, 201);
  const first = await couch(`/${db}/_design/d/_view/v?stale=update_after`);
  t.is(first.status, 200, first.text);
  t.is(first.body.rows.length, 0, 'the index was never built: answered as it is');
  let built = 0;
  for (let i = 0; i < 50 && built < 10; i++) {
    await sleep(100);
    built = (await couch(`/${db}/_design/d/_view/v?update=false`)).body.rows.length;
  }
  t.is(built, 10, 'built in the background after the stale answer');
  t.is((await couch(`/${db}/_bulk_docs`, { method: 'POST', json: { docs: [{ n: 10 }] } })).status, 201);
  t.is((await couch(`/${db}/_design/d/_view/v?update=false`)).body.rows.length, 10, 'update=false: not updated');
  t.is((await couch(`/${db}/_design/d/_view/v`)).body.rows.length, 11);
  for (const q of ['stale=bogus', 'update=bogus']) {
    const r = await couch(`/${db}/_design/d/_view/v?${q}`);
    t.is(r.status, 400);
    t.deepEqual(r.body, { error: 'query_parse_error', reason: `Invalid value for \`${q.split('=')[0]}\`.` });
  }
});
