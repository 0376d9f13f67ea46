// The requests Apache Fauxton (served at /db/_utils/) makes, with the answer shapes it reads, recorded
// by driving Fauxton 1.2.6 in Chromium against the embedded server. Fauxton runs in the browser with a
// session cookie, so these go over HTTP with the cookie it would hold. Shapes CouchDB 3 shares are
// checked everywhere; what only the embedded server does (read-only config) only there.
import test from 'ava';
import { addNode, removeNode } from '../../../server/nodes.ts';
import { basic, call, external, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const node = uniq('fx');
const db = () => `anybios-node-${node}`;
const operator = uniq('fxop');
let cookie = '';
let operatorAuth = '';

test.before(async () => {
  server = await startServer();
  await addNode(server.admin, node);
  await server.admin.use(db()).insert({ _id: 'system:web', type: 'system', name: 'web', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] } as never);
  await server.admin.use('_users').insert({ _id: `org.couchdb.user:${operator}`, type: 'user', name: operator, roles: ['operator'], password: 'operator-password' } as never);
  operatorAuth = basic(operator, 'operator-password');
  // Fauxton logs in with a form post and from then on sends only the AuthSession cookie.
  const user = external ? decodeURIComponent(new URL(process.env.COUCH_URL!).username) : 'admin';
  const r = await call(server.couchUrl, '/_session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ name: user, password: server.adminPassword }).toString(),
  });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  cookie = (r.headers.get('set-cookie') ?? '').split(';')[0];
});

test.after.always(async () => {
  if (!server) return;
  await removeNode(server.admin, node).catch(() => {});
  const users = server.admin.use('_users');
  await users.get(`org.couchdb.user:${operator}`).then((d) => users.destroy(d._id, d._rev)).catch(() => {});
  await server.stop();
  removeDataDir(server.dataDir);
});

/** A request as Fauxton sends it: with the admin's session cookie. */
const fx = (path: string, init: RequestInit & { json?: unknown } = {}) => call(server.couchUrl, path, { ...init, headers: { Cookie: cookie, ...(init.headers as Record<string, string>) } });

test('GET /_session: anonymous is userCtx.name null (Fauxton shows its login form), the cookie user is the admin', async (t) => {
  const anon = await call(server.couchUrl, '/_session');
  t.is(anon.status, 200);
  t.true(anon.body.ok);
  t.deepEqual(anon.body.userCtx, { name: null, roles: [] });
  t.true(Array.isArray(anon.body.info.authentication_handlers));
  const me = await fx('/_session');
  t.is(me.status, 200);
  t.truthy(me.body.userCtx.name);
  t.true(me.body.userCtx.roles.includes('_admin'));
  t.is(me.body.info.authenticated, 'cookie');
});

test('the database list: _all_dbs with Fauxton\'s name-prefix range, GET /{db} with sizes, POST /_dbs_info', async (t) => {
  const all = await fx('/_all_dbs');
  t.is(all.status, 200);
  t.true(all.body.includes(db()));
  // The "Database name" box: startkey=<prefix>, endkey=<prefix>香, limit=30.
  const prefix = db().slice(0, -2);
  const q = `/_all_dbs?startkey=${encodeURIComponent(JSON.stringify(prefix))}&endkey=${encodeURIComponent(JSON.stringify(prefix + '香'))}&limit=30`;
  const some = await fx(q);
  t.is(some.status, 200);
  t.true(some.body.includes(db()));
  t.true(some.body.every((n: string) => n.startsWith(prefix)), JSON.stringify(some.body));
  const desc = await fx(`/_all_dbs?descending=true&startkey=${encodeURIComponent(JSON.stringify(prefix + '香'))}&endkey=${encodeURIComponent(JSON.stringify(prefix))}`);
  t.deepEqual(desc.body, [...some.body].reverse());
  t.is((await fx(`/_all_dbs?startkey=${encodeURIComponent('{')}`)).status, 400, 'a startkey that is not JSON');
  // A JSON number: Apache CouchDB 3.5 takes it (numbers sort before every name: the whole list); the
  // embedded server refuses a key that cannot be a database name (400).
  const numeric = await fx('/_all_dbs?startkey=1');
  if (external) t.true(numeric.status === 200 && numeric.body.includes(db()), numeric.text.slice(0, 200));
  else t.is(numeric.status, 400);

  const info = await fx(`/${db()}`);
  t.is(info.status, 200);
  t.is(info.body.db_name, db());
  t.is(typeof info.body.doc_count, 'number');
  t.is(typeof info.body.doc_del_count, 'number');
  for (const k of ['active', 'external', 'file']) t.is(typeof info.body.sizes[k], 'number', k);
  if (!external) t.true(info.body.sizes.active > 0, 'Fauxton shows sizes.active in its "Size" column');

  const infos = await fx('/_dbs_info', { method: 'POST', json: { keys: [db(), 'no-such-db'] } });
  t.is(infos.status, 200);
  t.is(infos.body[0].key, db());
  t.is(infos.body[0].info.db_name, db());
  t.is(infos.body[1].error, 'not_found');
});

