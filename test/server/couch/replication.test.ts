// Replication conformance: a local on-disk PouchDB and the server replicate 1,000 documents with
// attachments both ways, then conflicting edits on both sides end with identical revision trees and
// the same _conflicts on both. Also: replicated writes obey validate_doc_update.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode, removeNode } from '../../../server/nodes.ts';
import { call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
let localDir: string;
const dbName = uniq('repl');
const nodeId = uniq('rn');
let nodeAuth: { username: string; password: string };

test.before(async () => {
  server = await startServer();
  localDir = mkdtempSync(join(tmpdir(), 'anybios-pouch-'));
  await server.admin.db.create(dbName);
  await server.admin.request({ db: dbName, path: '_security', method: 'PUT', body: { admins: { names: [], roles: [] }, members: { names: [], roles: ['tester'] } } });
  const cred = await addNode(server.admin, nodeId);
  nodeAuth = { username: cred.user, password: cred.password };
});

test.after.always(async () => {
  if (server) {
    await server.admin.db.destroy(dbName).catch(() => {});
    await removeNode(server.admin, nodeId).catch(() => {});
    await server.stop();
    removeDataDir(server.dataDir);
  }
  if (localDir) rmSync(localDir, { recursive: true, force: true });
});

const remote = (db: string, auth = { username: server.adminAuth ? 'admin' : '', password: server.adminPassword }) =>
  new PouchDB(`${server.couchUrl}/${db}`, { auth: process.env.COUCH_URL ? { username: decodeURIComponent(new URL(process.env.COUCH_URL).username), password: server.adminPassword } : auth, skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);

function docs(prefix: string, count: number) {
  return Array.from({ length: count }, (_, i) => ({
    _id: `${prefix}-${String(i).padStart(4, '0')}`,
    n: i,
    text: `document ${i} from ${prefix}`,
    ...(i % 2 === 0 ? { _attachments: { 'blob.bin': { content_type: 'application/octet-stream', data: Buffer.from(`attachment ${prefix} ${i} `.repeat(20)).toString('base64') } } } : {}),
  }));
}

async function revTree(db: PouchDB.Database, id: string) {
  const leaves = (await db.get(id, { open_revs: 'all', revs: true })) as unknown as { ok: { _rev: string; _revisions: unknown; _deleted?: boolean } }[];
  return leaves.map((l) => ({ rev: l.ok._rev, revisions: l.ok._revisions, deleted: !!l.ok._deleted })).sort((x, y) => x.rev.localeCompare(y.rev));
}

test.serial('1,000 documents with attachments replicate both ways, then conflicts converge', async (t) => {
  const local = new PouchDB(join(localDir, 'a'));
  const local2 = new PouchDB(join(localDir, 'b'));
  const server1 = remote(dbName);

  // push: local -> server
  await local.bulkDocs(docs('local', 1000));
  const push = await local.replicate.to(server1);
  t.is(push.docs_written, 1000);
  t.is(push.doc_write_failures, 0);
  const info = await call(server.couchUrl, `/${dbName}`, { auth: server.adminAuth });
  t.is(info.body.doc_count, 1000);
  const att = await fetch(`${server.couchUrl}/${dbName}/local-0042/blob.bin`, { headers: { Authorization: server.adminAuth } });
  t.is(att.status, 200);
  t.is(Buffer.from(await att.arrayBuffer()).toString(), 'attachment local 42 '.repeat(20));

  // server-side writes, then pull everything into a second local database
  const more = docs('server', 1000);
  const bulk = await call(server.couchUrl, `/${dbName}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { docs: more } });
  t.is(bulk.status, 201);
  t.true(bulk.body.every((r: { ok?: boolean }) => r.ok));
  const pull = await local2.replicate.from(server1);
  t.is(pull.docs_written, 2000);
  const got = (await local2.get('server-0998', { attachments: true, binary: true } as PouchDB.Core.GetOptions)) as unknown as { _attachments: Record<string, { data: Buffer }> };
  t.is(got._attachments['blob.bin'].data.toString(), 'attachment server 998 '.repeat(20));

  // second push is incremental (checkpoints in _local docs): nothing to write
  const again = await local.replicate.to(server1);
  t.is(again.docs_written, 0);

  // conflicting edits on both sides of one document, then sync both ways
  const base = await local2.get<{ n: number }>('local-0007');
  await local2.put({ ...base, n: 1000, side: 'local' });
  const remoteDoc = (await call(server.couchUrl, `/${dbName}/local-0007`, { auth: server.adminAuth })).body;
  const put = await call(server.couchUrl, `/${dbName}/local-0007`, { method: 'PUT', auth: server.adminAuth, json: { ...remoteDoc, n: 2000, side: 'server' } });
  t.is(put.status, 201);
  await local2.replicate.to(server1);
  await local2.replicate.from(server1);

  const localWinner = await local2.get('local-0007', { conflicts: true });
  const serverWinner = (await call(server.couchUrl, `/${dbName}/local-0007?conflicts=true`, { auth: server.adminAuth })).body;
  t.is(localWinner._rev, serverWinner._rev);
  t.deepEqual(localWinner._conflicts, serverWinner._conflicts);
  t.is(localWinner._conflicts?.length, 1);
  t.deepEqual(await revTree(local2, 'local-0007'), await revTree(server1, 'local-0007'));
  // nothing lost: both edits exist as leaves
  const sides = (await local2.get('local-0007', { open_revs: 'all' }) as unknown as { ok: { side: string } }[]).map((l) => l.ok.side).sort();
  t.deepEqual(sides, ['local', 'server']);
  await Promise.all([local.close(), local2.close(), server1.close()]);
});

test.serial('replicated writes obey validate_doc_update: a bad document is refused, the rest lands', async (t) => {
  const local = new PouchDB(join(localDir, 'node'));
  const target = new PouchDB(`${server.couchUrl}/anybios-node-${nodeId}`, { auth: nodeAuth, skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);
  await local.bulkDocs([
    { _id: 'system:good', type: 'system', name: 'good', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] },
    { _id: 'status:good', type: 'status', name: 'good', phase: 'pending', updated: new Date().toISOString() },
    { _id: 'system:bad', type: 'system', name: 'bad', kind: 'vm', template: 'host', state: 'running' },
  ] as never[]);
  const r = await local.replicate.to(target);
  t.is(r.docs_written, 2);
  t.is(r.doc_write_failures, 1);
  const good = await call(server.couchUrl, `/anybios-node-${nodeId}/system:good`, { auth: server.adminAuth });
  t.is(good.status, 200);
  const bad = await call(server.couchUrl, `/anybios-node-${nodeId}/system:bad`, { auth: server.adminAuth });
  t.is(bad.status, 404);
  await Promise.all([local.close(), target.close()]);
});

test.serial('live two-way sync carries a change within a second', async (t) => {
  const local = new PouchDB(join(localDir, 'live'));
  const target = new PouchDB(`${server.couchUrl}/anybios-node-${nodeId}`, { auth: nodeAuth, skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);
  const sync = local.sync(target, { live: true, retry: true });
  t.teardown(() => sync.cancel());
  const arrived = new Promise<void>((resolve) => {
    sync.on('change', (info) => {
      if (info.direction === 'pull' && info.change.docs.some((d) => d._id === 'system:live')) resolve();
    });
  });
  await new Promise((r) => setTimeout(r, 300));
  const put = await call(server.couchUrl, `/anybios-node-${nodeId}/system:live`, { method: 'PUT', auth: server.adminAuth, json: { type: 'system', name: 'live', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] } });
  t.is(put.status, 201);
  const started = Date.now();
  await Promise.race([arrived, new Promise((_, rej) => setTimeout(() => rej(new Error('no change within 5 s')), 5000))]);
  t.true(Date.now() - started < 5000);
  t.is((await local.get('system:live'))._id, 'system:live');
  sync.cancel();
  await Promise.all([local.close(), target.close()]);
});
