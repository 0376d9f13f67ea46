// Node database quotas over real HTTP, with a node's own credential (what a stolen one could do):
// documents and attachments over their size limits are refused with 413, and once the database is
// over its quota writes are refused with 507 quota_exceeded while reads, deletions and replication
// checkpoints (_local) still work.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { addNode } from '../../../server/nodes.ts';
import { nodeDbName } from '../../../ddocs/build.ts';
import { basic, call, removeDataDir, startServer, type TestServer } from '../../helpers/server.ts';
import { RawConn, requestHead } from '../../helpers/raw-http.ts';

let s: TestServer;
let nodeAuth: string;
const node = 'quota1';
const db = nodeDbName(node);
const KiB = 1024;

test.before(async () => {
  s = await startServer({ embedded: true, args: ['--limit', 'nodeDbQuota=1MiB', '--limit', 'nodeMaxAttachment=64KiB', '--limit', 'maxDocumentSize=200KiB'] });
  const cred = await addNode(s.admin, node);
  nodeAuth = basic(cred.user, cred.password);
});

test.after.always(async () => {
  if (!s) return;
  await s.stop();
  removeDataDir(s.dataDir);
});

const status = (name: string, extra: Record<string, unknown> = {}) => ({
  type: 'status', name, phase: 'running', updated: new Date().toISOString(), logTail: randomBytes(6000).toString('hex'), ...extra,
});

test.serial('a document over maxDocumentSize is 413 document_too_large (single, and the whole _bulk_docs request as CouchDB)', async (t) => {
  const big = { ...status('big'), logTail: 'x'.repeat(16000), message: 'y'.repeat(4000), pad: 'z'.repeat(250 * KiB) };
  const r = await call(s.couchUrl, `/${db}/status:big`, { method: 'PUT', auth: nodeAuth, json: big });
  t.is(r.status, 413, r.text.slice(0, 300));
  t.is(r.body.error, 'document_too_large');
  // As CouchDB (couch_doc:from_json_obj_validate): the whole _bulk_docs request, nothing written.
  const b = await call(s.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: nodeAuth, json: { docs: [{ _id: 'status:small', ...status('small') }, { _id: 'status:big', ...big }] } });
  t.is(b.status, 413, b.text.slice(0, 300));
  t.is(b.body.error, 'document_too_large');
  t.is((await call(s.couchUrl, `/${db}/status:small`, { auth: nodeAuth })).status, 404);
});

test.serial('an attachment over nodeMaxAttachment is refused: inline 413 attachment_too_large, upload 413 before it is read', async (t) => {
  const w = await call(s.couchUrl, `/${db}/status:att`, { method: 'PUT', auth: nodeAuth, json: status('att') });
  t.is(w.status, 201, w.text);
  const inline = await call(s.couchUrl, `/${db}/status:att2`, {
    method: 'PUT', auth: nodeAuth,
    json: { ...status('att2'), _attachments: { 'big.bin': { content_type: 'application/octet-stream', data: randomBytes(100 * KiB).toString('base64') } } },
  });
  t.is(inline.status, 413, inline.text.slice(0, 300));
  t.is(inline.body.error, 'attachment_too_large');
  // A 50 MB upload declared on a status document: answered before the body is sent.
  const c = new RawConn(Number(new URL(s.url).port));
  t.teardown(() => c.destroy());
  await c.connected();
  c.write(requestHead('PUT', `/db/${db}/status:att/big.bin?rev=${w.body.rev}`, { Authorization: nodeAuth, 'Content-Type': 'application/octet-stream', 'Content-Length': 50_000_000 }));
  c.write(Buffer.alloc(1024));
  const r = await c.response(10_000);
  t.is(r?.status, 413, r?.head ?? 'no answer: the server is reading the 50 MB');
  t.is(r!.json.error, 'too_large');
});

test.serial('over the database quota: writes 507 quota_exceeded; reads, deletions and _local still work', async (t) => {
  let refused: Awaited<ReturnType<typeof call>> | undefined;
  const written: { id: string; rev: string }[] = [];
  for (let i = 0; i < 300 && !refused; i++) {
    const r = await call(s.couchUrl, `/${db}/status:s${i}`, { method: 'PUT', auth: nodeAuth, json: status(`s${i}`) });
    if (r.status === 201) written.push({ id: r.body.id, rev: r.body.rev });
    else refused = r;
  }
  t.truthy(refused, 'no write was refused after 300 × 12 KB into a 1 MiB quota');
  t.is(refused!.status, 507, refused!.text);
  t.is(refused!.body.error, 'quota_exceeded');
  t.regex(refused!.body.reason, /quota/);
  t.true(written.length >= 10, `only ${written.length} writes before the quota`);
  // replication's bulk path is refused the same way
  const bulk = await call(s.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: nodeAuth, json: { docs: [{ _id: 'status:more', ...status('more') }] } });
  t.is(bulk.status, 507, bulk.text);
  // reads
  const one = await call(s.couchUrl, `/${db}/${written[0].id}`, { auth: nodeAuth });
  t.is(one.status, 200);
  const all = await call(s.couchUrl, `/${db}/_all_docs`, { auth: nodeAuth });
  t.is(all.status, 200);
  const changes = await call(s.couchUrl, `/${db}/_changes`, { auth: nodeAuth });
  t.is(changes.status, 200);
  // checkpoints and deletions
  const local = await call(s.couchUrl, `/${db}/_local/checkpoint`, { method: 'PUT', auth: nodeAuth, json: { last_seq: 1 } });
  t.is(local.status, 201, local.text);
  const del = await call(s.couchUrl, `/${db}/${written[0].id}?rev=${written[0].rev}`, { method: 'DELETE', auth: nodeAuth });
  t.is(del.status, 200, del.text);
  // other databases are not affected
  const cat = await call(s.couchUrl, '/anybios/template:q', { method: 'PUT', auth: s.adminAuth, json: { type: 'template', name: 'q', source: 'host' } });
  t.is(cat.status, 201, cat.text);
  // the REST API carries the refusal through
  const api = await call(s.url, `/api/nodes/${node}/systems`, { method: 'POST', auth: s.adminAuth, json: { name: 'late', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] } });
  t.is(api.status, 507, api.text);
  t.is(api.body.error, 'quota_exceeded');
});