test('the document list: _all_docs pages with skip/limit, design docs by key range, the id box', async (t) => {
  const page = await fx(`/${db()}/_all_docs?skip=0&limit=21`);
  t.is(page.status, 200);
  t.is(typeof page.body.total_rows, 'number');
  t.is(page.body.offset, 0);
  t.true(page.body.rows.some((r: { id: string }) => r.id === 'system:web'));
  const next = await fx(`/${db()}/_all_docs?skip=1&limit=1`);
  t.is(next.body.rows.length, 1);
  t.is(next.body.rows[0].id, page.body.rows[1].id);
  const ddocs = await fx(`/${db()}/_all_docs?startkey=${encodeURIComponent('"_design/"')}&endkey=${encodeURIComponent('"_design0"')}&include_docs=true&limit=501`);
  t.is(ddocs.status, 200);
  t.true(ddocs.body.rows.length >= 1);
  t.true(ddocs.body.rows.every((r: { id: string; doc: unknown }) => r.id.startsWith('_design/') && typeof r.doc === 'object'));
  const ids = await fx(`/${db()}/_all_docs?startkey=${encodeURIComponent('"system:"')}&endkey=${encodeURIComponent('"system:香"')}&limit=30`);
  t.deepEqual(ids.body.rows.map((r: { id: string }) => r.id), ['system:web']);
  const uuids = await fx('/_uuids?count=1');
  t.is(uuids.status, 200);
  t.is(uuids.body.uuids.length, 1);
});

test('the document editor: GET and PUT with ?conflicts=true; a refused save names the field in `reason`', async (t) => {
  const doc = await fx(`/${db()}/system%3Aweb?conflicts=true`);
  t.is(doc.status, 200);
  const saved = await fx(`/${db()}/system%3Aweb?conflicts=true`, { method: 'PUT', json: { ...doc.body, labels: { team: 'fauxton' } } });
  t.is(saved.status, 201, saved.text);
  t.true(saved.body.ok);
  const bad = await fx(`/${db()}/system%3Aweb?conflicts=true`, { method: 'PUT', json: { ...doc.body, _rev: saved.body.rev, kind: 'vm' } });
  t.is(bad.status, 403);
  t.is(bad.body.error, 'forbidden');
  t.regex(bad.body.reason, /\/kind must be one of: os, app/); // Fauxton shows "Save failed: <reason>"
});

test('the design document "Metadata" page: GET /{db}/_design/{ddoc}/_info', async (t) => {
  const r = await fx(`/${db()}/_design/anybios/_info`);
  t.is(r.status, 200, r.text);
  t.is(r.body.name, 'anybios');
  const v = r.body.view_index;
  t.is(typeof v.signature, 'string');
  t.is(v.language, 'javascript');
  for (const k of ['active', 'external', 'file']) t.is(typeof v.sizes[k], 'number', k);
  for (const k of ['updater_running', 'compact_running', 'waiting_commit']) t.is(typeof v[k], 'boolean', k);
  for (const k of ['waiting_clients', 'update_seq', 'purge_seq']) t.not(v[k], undefined, k);
  t.is((await fx(`/${db()}/_design/no-such-ddoc/_info`)).status, 404);
  t.is((await call(server.couchUrl, `/${db()}/_design/anybios/_info`)).status, 401);
});

