// Attachments against a stolen node credential (issue 10): they are served sandboxed (no script runs
// in the server's origin), only template documents may carry them, and a `content_type` that cannot be
// a header is refused on every write path; one already on disk is served sanitised, so it cannot stop
// a replication. Real server over HTTP, real PouchDB replicating from it; embedded server only.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode } from '../../../server/nodes.ts';
import { basic, call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const servers: TestServer[] = [];
const pouchDirs: string[] = [];
const b64 = (s: string) => Buffer.from(s).toString('base64');
const HTML = '<script>alert(document.cookie)</script>';
const BAD_TYPE = 'text/html\r\nX-Injected: 1';

test.before(async () => {
  server = await startServer({ embedded: true });
  servers.push(server);
});

test.after.always(async () => {
  for (const s of servers) {
    await s.stop();
    removeDataDir(s.dataDir);
  }
  for (const d of pouchDirs) rmSync(d, { recursive: true, force: true });
});

async function freshDb(base: string, s = server): Promise<string> {
  const db = uniq(base);
  await s.admin.db.create(db);
  return db;
}

test('attachments are served with Content-Security-Policy: sandbox and nosniff (GET and HEAD)', async (t) => {
  const db = await freshDb('att-csp');
  const put = await call(server.couchUrl, `/${db}/page`, { method: 'PUT', auth: server.adminAuth, json: { _attachments: { 'x.html': { content_type: 'text/html', data: b64(HTML) }, 'y.svg': { content_type: 'image/svg+xml', data: b64('<svg onload="alert(1)"/>') } } } });
  t.is(put.status, 201, put.text);
  for (const name of ['x.html', 'y.svg']) {
    for (const method of ['GET', 'HEAD']) {
      const r = await call(server.couchUrl, `/${db}/page/${name}`, { method, auth: server.adminAuth });
      t.is(r.status, 200);
      t.is(r.headers.get('content-security-policy'), 'sandbox', `${method} ${name}`);
      t.is(r.headers.get('x-content-type-options'), 'nosniff', `${method} ${name}`);
    }
  }
  const r = await call(server.couchUrl, `/${db}/page/x.html`, { auth: server.adminAuth });
  t.is(r.headers.get('content-type'), 'text/html');
  t.is(r.text, HTML);
});

test('only template documents carry attachments: system, status, volume and node documents are refused, naming the field', async (t) => {
  const node = await addNode(server.admin, uniq('an'));
  const auth = basic(node.user, node.password);
  const att = { 'x.html': { content_type: 'text/html', data: b64(HTML) } };
  const system = { _id: 'system:web', type: 'system', name: 'web', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] };
  const status = { _id: 'status:web', type: 'status', name: 'web', phase: 'running', observedRev: '1-abc', pid: 42, updated: '2026-11-26T01:00:00.000Z' };
  const volume = { _id: 'volume:data', type: 'volume', name: 'data' };
  const nodeDoc = { _id: `node:${node.node}`, type: 'node', name: node.node };
  const reason = /\/_attachments not allowed: only template documents carry attachments/;

  for (const doc of [system, status, volume, nodeDoc]) {
    const r = await call(server.couchUrl, `/${node.db}/${encodeURIComponent(doc._id)}`, { method: 'PUT', auth, json: { ...doc, _attachments: att } });
    t.is(r.status, 403, `${doc._id}: ${r.text}`);
    t.is(r.body.error, 'forbidden');
    t.regex(r.body.reason, reason, doc._id);
  }
  // The attachment route on an existing system document, and replication's new_edits:false.
  const created = await call(server.couchUrl, `/${node.db}/system:web`, { method: 'PUT', auth, json: system });
  t.is(created.status, 201, created.text);
  const attPut = await call(server.couchUrl, `/${node.db}/system:web/x.html?rev=${created.body.rev}`, { method: 'PUT', auth, body: HTML, headers: { 'Content-Type': 'text/html' } });
  t.is(attPut.status, 403, attPut.text);
  t.regex(attPut.body.reason, reason);
  const replicated = await call(server.couchUrl, `/${node.db}/_bulk_docs`, { method: 'POST', auth, json: { new_edits: false, docs: [{ ...status, _rev: '1-abcdef', _attachments: att }] } });
  t.is(replicated.status, 201, replicated.text);
  t.is(replicated.body.length, 1);
  t.is(replicated.body[0].error, 'forbidden');
  t.regex(replicated.body[0].reason, reason);
  t.is((await call(server.couchUrl, `/${node.db}/status:web`, { auth })).status, 404);

  // What the agent needs: a tar template in the catalog with its rootfs.tar.
  const tarball = Buffer.alloc(1024, 7);
  const template = { _id: 'template:tarred', type: 'template', name: 'tarred', source: 'tar', sha256: 'a'.repeat(64), _attachments: { 'rootfs.tar': { content_type: 'application/x-tar', data: tarball.toString('base64') } } };
  const tp = await call(server.couchUrl, '/anybios/template:tarred', { method: 'PUT', auth: server.adminAuth, json: template });
  t.is(tp.status, 201, tp.text);
  const got = await fetch(`${server.couchUrl}/anybios/template:tarred/rootfs.tar`, { headers: { Authorization: server.adminAuth } });
  t.is(got.status, 200);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), tarball);
});

