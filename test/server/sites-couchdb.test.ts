// A site link whose local side is Apache CouchDB (COUCH_URL): the link becomes `_replicator` documents
// that CouchDB's own replicator runs (server/sites/replicator-engine.ts), here towards an embedded site
// B on loopback. Specs travel both ways, a node enrolled later arrives with its _security and user, the
// state comes from `_scheduler/docs`, and unlinking deletes the documents.
// A link replicates every node database of the CouchDB: on a CouchDB holding another fleet (a shared
// one, a bench's) that is a lot of replications, so the test declines to link there.
import test from 'ava';
import { addNode, nodeSecurity, removeNode } from '../../server/nodes.ts';
import { NODE_DB_PREFIX } from '../../ddocs/build.ts';
import { basic, call, external, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';
import { eventually } from '../helpers/wait.ts';

const app = (name: string) => ({ name, kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] });
const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 90_000) => eventually(what, fn, pred, { ms, interval: 500 });
const MAX_FOREIGN_NODE_DBS = 50;

test.serial('link from a COUCH_URL site to an embedded one: _replicator documents run by CouchDB, both ways, unlink', async (t) => {
  if (!external) return t.pass('COUCH_URL only (the embedded side is test/server/sites.test.ts)');
  t.timeout(600_000); // CouchDB's replicator starts jobs with up to 5 s of jitter each ([replicator] startup_jitter)
  const servers: TestServer[] = [];
  const made: string[] = [];
  let linkId = '';
  t.teardown(async () => {
    // The link's jobs first (they outlive our server in CouchDB), then the nodes, then the servers.
    if (linkId) {
      const users = servers[0].admin.use('_replicator');
      const rows = await users.list({ startkey: `anybios-site-${linkId}-`, endkey: `anybios-site-${linkId}-\ufff0` }).catch(() => ({ rows: [] as { id: string; value: { rev: string } }[] }));
      for (const r of rows.rows) await users.destroy(r.id, r.value.rev).catch(() => {});
    }
    for (const id of made) await removeNode(servers[0].admin, id).catch(() => {});
    for (const s of servers) await s.stop().catch(() => {});
    for (const s of servers) removeDataDir(s.dataDir);
  });
  const [A, B] = await Promise.all([startServer(), startServer({ embedded: true, env: { ANYBIOS_ADMIN_PASSWORD: 'site-b-admin-password' } })]);
  servers.push(A, B);
  const nodeDbs = ((await A.admin.db.list()) as string[]).filter((d) => d.startsWith(NODE_DB_PREFIX));
  if (nodeDbs.length > MAX_FOREIGN_NODE_DBS) return t.pass(`declined: this CouchDB holds ${nodeDbs.length} node databases of others; a link would replicate them all`);
  const api = (s: TestServer, path: string, init: Parameters<typeof call>[2] = {}) => call(s.url, `/api${path}`, { auth: s.adminAuth, ...init });
  const hasDoc = (s: TestServer, db: string, id: string) => call(s.couchUrl, `/${db}/${encodeURIComponent(id)}`, { auth: s === B ? basic('admin', 'site-b-admin-password') : s.adminAuth });

  const n1 = uniq('sc1');
  made.push(n1);
  await addNode(A.admin, n1);
  t.is((await api(A, `/nodes/${n1}/systems`, { method: 'POST', json: app('web-a') })).status, 201);

  const linked = await api(A, '/sites', { method: 'POST', json: { url: B.url, user: 'admin', password: 'site-b-admin-password' } });
  t.true(linked.status === 201 || linked.status === 200, linked.text);
  linkId = linked.body.id as string;
  t.is(linked.body.mode, 'replicator');

  // CouchDB's replicator pushes A's node database, its _security and its user to B.
  await until('web-a at B', () => hasDoc(B, `anybios-node-${n1}`, 'system:web-a'), (r) => r.status === 200);
  t.deepEqual((await call(B.couchUrl, `/anybios-node-${n1}/_security`, { auth: basic('admin', 'site-b-admin-password') })).body, nodeSecurity(n1));
  await until(`node-${n1} at B`, () => hasDoc(B, '_users', `org.couchdb.user:node-${n1}`), (r) => r.status === 200);

  // ... and pulls B's writes.
  const byB = await call(B.url, `/api/nodes/${n1}/systems`, { method: 'POST', auth: basic('admin', 'site-b-admin-password'), json: app('web-b') });
  t.is(byB.status, 201, byB.text);
  await until('web-b at A', () => hasDoc(A, `anybios-node-${n1}`, 'system:web-b'), (r) => r.status === 200);

  // A node enrolled at A after the link.
  const n2 = uniq('sc2');
  made.push(n2);
  const c2 = await addNode(A.admin, n2);
  await until(`${n2} reads its database at B`, () => call(B.couchUrl, `/anybios-node-${n2}`, { auth: basic(c2.user, c2.password) }), (r) => r.status === 200);

  // The documents (a new database is made at the other side first, its documents follow), their
  // states in _scheduler/docs, and the link's status.
  const linkDocs = async () => (await A.admin.use('_replicator').list({ startkey: `anybios-site-${linkId}-`, endkey: `anybios-site-${linkId}-\ufff0` })).rows.map((r) => r.id);
  const expected = ['anybios', '_users', `anybios-node-${n1}`, `anybios-node-${n2}`].flatMap((db) => ['push', 'pull'].map((dir) => `anybios-site-${linkId}-${dir}-${db}`));
  const docs = await until('the link\'s _replicator documents', linkDocs, (ids) => expected.every((id) => ids.includes(id)));
  t.true(expected.every((id) => docs.includes(id)), docs.join(' '));
  t.is((await api(A, `/nodes/${n2}/systems`, { method: 'POST', json: app('web-n2') })).status, 201);
  await until('web-n2 at B', () => hasDoc(B, `anybios-node-${n2}`, 'system:web-n2'), (r) => r.status === 200);
  const status = await until('link up and in sync', () => api(A, '/sites'), (r) => r.status === 200 && r.body[0]?.state === 'up' && r.body[0]?.pending === 0 && !!r.body[0]?.lastSync);
  t.is(status.body[0].lastError, null);

  // A node removed at A while linked stays removed (no job brings its database back).
  await removeNode(A.admin, n2);
  await new Promise((r) => setTimeout(r, 8000));
  t.is((await call(A.couchUrl, `/anybios-node-${n2}`, { auth: A.adminAuth })).status, 404, 'not brought back by the link');

  // Unlink: the documents go, and writes stay where they are made.
  t.is((await api(A, `/sites/${linkId}`, { method: 'DELETE' })).status, 200);
  const left = (await A.admin.use('_replicator').list({ startkey: `anybios-site-${linkId}-`, endkey: `anybios-site-${linkId}-\ufff0` })).rows;
  t.deepEqual(left, []);
  await api(A, `/nodes/${n1}/systems`, { method: 'POST', json: app('after-unlink') });
  await new Promise((r) => setTimeout(r, 3000));
  t.is((await hasDoc(B, `anybios-node-${n1}`, 'system:after-unlink')).status, 404);
});
