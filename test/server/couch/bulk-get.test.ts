// _bulk_get on the embedded CouchDB as Apache CouchDB 3.5 answers it (issue 11): every requested entry
// answered in order, design documents included; an entry without `rev` gets all leaf revisions;
// `attachments=true` inlines base64, an entry's `atts_since` keeps older attachments as stubs; errors are
// per entry in CouchDB's form; `Accept: multipart/mixed` gets CouchDB's multipart layout; readers only.
// Then replication through it: PouchDB's own replicator pulls and pushes documents with attachments,
// conflicts and design documents, and nothing is lost.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { basic, call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const pouchDirs: string[] = [];

test.before(async () => {
  server = await startServer({ embedded: true });
  const users = server.admin.use('_users');
  for (const name of ['bg-member', 'bg-stranger']) await users.insert({ _id: `org.couchdb.user:${name}`, type: 'user', name, roles: [], password: `${name}-pw` } as never);
});

test.after.always(async () => {
  await server?.stop();
  if (server) removeDataDir(server.dataDir);
  for (const d of pouchDirs) rmSync(d, { recursive: true, force: true });
});

const md5 = (b: Buffer) => `md5-${createHash('md5').update(b).digest('base64')}`;
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const JSON_ACCEPT = { Accept: 'application/json' };

async function freshDb(base: string): Promise<string> {
  const db = uniq(base);
  await server.admin.db.create(db);
  await call(server.couchUrl, `/${db}/_security`, { method: 'PUT', auth: server.adminAuth, json: { admins: { names: [], roles: [] }, members: { names: ['bg-member'], roles: [] } } });
  return db;
}

const bulkGet = (db: string, qs: string, docs: unknown, auth = server.adminAuth, headers: Record<string, string> = JSON_ACCEPT) =>
  call(server.couchUrl, `/${db}/_bulk_get${qs}`, { method: 'POST', auth, headers, json: { docs } });

async function fixture(t: { is: (a: unknown, b: unknown, m?: string) => void }, db: string) {
  const one = Buffer.from('first attachment');
  const two = randomBytes(2000);
  const r1 = await call(server.couchUrl, `/${db}/doc`, { method: 'PUT', auth: server.adminAuth, json: { v: 1, _attachments: { 'one.txt': { content_type: 'text/plain', data: b64(one) } } } });
  const r2 = await call(server.couchUrl, `/${db}/doc/two.bin?rev=${r1.body.rev}`, { method: 'PUT', auth: server.adminAuth, headers: { 'Content-Type': 'application/octet-stream' }, body: two });
  const dd = await call(server.couchUrl, `/${db}/_design/anybios`, { method: 'PUT', auth: server.adminAuth, json: { validate_doc_update: 'function (n, o, u) {}', views: { v: { map: 'function (d) { emit(d._id); }' } } } });
  for (const r of [r1, r2, dd]) t.is(r.status, 201, r.text);
  return { one, two, rev1: r1.body.rev as string, rev2: r2.body.rev as string, ddocRev: dd.body.rev as string };
}

test('design documents are answered (the replicator asks for _design/anybios), with revs and CouchDB member order', async (t) => {
  const db = await freshDb('bg-ddoc');
  const f = await fixture(t, db);
  const r = await bulkGet(db, '?revs=true&latest=true', [{ id: '_design/anybios', rev: f.ddocRev, atts_since: [] }, { id: '_design/anybios' }]);
  t.is(r.status, 200, r.text);
  t.is(r.body.results.length, 2);
  for (const res of r.body.results) {
    t.is(res.id, '_design/anybios');
    t.is(res.docs.length, 1);
    const doc = res.docs[0].ok;
    t.is(doc._rev, f.ddocRev);
    t.is(doc.validate_doc_update, 'function (n, o, u) {}');
    t.deepEqual(Object.keys(doc), ['_id', '_rev', 'validate_doc_update', 'views', '_revisions']);
  }
});