test('a content_type that is not a media type (CR/LF, control characters) is refused on every write path', async (t) => {
  const db = await freshDb('att-ctype');
  const A = server.adminAuth;
  const bad = { 'a.txt': { content_type: BAD_TYPE, data: b64('hello') } };
  const why = /^_attachments\.a\.txt\.content_type must be a media type like text\/plain/;

  const put = await call(server.couchUrl, `/${db}/d1`, { method: 'PUT', auth: A, json: { _attachments: bad } });
  t.is(put.status, 400, put.text);
  t.is(put.body.error, 'doc_validation');
  t.regex(put.body.reason, why);
  const post = await call(server.couchUrl, `/${db}`, { method: 'POST', auth: A, json: { _id: 'd2', _attachments: bad } });
  t.is(post.status, 400, post.text);
  t.regex(post.body.reason, why);
  const bulk = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: A, json: { docs: [{ _id: 'd3', _attachments: bad }, { _id: 'ok', v: 1 }] } });
  t.is(bulk.status, 201, bulk.text);
  t.is(bulk.body[0].error, 'doc_validation');
  t.regex(bulk.body[0].reason, why);
  t.true(bulk.body[1].ok);
  const repl = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: A, json: { new_edits: false, docs: [{ _id: 'd4', _rev: '1-abc', _attachments: bad }] } });
  t.is(repl.status, 201, repl.text);
  t.is(repl.body[0]?.error, 'doc_validation');
  t.regex(repl.body[0]?.reason, why);
  const stub = await call(server.couchUrl, `/${db}/d5`, { method: 'PUT', auth: A, json: { _attachments: { 'a.txt': { content_type: 'text/plain\u0000', stub: true } } } });
  t.is(stub.status, 400, stub.text);
  // The attachment route takes content_type from the Content-Type header.
  const att = await call(server.couchUrl, `/${db}/d6/a.txt`, { method: 'PUT', auth: A, body: 'x', headers: { 'Content-Type': 'not a media type' } });
  t.is(att.status, 400, att.text);
  t.regex(att.body.reason, why);
  const fine = await call(server.couchUrl, `/${db}/d7/a.txt`, { method: 'PUT', auth: A, body: 'x', headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
  t.is(fine.status, 201, fine.text);
  for (const id of ['d1', 'd2', 'd3', 'd4', 'd5', 'd6']) t.is((await call(server.couchUrl, `/${db}/${id}`, { auth: A })).status, 404, id);
});

