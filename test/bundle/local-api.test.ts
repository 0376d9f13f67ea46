// The agent's loopback /bundle routes on their own (real server for the bundles, real HTTP, local
// PouchDB): upload a server bundle, take the node's bundle home; token, size limit, cut uploads, and
// no spooled file left behind whatever happens.
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import PouchDB from 'pouchdb';
import { startLocalApi, type LocalApi } from '../../agent/local-api.ts';
import type { NodeSync } from '../../agent/sync/node-sync.ts';
import { addNode, removeNode } from '../../server/nodes.ts';
import { CouchHttp } from '../../server/sites/couch-http.ts';
import { exportNodeBundle, importNodeBundle } from '../../bundle/server.ts';
import { call, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'anybios-bundle-api-'));
const spool = join(dir, 'spool');
const node = uniq('bapi');
const PASSWORD = 'bundle-api-password';
const Local = (PouchDB as unknown as { defaults(x: object): PouchDB.Static }).defaults({ prefix: dir + '/' });
const db = new Local(`anybios-node-${node}`);
const catalog = new Local('anybios');
const sync = { state: 'offline', restarts: 0, switches: 0, lastError: null, remoteUrl: 'http://127.0.0.1:1/db/x' } as unknown as NodeSync;
let api: LocalApi;
let s: TestServer;
let couch: CouchHttp;

test.before(async () => {
  (await import('node:fs')).mkdirSync(spool);
  s = await startServer();
  couch = new CouchHttp(s.couchUrl, { username: 'admin', password: s.adminPassword });
  await addNode(s.admin, node, { password: PASSWORD });
  api = await startLocalApi({
    db, node, sync, infoPath: join(dir, 'local.json'),
    bundle: { ctx: { node, password: PASSWORD, db, catalog, statePath: join(dir, 'bundle.json') }, spoolDir: spool, maxBytes: 64 * 1024 },
  });
});
test.after.always(async () => {
  await api?.close();
  await db.close().catch(() => {});
  await catalog.close().catch(() => {});
  if (s) {
    await removeNode(s.admin, node).catch(() => {});
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(dir, { recursive: true, force: true });
});

async function serverBundle(): Promise<Buffer> {
  const file = join(dir, `server-${Date.now()}.bundle`);
  const out = createWriteStream(file);
  await exportNodeBundle(couch, node, out);
  await new Promise<void>((r) => out.end(() => r()));
  return readFileSync(file);
}

const upload = (body: Buffer, token = api.token) => fetch(api.url + '/bundle', { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' }, body }).then(async (r) => ({ status: r.status, body: await r.json() }));

test.serial('upload a server bundle: written; the node bundle comes back and the server takes it', async (t) => {
  await call(s.couchUrl, `/anybios-node-${node}/system:web`, { method: 'PUT', auth: s.adminAuth, json: { _id: 'system:web', type: 'system', name: 'web', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] } });
  const bundle = await serverBundle();
  t.is((await upload(bundle, 'wrong')).status, 401);
  const r = await upload(bundle);
  t.is(r.status, 200, JSON.stringify(r.body));
  // The system's template travels too when the catalog has it: a shared CouchDB's catalog may hold
  // `template:host` (seeded by another server); a fresh embedded one does not.
  const hostTemplate = (await call(s.couchUrl, '/anybios/template:host', { auth: s.adminAuth })).status === 200;
  t.like(r.body, { ok: true, node, written: hostTemplate ? 2 : 1 });
  t.is(((await db.get('system:web')) as { state: string }).state, 'running');
  t.like((await upload(bundle)).body, { written: 0, present: hostTemplate ? 2 : 1 });
  await db.put({ _id: 'status:web', type: 'status', name: 'web', phase: 'running', updated: new Date().toISOString() });
  const res = await fetch(api.url + '/bundle', { headers: { Authorization: `Bearer ${api.token}` } });
  t.is(res.status, 200);
  const file = join(dir, 'from-node.bundle');
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  t.like(await importNodeBundle(couch, file), { node, written: 1 });
  t.is((await call(s.couchUrl, `/anybios-node-${node}/status:web`, { auth: s.adminAuth })).body.phase, 'running');
  const bad = await fetch(api.url + '/bundle?since=cp1.nonsense', { headers: { Authorization: `Bearer ${api.token}` } });
  t.is(bad.status, 400);
  t.like(await bad.json(), { error: 'BUNDLE_CHECKPOINT_INVALID' });
  t.deepEqual(readdirSync(spool), []);
});

test.serial('refused uploads: too large (413), cut short, not a bundle; nothing written, nothing left in the spool', async (t) => {
  const before = (await db.allDocs()).rows.map((r) => r.value.rev);
  const big = await upload(Buffer.alloc(70 * 1024, 1));
  t.is(big.status, 413);
  t.like(big.body, { error: 'BUNDLE_TOO_LARGE' });
  const bundle = await serverBundle();
  const cut = await upload(bundle.subarray(0, bundle.length - 10));
  t.is(cut.status, 400);
  t.like(cut.body, { error: 'BUNDLE_TRUNCATED' });
  t.like((await upload(Buffer.from('{"hello":1}'))).body, { error: 'BUNDLE_NOT_A_BUNDLE' });
  // A chunked upload (no Content-Length) over the limit is cut off as it streams.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = http.request(api.url + '/bundle', { method: 'POST', headers: { Authorization: `Bearer ${api.token}` } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
    for (let i = 0; i < 10; i++) req.write(Buffer.alloc(16 * 1024, 2));
    req.end();
  }).catch(() => 0);
  t.true(chunked === 413 || chunked === 0, `chunked over the limit: ${chunked}`);
  t.deepEqual((await db.allDocs()).rows.map((r) => r.value.rev), before);
  await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(readdirSync(spool), []);
});