test('attachments=true inlines base64; atts_since keeps what the caller has as stubs (and implies attachments)', async (t) => {
  const db = await freshDb('bg-atts');
  const f = await fixture(t, db);
  const all = await bulkGet(db, '?attachments=true&revs=true', [{ id: 'doc', rev: f.rev2 }]);
  const doc = all.body.results[0].docs[0].ok;
  t.deepEqual(doc._attachments['one.txt'], { content_type: 'text/plain', revpos: 1, digest: md5(f.one), data: b64(f.one) });
  t.deepEqual(doc._attachments['two.bin'], { content_type: 'application/octet-stream', revpos: 2, digest: md5(f.two), data: b64(f.two) });
  const since = await bulkGet(db, '', [{ id: 'doc', rev: f.rev2, atts_since: [f.rev1] }]);
  const s = since.body.results[0].docs[0].ok;
  t.deepEqual(s._attachments['one.txt'], { content_type: 'text/plain', revpos: 1, digest: md5(f.one), length: f.one.length, stub: true });
  t.is(s._attachments['two.bin'].data, b64(f.two));
  t.is(s._revisions, undefined, 'no _revisions without revs=true');
  const stubs = await bulkGet(db, '', [{ id: 'doc' }]);
  t.is(stubs.body.results[0].docs[0].ok._attachments['two.bin'].stub, true);
});

test('an entry without rev gets every leaf (conflicts and deleted leaves too); latest maps an old revision to its leaf', async (t) => {
  const db = await freshDb('bg-leaves');
  const a = `1-${'a'.repeat(32)}`;
  const b = `1-${'b'.repeat(32)}`;
  const c2 = `2-${'c'.repeat(32)}`;
  const w = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { new_edits: false, docs: [
    { _id: 'x', _rev: a, side: 'a' },
    { _id: 'x', _rev: b, side: 'b' },
    { _id: 'x', _rev: c2, _revisions: { start: 2, ids: ['c'.repeat(32), 'a'.repeat(32)] }, _deleted: true },
  ] } });
  t.is(w.status, 201, w.text);
  const r = await bulkGet(db, '', [{ id: 'x' }]);
  const revs = r.body.results[0].docs.map((d: { ok: { _rev: string } }) => d.ok._rev).sort();
  t.deepEqual(revs, [b, c2]);
  t.is(r.body.results[0].docs.find((d: { ok: { _rev: string } }) => d.ok._rev === c2).ok._deleted, true);
  const latest = await bulkGet(db, '?latest=true', [{ id: 'x', rev: a }]);
  t.is(latest.body.results[0].docs[0].ok._rev, c2);
  const old = await bulkGet(db, '', [{ id: 'x', rev: a }]);
  t.is(old.body.results[0].docs[0].ok._rev, a);
  // Below a conflict, latest gives every leaf that descends from the revision (as CouchDB 3.5 answers).
  const fork = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { new_edits: false, docs: [
    { _id: 'y', _rev: '2-bbbb', _revisions: { start: 2, ids: ['bbbb', 'aaaa'] } },
    { _id: 'y', _rev: '2-cccc', _revisions: { start: 2, ids: ['cccc', 'aaaa'] } },
  ] } });
  t.is(fork.status, 201, fork.text);
  const both = await bulkGet(db, '?latest=true', [{ id: 'y', rev: '1-aaaa' }]);
  t.deepEqual(both.body.results[0].docs, [{ ok: { _id: 'y', _rev: '2-bbbb' } }, { ok: { _id: 'y', _rev: '2-cccc' } }]);
});