test('the admin pages: _membership, _node/{node}/_config (Config, CORS), _cluster_setup (Setup), _active_tasks', async (t) => {
  const m = await fx('/_membership');
  t.is(m.status, 200);
  t.true(Array.isArray(m.body.all_nodes) && m.body.all_nodes.length >= 1);
  t.true(Array.isArray(m.body.cluster_nodes));
  const nodeName = m.body.all_nodes[0];
  for (const n of [nodeName, '_local']) {
    const cfg = await fx(`/_node/${encodeURIComponent(n)}/_config`);
    t.is(cfg.status, 200, n);
    for (const [section, values] of Object.entries(cfg.body)) {
      t.is(typeof values, 'object', section);
      for (const v of Object.values(values as object)) t.is(typeof v, 'string', section);
    }
  }
  // The CORS page reads the `cors` section and `httpd.enable_cors`.
  const cors = await fx(`/_node/${encodeURIComponent(nodeName)}/_config/cors`);
  t.is(cors.status, 200);
  t.is(typeof cors.body, 'object');
  const httpd = await fx(`/_node/${encodeURIComponent(nodeName)}/_config/httpd`);
  t.is(httpd.status, 200);
  const setup = await fx('/_cluster_setup');
  t.is(setup.status, 200);
  t.true(['single_node_enabled', 'cluster_finished'].includes(setup.body.state), setup.text);
  const tasks = await fx('/_active_tasks');
  t.is(tasks.status, 200);
  t.true(Array.isArray(tasks.body));
  if (external) return;
  t.is(httpd.body.enable_cors, 'false');
  t.is((await fx('/_node/_local/_config/httpd/enable_cors')).body, 'false');
  const unknown = await fx('/_node/_local/_config/httpd/no_such_key');
  t.is(unknown.status, 404);
  t.is(unknown.body.reason, 'unknown_config_value');
  t.deepEqual((await fx('/_node/_local/_config/no_such_section')).body, {});
  t.is((await fx('/_node/other@host/_config')).status, 404);
  // Fauxton's config editor and "create server admin" write here; the embedded config is fixed.
  for (const [method, path] of [['PUT', '/_node/_local/_config/admins/mallory'], ['PUT', '/_node/_local/_config/httpd/enable_cors'], ['DELETE', `/_node/${nodeName}/_config/couchdb/single_node`]]) {
    const w = await fx(path, { method, json: method === 'PUT' ? 'true' : undefined });
    t.is(w.status, 403, `${method} ${path}`);
    t.is(w.body.error, 'forbidden');
  }
  t.is((await fx('/_node/_local/_config/admins')).status, 200);
  t.deepEqual((await fx('/_node/_local/_config/admins')).body, {}, 'no admin appears (or is created) in the config');
  t.is((await fx('/_cluster_setup', { method: 'POST', json: { action: 'enable_single_node' } })).status, 403);
});

test('the admin pages are for server admins only', async (t) => {
  const paths = ['/_membership', '/_node/_local/_config', '/_node/_local/_config/httpd/enable_cors', '/_cluster_setup', '/_active_tasks'];
  for (const path of paths) {
    const anon = await call(server.couchUrl, path);
    t.is(anon.status, 401, `anonymous ${path}`);
    const op = await call(server.couchUrl, path, { auth: operatorAuth });
    t.true(op.status === 401 || op.status === 403, `operator ${path}: ${op.status}`);
    t.falsy(op.body.all_nodes ?? op.body.httpd ?? op.body.state, `operator ${path} got data`);
  }
});

test('Mango as Fauxton drives it: its _find probe, the index list, create, run with stats, explain, bulk delete', async (t) => {
  // Fauxton asks once whether execution_stats is supported, with this exact body.
  const probe = await fx(`/${db()}/_find`, { method: 'POST', json: { selector: { _id: { $gt: 'a' } }, execution_stats: true, limit: 1 } });
  t.is(probe.status, 200, probe.text);
  t.is(typeof probe.body.execution_stats.execution_time_ms, 'number');
  const list = await fx(`/${db()}/_index?skip=0&limit=21`);
  t.is(list.status, 200);
  t.is(list.body.indexes[0].name, '_all_docs');
  const made = await fx(`/${db()}/_index`, { method: 'POST', json: { index: { fields: ['kind'] }, name: 'kind-json-index', type: 'json' } });
  t.is(made.status, 200, made.text);
  t.is(made.body.result, 'created');
  const run = await fx(`/${db()}/_find`, { method: 'POST', json: { selector: { kind: { $eq: 'app' } }, execution_stats: true, limit: 21, skip: 0 } });
  t.is(run.status, 200, run.text);
  t.deepEqual(run.body.docs.map((d: { _id: string }) => d._id), ['system:web']);
  t.is(run.body.warning, undefined, 'the new index serves it');
  const explained = await fx(`/${db()}/_explain`, { method: 'POST', json: { selector: { kind: { $eq: 'app' } } } });
  t.is(explained.status, 200);
  t.is(explained.body.index.name, 'kind-json-index');
  const del = await fx(`/${db()}/_index/_bulk_delete`, { method: 'POST', json: { docids: [made.body.id] } });
  t.is(del.status, 200, del.text);
  t.deepEqual(del.body, { success: [{ id: made.body.id, ok: true }], fail: [] });
  t.is((await call(server.couchUrl, `/${db()}/_find`, { method: 'POST', json: { selector: {} } })).status, 401);
  // Fauxton's replication page uses the scheduler API when this answers (docs/couchdb.md, "Replication").
  const jobs = await fx('/_scheduler/jobs');
  t.is(jobs.status, 200);
  t.true(Array.isArray(jobs.body.jobs));
});