test('an attachment name with control characters or a leading _ is refused on write, naming it', async (t) => {
  const db = await freshDb('att-name');
  // Control characters: our rule (the name becomes a URL), refused as doc_validation, per document.
  const r = await call(server.couchUrl, `/${db}/doc`, { method: 'PUT', auth: server.adminAuth, json: { _attachments: { 'a\nb': { content_type: 'text/plain', data: b64('x') } } } });
  t.is(r.status, 400, r.text);
  t.is(r.body.error, 'doc_validation');
  t.regex(r.body.reason, /^_attachments\.a\\nb: the attachment name must be 1-1024 characters without control characters$/);
  const repl = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { new_edits: false, docs: [{ _id: 'doc', _rev: '1-abc', _attachments: { 'a\nb': { content_type: 'text/plain', data: b64('x') } } }] } });
  t.regex(repl.body[0]?.reason ?? '', /the attachment name must be 1-1024 characters/);
  // A leading _: CouchDB's rule (chttpd_db validate_attachment_name), 400 bad_request for the whole request.
  const why = "Attachment name '_x' starts with prohibited character '_'";
  const u = await call(server.couchUrl, `/${db}/doc`, { method: 'PUT', auth: server.adminAuth, json: { _attachments: { _x: { content_type: 'text/plain', data: b64('x') } } } });
  t.is(u.status, 400, u.text);
  t.is(u.body.error, 'bad_request');
  t.is(u.body.reason, why);
  const urepl = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { new_edits: false, docs: [{ _id: 'doc', _rev: '1-abc', _attachments: { _x: { content_type: 'text/plain', data: b64('x') } } }] } });
  t.is(urepl.status, 400, urepl.text);
  t.is(urepl.body.reason, why);
  const put = await call(server.couchUrl, `/${db}/doc2/${encodeURIComponent('a\u0001b')}`, { method: 'PUT', auth: server.adminAuth, body: 'x', headers: { 'Content-Type': 'text/plain' } });
  t.is(put.status, 400, put.text);
});

test('a bad content_type already on disk is served sanitised, and a PouchDB replication of it completes', async (t) => {
  const s = await startServer({ embedded: true });
  servers.push(s);
  const db = await freshDb('att-old', s);
  await s.admin.use(db).insert({ _id: 'before', v: 1 } as never);
  await s.stop();
  // As an earlier version let it be written: straight into the database's LevelDB.
  const Pouch = (PouchDB as unknown as { defaults(o: object): PouchDB.Static }).defaults({ prefix: join(s.dataDir, 'couch') + '/' });
  const raw = new Pouch(db);
  await raw.put({ _id: 'old', v: 2, _attachments: { 'a.html': { content_type: BAD_TYPE, data: b64(HTML) }, 'bad\u0001name': { content_type: 'text/plain', data: b64('one') } } } as never);
  await raw.put({ _id: 'zafter', v: 3 } as never);
  await raw.close();
  const s2 = await s.restart();
  servers.push(s2);

  const r = await call(s2.couchUrl, `/${db}/old/a.html`, { auth: s2.adminAuth });
  t.is(r.status, 200, r.text);
  t.is(r.headers.get('content-type'), 'application/octet-stream');
  t.is(r.headers.get('content-security-policy'), 'sandbox');
  t.is(r.headers.get('x-injected'), null);
  t.is(r.text, HTML);
  const doc = await call(s2.couchUrl, `/${db}/old`, { auth: s2.adminAuth });
  t.is(doc.body._attachments['a.html'].content_type, 'application/octet-stream');
  for (const [name, text] of [['bad\u0001name', 'one']]) {
    const a = await call(s2.couchUrl, `/${db}/old/${encodeURIComponent(name)}`, { auth: s2.adminAuth });
    t.is(a.status, 200, `${JSON.stringify(name)}: ${a.text}`);
    t.is(a.text, text);
  }
  t.true(s2.alive());

  // A pull like an agent's: every document, the attachment included, and the replication ends well.
  const dir = mkdtempSync(join(tmpdir(), 'anybios-pull-'));
  pouchDirs.push(dir);
  const local = new ((PouchDB as unknown as { defaults(o: object): PouchDB.Static }).defaults({ prefix: dir + '/' }))('local');
  const remote = new PouchDB(`${s2.couchUrl}/${db}`, { auth: { username: 'admin', password: s2.adminPassword } });
  try {
    const result = await local.replicate.from(remote);
    t.is(result.status, 'complete');
    t.is(result.docs_written, 3);
    t.deepEqual(result.errors, []);
    const att = (await local.getAttachment('old', 'a.html')) as Buffer;
    t.is(att.toString(), HTML);
    t.is(((await local.getAttachment('old', 'bad\u0001name')) as Buffer).toString(), 'one');
  } finally {
    await local.close();
    await remote.close();
  }
});