test('errors per entry as CouchDB formats them; results in request order', async (t) => {
  const db = await freshDb('bg-errors');
  await fixture(t, db);
  const missingRev = `9-${'f'.repeat(32)}`;
  const r = await bulkGet(db, '', [{ id: 'nope' }, { id: 'doc', rev: missingRev }, { id: 'nope', rev: missingRev }, 'x', {}, { rev: '1-a' }, { id: '_underscore' }, { id: 'doc', rev: 'bad' }, { id: 'doc', atts_since: ['bad'] }, { id: 'doc', atts_since: 'x' }]);
  t.is(r.status, 200, r.text);
  t.deepEqual(r.body.results, [
    { id: 'nope', docs: [{ error: { id: 'nope', rev: 'undefined', error: 'not_found', reason: 'missing' } }] },
    { id: 'doc', docs: [{ error: { id: 'doc', rev: missingRev, error: 'not_found', reason: 'missing' } }] },
    { id: 'nope', docs: [{ error: { id: 'nope', rev: missingRev, error: 'not_found', reason: 'missing' } }] },
    { id: null, docs: [{ error: { id: null, rev: null, error: 'bad_request', reason: 'document must be a JSON object' } }] },
    { id: null, docs: [{ error: { id: null, rev: null, error: 'bad_request', reason: 'document must be a JSON object' } }] },
    { id: null, docs: [{ error: { id: null, rev: null, error: 'bad_request', reason: 'document id missed' } }] },
    { id: '_underscore', docs: [{ error: { id: '_underscore', rev: null, error: 'illegal_docid', reason: 'Only reserved document ids may start with underscore.' } }] },
    { id: 'doc', docs: [{ error: { id: 'doc', rev: 'bad', error: 'bad_request', reason: 'Invalid rev format' } }] },
    { id: 'doc', docs: [{ error: { id: 'doc', rev: 'bad', error: 'bad_request', reason: 'Invalid rev format' } }] },
    { id: 'doc', docs: [{ error: { id: 'doc', rev: 'x', error: 'bad_request', reason: 'att_since value must be array of revs.' } }] },
  ]);
  const noDocs = await call(server.couchUrl, `/${db}/_bulk_get`, { method: 'POST', auth: server.adminAuth, json: {} });
  t.is(noDocs.status, 400);
  t.is(noDocs.body.reason, "Missing JSON list of 'docs'.");
  for (const p of ['rev=1-a', 'open_revs=all', 'atts_since=[]', 'new_edits=false', 'w=1']) {
    const q = await call(server.couchUrl, `/${db}/_bulk_get?${p}`, { method: 'POST', auth: server.adminAuth, json: { docs: [] } });
    t.is(q.status, 400, p);
    t.is(q.body.reason, `"${p.split('=')[0]}" query parameter is not acceptable`);
  }
});

