// The write path accepts what Apache CouchDB 3.5 accepts and refuses what it refuses, with its status
// codes and error names (couch_doc.erl from_json_obj/transfer_fields/parse_rev/validate_docid and
// chttpd_db.erl _bulk_docs/validate_revs/_local). Each case states CouchDB's answer. Also: database
// names with `/` (CouchDB's name rule), which never become a path on disk.
import test, { type ExecutionContext } from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import PouchDB from 'pouchdb';
import { call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const dbs: string[] = [];
const localDir = mkdtempSync(join(tmpdir(), 'anybios-write-rules-'));
const A = () => server.adminAuth;
const couch = (path: string, init: Parameters<typeof call>[2] = {}) => call(server.couchUrl, path, { auth: A(), ...init });
const enc = encodeURIComponent;

test.before(async () => {
  server = await startServer({ embedded: true });
});

test.after.always(async () => {
  if (!server) return;
  if (server.alive()) for (const db of dbs) await couch(`/${enc(db)}`, { method: 'DELETE' }).catch(() => {});
  await server.stop();
  removeDataDir(server.dataDir);
  rmSync(localDir, { recursive: true, force: true });
});

async function freshDb(base: string): Promise<string> {
  const name = uniq(base);
  const r = await couch(`/${enc(name)}`, { method: 'PUT' });
  if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
  dbs.push(name);
  return name;
}

function isError(t: ExecutionContext, r: Awaited<ReturnType<typeof call>>, status: number, error: string, reason?: string | RegExp): void {
  t.is(r.status, status, r.text);
  t.is(r.body?.error, error, r.text);
  if (typeof reason === 'string') t.is(r.body?.reason, reason);
  else if (reason) t.regex(r.body?.reason ?? '', reason);
}

const bulk = (db: string, body: object) => couch(`/${enc(db)}/_bulk_docs`, { method: 'POST', json: body });
const missing = async (t: ExecutionContext, db: string, id: string) => t.is((await couch(`/${enc(db)}/${enc(id)}`)).status, 404, `${id} must not be stored`);

// ---------------------------------------------------------------------------------------------------
// special members

const REPLICATION_FIELDS = {
  _replication_id: 'abc123',
  _replication_state: 'completed',
  _replication_state_time: '2026-01-01T00:00:00Z',
  _replication_state_reason: 'none',
  _replication_stats: { docs_written: 3 },
  _access: ['someone'],
};

test('the replicator\'s _replication_* members and _access are kept (CouchDB: 201, stored as data)', async (t) => {
  const db = await freshDb('wr-special');
  const put = await couch(`/${db}/r1`, { method: 'PUT', json: { v: 1, ...REPLICATION_FIELDS } });
  t.is(put.status, 201, put.text);
  const b = await bulk(db, { docs: [{ _id: 'r2', ...REPLICATION_FIELDS }] });
  t.is(b.status, 201, b.text);
  t.true(b.body[0].ok, b.text);
  const post = await couch(`/${db}`, { method: 'POST', json: { _id: 'r3', ...REPLICATION_FIELDS } });
  t.is(post.status, 201, post.text);
  for (const id of ['r1', 'r2', 'r3']) {
    const got = await couch(`/${db}/${id}`);
    for (const [k, v] of Object.entries(REPLICATION_FIELDS)) t.deepEqual(got.body[k], v, `${id}.${k}`);
  }
});

test('members CouchDB ignores on write are accepted and not stored (CouchDB: 201)', async (t) => {
  const db = await freshDb('wr-ignored');
  const r = await couch(`/${db}/i1`, { method: 'PUT', json: { v: 1, _conflicts: ['1-a'], _deleted_conflicts: [], _revs_info: [], _local_seq: 5 } });
  t.is(r.status, 201, r.text);
  const got = await couch(`/${db}/i1`);
  t.deepEqual(Object.keys(got.body).sort(), ['_id', '_rev', 'v']);
});

test('an unknown _ member: 400 doc_validation "Bad special document member: _x", the whole _bulk_docs request', async (t) => {
  const db = await freshDb('wr-bad-member');
  isError(t, await couch(`/${db}/b1`, { method: 'PUT', json: { _x: 1 } }), 400, 'doc_validation', 'Bad special document member: _x');
  isError(t, await couch(`/${db}`, { method: 'POST', json: { _id: 'b2', _foo: 1 } }), 400, 'doc_validation', 'Bad special document member: _foo');
  // CouchDB parses every document before writing any: one bad member fails the request.
  isError(t, await bulk(db, { docs: [{ _id: 'fine' }, { _id: 'b3', _x: 1 }] }), 400, 'doc_validation', 'Bad special document member: _x');
  await missing(t, db, 'fine');
  // Members of the wrong type are "bad special members" too (transfer_fields has no clause for them).
  isError(t, await couch(`/${db}/b4`, { method: 'PUT', json: { _deleted: 'yes' } }), 400, 'doc_validation', 'Bad special document member: _deleted');
  isError(t, await couch(`/${db}/b5`, { method: 'PUT', json: { _attachments: 'x' } }), 400, 'doc_validation', 'Bad special document member: _attachments');
  isError(t, await couch(`/${db}/b6?new_edits=false`, { method: 'PUT', json: { _rev: '1-a', _revisions: 'x' } }), 400, 'doc_validation', 'Bad special document member: _revisions');
  isError(t, await couch(`/${db}/b7?new_edits=false`, { method: 'PUT', json: { _rev: '1-a', _revisions: { start: 'x', ids: ['a'] } } }), 400, 'doc_validation', "_revisions.start isn't an integer.");
  isError(t, await couch(`/${db}/b8?new_edits=false`, { method: 'PUT', json: { _rev: '1-a', _revisions: { start: 1, ids: 5 } } }), 400, 'doc_validation', "_revisions.ids isn't a array.");
  isError(t, await couch(`/${db}/b9?new_edits=false`, { method: 'PUT', json: { _rev: '1-a', _revisions: { start: 1, ids: [5] } } }), 400, 'doc_validation', "RevId isn't a string");
  for (const id of ['b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8', 'b9']) await missing(t, db, id);
});

// ---------------------------------------------------------------------------------------------------
// revisions

test('a well-formed revision that is not the document\'s: 409 conflict (CouchDB), not a 400', async (t) => {
  const db = await freshDb('wr-fake-rev');
  const first = await couch(`/${db}/d`, { method: 'PUT', json: { v: 1 } });
  t.is(first.status, 201);
  isError(t, await couch(`/${db}/d`, { method: 'PUT', json: { _rev: '3-totally_fake_rev', v: 2 } }), 409, 'conflict');
  isError(t, await couch(`/${db}/d?rev=3-totally_fake_rev`, { method: 'PUT', json: { v: 2 } }), 409, 'conflict');
  isError(t, await couch(`/${db}/d?rev=3-totally_fake_rev`, { method: 'DELETE' }), 409, 'conflict');
  const b = await bulk(db, { docs: [{ _id: 'd', _rev: '3-totally_fake_rev', v: 2 }] });
  t.is(b.status, 201, b.text);
  t.is(b.body[0].error, 'conflict');
  t.is((await couch(`/${db}/d`)).body.v, 1);
});

test('a malformed revision: 400 bad_request "Invalid rev format" (CouchDB), the whole _bulk_docs request', async (t) => {
  const db = await freshDb('wr-bad-rev');
  // (CouchDB takes `1-`, an empty revision id, and answers 409; we refuse it: see docs/couchdb.md.)
  const bad = ['abc', 'x-y', '-1-a', '', `1-${'z'.repeat(32)}`, 123, null, ['1-a']];
  for (const rev of bad) {
    isError(t, await couch(`/${db}/d`, { method: 'PUT', json: { _rev: rev } }), 400, 'bad_request', 'Invalid rev format');
    isError(t, await bulk(db, { docs: [{ _id: 'ok' }, { _id: 'd', _rev: rev }] }), 400, 'bad_request', 'Invalid rev format');
    if (typeof rev === 'string' && rev) isError(t, await couch(`/${db}/d?rev=${enc(rev)}`), 400, 'bad_request', 'Invalid rev format');
  }
  await missing(t, db, 'ok');
});

test('new_edits:false takes any revision id after N- (CouchDB: 1-abc_def, 2-x.y, 70 characters)', async (t) => {
  const db = await freshDb('wr-revids');
  const long = `1-${'q'.repeat(70)}`;
  const odd = '1-a"b\u00e9';
  const docs = [{ _id: 'a', _rev: '1-abc_def' }, { _id: 'b', _rev: '2-x.y' }, { _id: 'c', _rev: long }, { _id: 'e', _rev: odd }];
  const r = await bulk(db, { new_edits: false, docs });
  t.is(r.status, 201, r.text);
  t.deepEqual(r.body, []);
  for (const d of docs) {
    const got = await couch(`/${db}/${d._id}?rev=${enc(d._rev)}`);
    t.is(got.status, 200, got.text);
    t.is(got.body._rev, d._rev);
  }
  // A revision holding characters a header cannot carry is served all the same (its ETag is cleaned).
  const e = await couch(`/${db}/e`);
  t.is(e.status, 200, e.text);
  t.is(e.body._rev, odd);
  // _revisions with such ids (ids of 32 characters must be hex, as CouchDB stores them as bytes).
  const p = await couch(`/${db}/f?new_edits=false`, { method: 'PUT', json: { _revisions: { start: 3, ids: ['x.y', 'a_b', 'c-d'] }, v: 3 } });
  t.is(p.status, 201, p.text);
  t.is((await couch(`/${db}/f`)).body._rev, '3-x.y');
  // A bare `1-` (checked on Apache CouchDB 3.5.0: stored, history {start: 1, ids: [""]}).
  const bare = await bulk(db, { new_edits: false, docs: [{ _id: 'bare', _rev: '1-', v: 1 }] });
  t.is(bare.status, 201, bare.text);
  const got = await couch(`/${db}/bare?revs=true`);
  t.is(got.status, 200, got.text);
  t.deepEqual([got.body._rev, got.body._revisions], ['1-', { start: 1, ids: [''] }]);
  isError(t, await couch(`/${db}/g?new_edits=false`, { method: 'PUT', json: { _revisions: { start: 1, ids: ['z'.repeat(32)] } } }), 400, 'doc_validation', "RevId isn't a valid hexadecimal");
  const diff = await couch(`/${db}/_revs_diff`, { method: 'POST', json: { a: ['1-abc_def', '2-x.y'] } });
  t.deepEqual(diff.body.a.missing, ['2-x.y']);
});

test('new_edits:false without _rev or _revisions: 400 bad_request for the whole request (CouchDB)', async (t) => {
  const db = await freshDb('wr-noref');
  isError(t, await bulk(db, { new_edits: false, docs: [{ _id: 'ok', _rev: '1-a' }, { _id: 'x' }] }), 400, 'bad_request', 'When `new_edits: false`, the document needs `_rev` or `_revisions` specified');
  await missing(t, db, 'ok');
  isError(t, await couch(`/${db}/y?new_edits=false`, { method: 'PUT', json: { v: 1 } }), 400, 'bad_request', /new_edits: false/);
});

// ---------------------------------------------------------------------------------------------------
// ids: whole-request errors

test('an illegal document id fails the whole _bulk_docs request: 400 illegal_docid (CouchDB)', async (t) => {
  const db = await freshDb('wr-docid');
  const cases: [unknown, string][] = [
    ['_invalid', 'Only reserved document ids may start with underscore.'],
    ['', 'Document id must not be empty'],
    ['_design/', 'Illegal document id `_design/`'],
    ['_local/', 'Illegal document id `_local/`'],
    [5, 'Document id must be a string'],
  ];
  for (const [id, reason] of cases) {
    isError(t, await bulk(db, { docs: [{ _id: 'ok', v: 1 }, { _id: id }] }), 400, 'illegal_docid', reason);
    isError(t, await couch(`/${db}`, { method: 'POST', json: { _id: id } }), 400, 'illegal_docid', reason);
  }
  // A lone surrogate: CouchDB refuses the body (400 bad_request "invalid UTF-8 JSON"); we, the id.
  isError(t, await bulk(db, { docs: [{ _id: 'ok', v: 1 }, { _id: 'a\ud800b' }] }), 400, 'illegal_docid', 'Document id must be valid UTF-8');
  isError(t, await bulk(db, { new_edits: false, docs: [{ _id: '_invalid', _rev: '1-a' }] }), 400, 'illegal_docid');
  // By URL: written, 400 illegal_docid; read, 404 (CouchDB).
  isError(t, await couch(`/${db}/_invalid`, { method: 'PUT', json: {} }), 400, 'illegal_docid', 'Only reserved document ids may start with underscore.');
  isError(t, await couch(`/${db}/_invalid`), 404, 'not_found', 'missing');
  isError(t, await bulk(db, { docs: [{ _id: 'ok' }, 'not a doc'] }), 400, 'bad_request', 'Document must be a JSON object');
  await missing(t, db, 'ok');
});

test('per-document refusals stay per document: validate_doc_update (CouchDB: 201 with the error in its row)', async (t) => {
  const db = await freshDb('wr-perdoc');
  const vdu = 'function (doc) { if (doc.bad) throw({forbidden: "no bad docs"}); }';
  t.is((await couch(`/${db}/_design/v`, { method: 'PUT', json: { validate_doc_update: vdu } })).status, 201);
  const r = await bulk(db, { docs: [{ _id: 'good' }, { _id: 'nope', bad: true }] });
  t.is(r.status, 201, r.text);
  t.true(r.body[0].ok);
  t.deepEqual(r.body[1], { id: 'nope', error: 'forbidden', reason: 'no bad docs' });
  // Our own attachment rules (content types become headers; CouchDB stores this one) refuse that document alone.
  const a = await bulk(db, { docs: [{ _id: 'att', _attachments: { 'a.txt': { content_type: 'bad\ntype', data: 'eA==' } } }, { _id: 'plain' }] });
  t.is(a.status, 201, a.text);
  t.is(a.body[0].error, 'doc_validation');
  t.true(a.body[1].ok);
});

test('an attachment name starting with _ or bad base64 data: 400 bad_request for the request (CouchDB)', async (t) => {
  const db = await freshDb('wr-attname');
  isError(t, await bulk(db, { docs: [{ _id: 'ok' }, { _id: 'x', _attachments: { _a: { content_type: 'text/plain', data: 'eA==' } } }] }), 400, 'bad_request', "Attachment name '_a' starts with prohibited character '_'");
  isError(t, await couch(`/${db}/y`, { method: 'PUT', json: { _attachments: { 'a.txt': { content_type: 'text/plain', data: '!!!' } } } }), 400, 'bad_request', 'Invalid attachment data for a.txt');
  await missing(t, db, 'ok');
});

// ---------------------------------------------------------------------------------------------------
// _local documents

test('_local documents: deleted through _bulk_docs with _rev 0-1, no attachments (CouchDB)', async (t) => {
  const db = await freshDb('wr-local');
  const put = await couch(`/${db}/_local/cp`, { method: 'PUT', json: { v: 1, _attachments: { 'a.txt': { content_type: 'text/plain', data: 'eA==' } } } });
  t.is(put.status, 201, put.text);
  t.is(put.body.rev, '0-1');
  const got = await couch(`/${db}/_local/cp`);
  t.is(got.status, 200);
  t.is(got.body.v, 1);
  t.is(got.body._attachments, undefined, 'CouchDB drops attachments of _local documents');
  isError(t, await couch(`/${db}/_local/cp/a.txt`), 400, 'bad_request', '_local documents do not accept attachments.');
  isError(t, await couch(`/${db}/_local/cp/a.txt`, { method: 'PUT', body: 'x', headers: { 'Content-Type': 'text/plain' } }), 400, 'bad_request');
  isError(t, await couch(`/${db}/_local`), 400, 'bad_request', 'Invalid _local document id.');
  isError(t, await couch(`/${db}/_local/cp`, { method: 'PUT', json: { _x: 1 } }), 400, 'doc_validation', 'Bad special document member: _x');
  const del = await bulk(db, { docs: [{ _id: '_local/cp', _rev: '0-1', _deleted: true }] });
  t.is(del.status, 201, del.text);
  t.deepEqual(del.body, [{ ok: true, id: '_local/cp', rev: '0-0' }]);
  t.is((await couch(`/${db}/_local/cp`)).status, 404);
  const b = await bulk(db, { docs: [{ _id: '_local/b', _attachments: { 'a.txt': { content_type: 'text/plain', data: 'eA==' } } }] });
  t.is(b.status, 201, b.text);
  t.is((await couch(`/${db}/_local/b`)).body._attachments, undefined);
});

// ---------------------------------------------------------------------------------------------------
// database names with `/`

test('a database name with / (CouchDB\'s rule): created, written, listed, replicated, deleted; a directory of its own', async (t) => {
  const name = uniq('team/sub/db');
  const u = `/${enc(name)}`;
  t.is((await couch(u, { method: 'PUT' })).status, 201);
  dbs.push(name);
  const info = await couch(u);
  t.is(info.status, 200, info.text);
  t.is(info.body.db_name, name);
  t.is((await couch(`${u}/doc1`, { method: 'PUT', json: { v: 1 } })).status, 201);
  t.is((await couch(`${u}/_design/d`, { method: 'PUT', json: { views: { v: { map: 'function (doc) { emit(doc.v, 1); }' } } } })).status, 201);
  const view = await couch(`${u}/_design/d/_view/v`);
  t.is(view.status, 200, view.text);
  t.is(view.body.rows.length, 1);
  t.true((await couch('/_all_dbs')).body.includes(name));
  const dbsInfo = await couch('/_dbs_info', { method: 'POST', json: { keys: [name] } });
  t.is(dbsInfo.body[0].info?.db_name, name, dbsInfo.text);
  // PouchDB (which encodes the name in its URL) replicates from it.
  const local = new PouchDB(join(localDir, 'slash'));
  const remote = new PouchDB(`${server.couchUrl}/${enc(name)}`, { auth: { username: 'admin', password: server.adminPassword }, skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);
  try {
    const rep = await local.replicate.from(remote);
    t.is(rep.docs_written, 2);
    await local.put({ _id: 'back', v: 2 });
    await local.replicate.to(remote);
    t.is((await couch(`${u}/back`)).body.v, 2);
  } finally {
    await local.close();
    await remote.close();
  }
  // On disk: one flat directory, `/` spelled `~`; nothing was created along the path of the name.
  const couchDir = join(server.dataDir, 'couch');
  t.true(existsSync(join(couchDir, name.replaceAll('/', '~'))));
  t.false(existsSync(join(couchDir, 'team')));
  t.false(readdirSync(couchDir).some((f) => f.startsWith('team') && !f.startsWith('team~')));
  t.is((await couch(u, { method: 'DELETE' })).status, 200);
  t.is((await couch(u)).status, 404);
  t.false(existsSync(join(couchDir, name.replaceAll('/', '~'))));
});

test('database names that try to leave the data directory: 400 illegal_database_name', async (t) => {
  const bad = ['a/../b', 'a/./b', '/a', '../a', 'a/..', 'a\\b', 'a~b', 'a@b', 'a/.', 'a%2Fb', 'a/\u0000', 'a/B', 'a//../b', '/../etc', 'a/../../../../etc/passwd', 'a/%2e%2e/b', 'a/\u2215b'];
  for (const name of bad) {
    // (A bare `..` is resolved by any URL parser before it is sent; hostile.test.ts sends it raw.)
    const r = await couch(`/${enc(name)}`, { method: 'PUT' });
    isError(t, r, 400, 'illegal_database_name');
  }
  // A segment of more than 238 characters: 400 database_name_too_long (CouchDB).
  for (const name of ['a'.repeat(239), `a/${'b'.repeat(239)}`]) isError(t, await couch(`/${enc(name)}`, { method: 'PUT' }), 400, 'database_name_too_long');
  // Fine (CouchDB: 201): 238 characters; 301 with slashes (its directory is hashed to stay short); a
  // system database under a prefix.
  for (const name of ['a'.repeat(238), `${'a/'.repeat(150)}${uniq('b')}`, uniq('p') + '/_users']) {
    const r = await couch(`/${enc(name)}`, { method: 'PUT' });
    t.is(r.status, 201, `${name}: ${r.text}`);
    dbs.push(name);
    t.is((await couch(`/${enc(name)}/d`, { method: 'PUT', json: { v: 1 } })).status, 201);
    t.is((await couch(`/${enc(name)}/d`)).body.v, 1);
  }
  const couchDir = join(server.dataDir, 'couch');
  t.true(readdirSync(couchDir).some((f) => /^a~a~.*@[0-9a-f]{40}$/.test(f) && f.length <= 200));
  // Nothing outside <data>/couch was created.
  const top = readdirSync(server.dataDir);
  t.false(top.some((f) => f === 'a' || f === 'b' || f.startsWith('..')), top.join(','));
});

test('CouchDB 3.5.0 answers PouchDB\'s suite checks: _revisions on a _local edit is ignored; _selector errors in its words', async (t) => {
  const db = await freshDb('wr-suite');
  const first = await couch(`/${db}/_local/foo`, { method: 'PUT', json: {} });
  t.is(first.status, 201, first.text);
  // PouchDB's "local docs - put then get w/ revisions": a history CouchDB ignores on a normal edit.
  const again = await couch(`/${db}/_local/foo`, { method: 'PUT', json: { _rev: first.body.rev, _revisions: { start: 0, ids: ['1'] } } });
  t.is(again.status, 201, again.text);
  t.is((await couch(`/${db}/_local/foo`)).body._revisions, undefined);
  // Replicated, the same history is still refused (PouchDB's revision tree breaks on it).
  isError(t, await couch(`/${db}/x?new_edits=false`, { method: 'PUT', json: { _rev: '1-a', _revisions: { start: 0, ids: ['1'] } } }), 400, 'doc_validation');
  isError(t, await couch(`/${db}/_changes?filter=_selector`), 400, 'bad_request', 'Selector must be specified in POST payload');
  isError(t, await couch(`/${db}/_changes?filter=_selector`, { method: 'POST', json: { selector: 'foo' } }), 400, 'bad_request', 'Selector error: expected a JSON object');
});