test('Accept: multipart/mixed: CouchDB\'s _bulk_get multipart layout, attachment bodies nested', async (t) => {
  const db = await freshDb('bg-multipart');
  const f = await fixture(t, db);
  const res = await fetch(`${server.couchUrl}/${db}/_bulk_get?revs=true`, { method: 'POST', headers: { Authorization: server.adminAuth, Accept: 'multipart/mixed', 'Content-Type': 'application/json' }, body: JSON.stringify({ docs: [{ id: 'doc', rev: f.rev2 }, { id: '_design/anybios' }, { id: 'nope' }] }) });
  t.is(res.status, 200);
  const type = res.headers.get('content-type')!;
  const m = /^multipart\/mixed; boundary="(--[0-9a-f]{32})"$/.exec(type);
  t.truthy(m, type);
  const body = Buffer.from(await res.arrayBuffer()).toString('latin1');
  const outer = m![1];
  t.true(body.endsWith(`\r\n--${outer}--\r\n`));
  const pieces = body.slice(0, -`\r\n--${outer}--\r\n`.length).split(`\r\n--${outer}`).slice(1);
  t.is(pieces.length, 3);
  t.regex(pieces[0], new RegExp(`^\\r\\nX-Doc-Id: doc\\r\\nX-Rev-Id: ${f.rev2}\\r\\nContent-Type: multipart/related; boundary=--[0-9a-f]{32}\\r\\n\\r\\n`));
  t.true(pieces[0].includes(Buffer.from(f.two).toString('latin1')), 'the binary attachment inside');
  t.regex(pieces[1], /^\r\nContent-Type: application\/json\r\n\r\n\{"_id":"_design\/anybios"/);
  // Checked against Apache CouchDB 3.5.0: the same bytes, members in the same order.
  t.is(pieces[2], '\r\nContent-Type: application/json; error="true"\r\n\r\n{"rev":"undefined","reason":"missing","id":"nope","error":"not_found"}');
});

test('_bulk_get follows _security: a stranger gets 403, a member reads', async (t) => {
  const db = await freshDb('bg-sec');
  await fixture(t, db);
  const no = await bulkGet(db, '', [{ id: 'doc' }], basic('bg-stranger', 'bg-stranger-pw'));
  t.is(no.status, 403, no.text);
  const anon = await call(server.couchUrl, `/${db}/_bulk_get`, { method: 'POST', json: { docs: [{ id: 'doc' }] } });
  t.is(anon.status, 401, anon.text);
  const yes = await bulkGet(db, '', [{ id: 'doc' }], basic('bg-member', 'bg-member-pw'));
  t.is(yes.status, 200);
  t.is(yes.body.results[0].docs[0].ok._id, 'doc');
});

test('latest=true with a revision the document never had is an answer, not a crash (PouchDB throws out of a callback)', async (t) => {
  const db = await freshDb('bg-latest');
  const f = await fixture(t, db);
  const unknown = `3-${'e'.repeat(32)}`;
  const a = await call(server.couchUrl, `/${db}/doc?latest=true&open_revs=${encodeURIComponent(JSON.stringify([unknown, f.rev1]))}`, { auth: server.adminAuth, headers: JSON_ACCEPT });
  t.is(a.status, 200, a.text);
  t.deepEqual(a.body.map((x: { ok?: { _rev: string }; missing?: string }) => x.ok?._rev ?? x.missing), [unknown, f.rev2], 'in the order asked');
  // With `rev`, CouchDB 3.5 ignores it under latest=true and opens the winner; so does the embedded server.
  const b = await call(server.couchUrl, `/${db}/doc?latest=true&rev=${unknown}`, { auth: server.adminAuth });
  t.is(b.status, 200, b.text);
  t.is(b.body._rev, f.rev2);
  const c = await bulkGet(db, '?latest=true', [{ id: 'doc', rev: unknown }, { id: 'gone', rev: unknown }]);
  t.is(c.status, 200, c.text);
  t.is(c.body.results[0].docs[0].error.error, 'not_found');
  const mixed = await fetch(`${server.couchUrl}/${db}/doc?latest=true&open_revs=${encodeURIComponent(JSON.stringify([unknown]))}`, { headers: { Authorization: server.adminAuth, Accept: 'multipart/mixed' } });
  t.is(mixed.status, 200);
  t.regex(await mixed.text(), /\{"missing":"3-e+"\}/);
  t.true(server.alive(), 'the server is still up');
  t.is((await call(server.couchUrl, '/', { auth: server.adminAuth })).status, 200);
});

// ---------------------------------------------------------------------------------------------------
// PouchDB's own replicator through _bulk_get and _bulk_docs: nothing lost

function localDb(name: string): PouchDB.Database {
  const dir = mkdtempSync(join(tmpdir(), 'anybios-bulkget-pouch-'));
  pouchDirs.push(dir);
  return new PouchDB(join(dir, name));
}

/** Every document of a database with all its leaves and attachment bytes, for comparison. */
async function snapshot(db: PouchDB.Database): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const all = await db.allDocs();
  const ddocs = all.rows.map((r) => r.id);
  for (const id of ddocs) {
    const leaves = (await db.get(id, { open_revs: 'all', revs: true, attachments: true, binary: false } as PouchDB.Core.GetOpenRevisions)) as unknown as { ok: Record<string, unknown> }[];
    out[id] = leaves.map((l): Record<string, unknown> => {
      const atts = l.ok._attachments as Record<string, { data: string; content_type: string }> | undefined;
      return { ...l.ok, _attachments: atts && Object.fromEntries(Object.entries(atts).map(([k, v]) => [k, { data: v.data, content_type: v.content_type }])) };
    }).sort((x, y) => String(x._rev).localeCompare(String(y._rev)));
  }
  return out;
}

test('PouchDB replication pushes and pulls documents with attachments, conflicts and design documents: nothing lost', async (t) => {
  const db = await freshDb('bg-repl');
  const remote = new PouchDB(`${server.couchUrl}/${db}`, { auth: { username: 'admin', password: server.adminPassword }, skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);
  const src = localDb('src');
  const docs: PouchDB.Core.PutDocument<Record<string, unknown>>[] = [];
  for (let i = 0; i < 60; i++) docs.push({ _id: `d${String(i).padStart(3, '0')}`, i, _attachments: i % 3 ? { [`f${i}.bin`]: { content_type: 'application/octet-stream', data: b64(randomBytes(100 + i * 37)) } } : undefined } as never);
  docs.push({ _id: '_design/anybios', validate_doc_update: 'function () {}', _attachments: { 'logo.svg': { content_type: 'image/svg+xml', data: b64('<svg/>') } } } as never);
  for (const d of docs) if (d._attachments === undefined) delete d._attachments;
  await src.bulkDocs(docs);
  // A conflict: two branches of one document.
  await src.bulkDocs([{ _id: 'c', _rev: `1-${'a'.repeat(32)}`, side: 'a' }, { _id: 'c', _rev: `1-${'b'.repeat(32)}`, side: 'b' }] as never, { new_edits: false });
  // A second revision that adds an attachment to a document that had one.
  const d1 = await src.get('d001');
  await src.put({ ...d1, more: true, _attachments: { ...(d1._attachments ?? {}), 'extra.txt': { content_type: 'text/plain', data: b64('extra') } } } as never);

  const push = await src.replicate.to(remote);
  t.is(push.doc_write_failures, 0);
  const dst = localDb('dst');
  const pull = await dst.replicate.from(remote);
  t.is(pull.doc_write_failures, 0);
  t.true(pull.docs_read >= docs.length + 2, `read ${pull.docs_read}`);
  t.deepEqual(await snapshot(dst), await snapshot(src));
  // And what the server holds, seen through _bulk_get itself.
  const r = await bulkGet(db, '?attachments=true&revs=true', [{ id: '_design/anybios' }, { id: 'c' }]);
  t.is(Buffer.from(r.body.results[0].docs[0].ok._attachments['logo.svg'].data, 'base64').toString(), '<svg/>');
  t.is(r.body.results[1].docs.length, 2);
  await remote.close();
});

test('latest=true over many conflicting leaves: each entry its own leaf, the leaves read once per request', async (t) => {
  // PouchDB's replication tests ask for 200 conflicting revisions of one document in one _bulk_get;
  // reading every leaf for every entry took 55 s on a loaded machine and stalled the server (200 leaves,
  // measured by hand on an idle one: 9.2 s before, 0.12 s with one read per request).
  const db = await freshDb('bg-many');
  const hex = (i: number) => i.toString(16).padStart(32, '0');
  const docs = Array.from({ length: 120 }, (_, i) => ({ _id: 'c', _rev: `2-${hex(i + 1)}`, v: i, _revisions: { start: 2, ids: [hex(i + 1), 'a'.repeat(32)] } }));
  const w = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { docs, new_edits: false } });
  t.is(w.status, 201, w.text);
  const asked = [...docs.map((d) => ({ id: 'c', rev: d._rev })), { id: 'c', rev: `1-${'a'.repeat(32)}` }];
  const r = await bulkGet(db, '?latest=true&revs=true', asked);
  t.is(r.status, 200, r.text);
  t.is(r.body.results.length, asked.length);
  for (const [i, d] of docs.entries()) t.deepEqual(r.body.results[i].docs.map((x: { ok: { _rev: string; v: number } }) => [x.ok._rev, x.ok.v]), [[d._rev, i]]);
  // The common ancestor: every leaf descends from it (CouchDB's get_key_leafs).
  t.is(r.body.results[asked.length - 1].docs.length, docs.length);
});

test('latest=true finds a leaf whose id repeats its parent\'s (1-a → 2-a: PouchDB reports a shortened history)', async (t) => {
  const db = await freshDb('bg-repeat');
  const put = (doc: Record<string, unknown>) => call(server.couchUrl, `/${db}/789?new_edits=false`, { method: 'PUT', auth: server.adminAuth, json: doc });
  t.is((await put({ _id: '789', _rev: '1-a', value: 'test' })).status, 201);
  for (const id of ['a', 'b', 'c']) t.is((await put({ _id: '789', _rev: `2-${id}`, value: id, _revisions: { start: 2, ids: [id, 'a'] } })).status, 201);
  const r = await bulkGet(db, '?latest=true&revs=true', ['2-a', '2-b', '2-c'].map((rev) => ({ id: '789', rev })));
  t.is(r.status, 200, r.text);
  t.deepEqual(r.body.results.map((x: { docs: { ok?: { _rev: string } }[] }) => x.docs.map((d) => d.ok?._rev ?? 'missing')), [['2-a'], ['2-b'], ['2-c']]);
});
