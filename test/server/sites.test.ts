// Site links between two real anybios servers on loopback (each with its own data dir and admin
// password): two-way replication of specs, node databases made later with their _security and users,
// status in the API, a restart of the linking server, unlink, and refusals at link time.
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createServer as netServer } from 'node:net';
import { addNode } from '../../server/nodes.ts';
import { nodeSecurity } from '../../server/nodes.ts';
import { couchClient } from '../../server/couch/client.ts';
import { CLI, basic, call, external, removeDataDir, startServer, type TestServer } from '../helpers/server.ts';
import { eventually } from '../helpers/wait.ts';

const run = promisify(execFile);
const PW = { a: 'site-a-admin-password', b: 'site-b-admin-password' };
const app = (name: string, extra: object = {}) => ({ name, kind: 'app', template: 'host', state: 'running', command: ['/bin/true'], ...extra });

/** Polls `fn` until `pred` holds; fails with the last value after `ms`. */
const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 20_000) => eventually(what, fn, pred, { ms });

interface Site { s: TestServer; auth: string; password: string }

/** Two servers with their own data dirs and passwords; stopped and removed by the test's teardown. */
async function twoSites(t: { teardown(fn: () => Promise<void> | void): void }): Promise<{ A: Site; B: Site; current: { A: Site } }> {
  const made: TestServer[] = [];
  const current = {} as { A: Site };
  t.teardown(async () => {
    for (const s of made) await s.stop().catch(() => {});
    for (const s of made) removeDataDir(s.dataDir);
  });
  const [sa, sb] = await Promise.all([
    startServer({ env: { ANYBIOS_ADMIN_PASSWORD: PW.a }, embedded: true }),
    startServer({ env: { ANYBIOS_ADMIN_PASSWORD: PW.b }, embedded: true }),
  ]);
  made.push(sa, sb);
  const A = { s: sa, auth: basic('admin', PW.a), password: PW.a };
  const B = { s: sb, auth: basic('admin', PW.b), password: PW.b };
  current.A = A;
  // restart() must also be cleaned up: wrap it.
  const restart = sa.restart.bind(sa);
  sa.restart = async () => {
    const again = await restart();
    made.push(again);
    return again;
  };
  return { A, B, current };
}

const couch = (site: Site, path: string, init: Parameters<typeof call>[2] = {}) => call(site.s.couchUrl, path, { auth: site.auth, ...init });
const api = (site: Site, path: string, init: Parameters<typeof call>[2] = {}) => call(site.s.url, `/api${path}`, { auth: site.auth, ...init });
const adminOf = (site: Site) => couchClient(site.s.couchUrl, 'admin', site.password);
const hasDoc = (site: Site, db: string, id: string) => couch(site, `/${db}/${encodeURIComponent(id)}`);

test.serial('link A→B: specs both ways, later node databases with _security and users, status, restart, unlink', async (t) => {
  if (external) return t.pass('two embedded servers only (COUCH_URL mode: both sites would share one CouchDB)');
  const { A, B } = await twoSites(t);
  const n1 = await addNode(adminOf(A), 'n1');
  const w1 = await api(A, '/nodes/n1/systems', { method: 'POST', json: app('web-a') });
  t.is(w1.status, 201, w1.text);

  // Link through the CLI, the password from the environment.
  const env = { ...process.env, ANYBIOS_URL: A.s.url, ANYBIOS_USER: 'admin', ANYBIOS_PASSWORD: A.password, ANYBIOS_REMOTE_PASSWORD: B.password, ANYBIOS_CONFIG: '/nonexistent' };
  const linked = await run(process.execPath, [CLI, 'site', 'link', B.s.url, '--remote-user', 'admin'], { env });
  t.regex(linked.stdout, /Linked with .*\/db \(site [0-9a-f]{8}\)/);
  t.is(statSync(join(A.s.dataDir, 'sites.json')).mode & 0o777, 0o600);

  // A's node database, its _security, its user and the system arrive at B.
  await until('web-a at B', () => hasDoc(B, 'anybios-node-n1', 'system:web-a'), (r) => r.status === 200);
  t.deepEqual((await couch(B, '/anybios-node-n1/_security')).body, nodeSecurity('n1'));
  await until('n1 can read its db at B', () => call(B.s.couchUrl, '/anybios-node-n1', { auth: basic(n1.user, n1.password) }), (r) => r.status === 200);

  // A write at B comes back to A.
  const w2 = await api(B, '/nodes/n1/systems', { method: 'POST', json: app('web-b') });
  t.is(w2.status, 201, w2.text);
  await until('web-b at A', () => hasDoc(A, 'anybios-node-n1', 'system:web-b'), (r) => r.status === 200);

  // A node enrolled at A after the link: database, _security and user at B; its credentials work there.
  const n2 = await addNode(adminOf(A), 'n2');
  await until('n2 can read its db at B', () => call(B.s.couchUrl, '/anybios-node-n2', { auth: basic(n2.user, n2.password) }), (r) => r.status === 200);
  t.deepEqual((await couch(B, '/anybios-node-n2/_security')).body, nodeSecurity('n2'));
  const user = (await couch(B, '/_users/org.couchdb.user:node-n2')).body;
  t.truthy(user.derived_key);
  t.is(user.password, undefined);
  t.is((await call(B.s.couchUrl, '/anybios-node-n1', { auth: basic(n2.user, n2.password) })).status, 403, "another node's database");
  // The node writes at B (as after a failover to B); the write reaches A.
  const own = await call(B.s.couchUrl, '/anybios-node-n2/system:by-node', { method: 'PUT', auth: basic(n2.user, n2.password), json: { _id: 'system:by-node', type: 'system', ...app('by-node') } });
  t.is(own.status, 201, own.text);
  await until('by-node at A', () => hasDoc(A, 'anybios-node-n2', 'system:by-node'), (r) => r.status === 200);

  // A node enrolled at B appears at A too.
  const n3 = await addNode(adminOf(B), 'n3');
  await until('n3 can read its db at A', () => call(A.s.couchUrl, '/anybios-node-n3', { auth: basic(n3.user, n3.password) }), (r) => r.status === 200);

  // Status: up, with a last-sync time; admin only.
  const status = await until('link up and in sync', () => api(A, '/sites'), (r) => r.status === 200 && r.body[0]?.state === 'up' && !!r.body[0]?.lastSync && r.body[0]?.pending === 0);
  const site = status.body[0];
  t.is(site.url, `${B.s.url}/db`);
  t.is(site.mode, 'embedded');
  t.is(site.lastError, null);
  t.deepEqual(site.databases.map((d: { db: string }) => d.db), ['_users', 'anybios', 'anybios-node-n1', 'anybios-node-n2', 'anybios-node-n3']);
  t.is(site.user, 'admin');
  t.is(site.password, undefined, 'the API never shows the remote password');
  t.is((await call(A.s.url, '/api/sites', { auth: basic(n1.user, n1.password) })).status, 403);
  // Both servers made the same catalog design document: replication meets it without a conflict.
  for (const side of [A, B]) t.is((await couch(side, '/anybios/_design/anybios?conflicts=true')).body._conflicts, undefined);
  const ls = await run(process.execPath, [CLI, 'site', 'ls'], { env });
  t.regex(ls.stdout, new RegExp(`${site.id}\\s+${B.s.url}/db\\s+up`));

  // Restart A (a new port): the link is read again and keeps replicating both ways.
  const A2: Site = { ...A, s: await A.s.restart() };
  await api(B, '/nodes/n1/systems', { method: 'POST', json: app('after-restart-b') });
  await api(A2, '/nodes/n1/systems', { method: 'POST', json: app('after-restart-a') });
  await until('after-restart-b at A', () => hasDoc(A2, 'anybios-node-n1', 'system:after-restart-b'), (r) => r.status === 200);
  await until('after-restart-a at B', () => hasDoc(B, 'anybios-node-n1', 'system:after-restart-a'), (r) => r.status === 200);
  const again = await until('link up after restart', () => api(A2, '/sites'), (r) => r.body[0]?.state === 'up');
  t.is(again.body[0].id, site.id);
  // Incremental across restarts: the checkpoint's replication id names the link's `_replicator` document
  // (link, direction, database), not the servers' URLs (A's port changed) or per-boot uuids, so the
  // pull side's checkpoint at A is the same document.
  const pullDoc = `_replicator/anybios-site-${site.id}-pull-anybios-node-n1`;
  const repId = createHash('md5').update(`anybios-rep:${pullDoc}:sourceanybios-rep:${pullDoc}:target`).digest('base64').replace(/\//g, '.').replace(/\+/g, '_');
  t.is((await couch(A2, `/anybios-node-n1/_local/${repId}`)).status, 200);

  // Unlink (by URL through the CLI): writes stay where they are made.
  const un = await run(process.execPath, [CLI, 'site', 'unlink', `${B.s.url}`], { env: { ...env, ANYBIOS_URL: A2.s.url } });
  t.regex(un.stdout, new RegExp(`Unlinked .* \\(site ${site.id}\\)`));
  t.deepEqual((await api(A2, '/sites')).body, []);
  await api(A2, '/nodes/n1/systems', { method: 'POST', json: app('after-unlink') });
  await new Promise((r) => setTimeout(r, 2500));
  t.is((await hasDoc(B, 'anybios-node-n1', 'system:after-unlink')).status, 404);
  t.is((await call(A2.s.url, `/api/sites/${site.id}`, { method: 'DELETE', auth: A2.auth })).status, 404);
});

test.serial('link time: bad credentials, a non-admin, an unreachable or non-CouchDB URL, self and duplicate links are refused', async (t) => {
  if (external) return t.pass('embedded only');
  const { A, B } = await twoSites(t);
  const post = (json: unknown) => api(A, '/sites', { method: 'POST', json });
  const wrong = await post({ url: B.s.url, user: 'admin', password: 'wrong-password' });
  t.is(wrong.status, 400, wrong.text);
  t.is(wrong.body.error, 'remote_unauthorized');
  t.regex(wrong.body.reason, /refused the credentials of admin/);
  const node = await addNode(adminOf(B), 'nb');
  const notAdmin = await post({ url: B.s.url, user: node.user, password: node.password });
  t.is(notAdmin.status, 400, notAdmin.text);
  t.is(notAdmin.body.error, 'remote_not_admin');
  // A port nobody listens on.
  const free = await new Promise<number>((resolve) => {
    const srv = netServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const gone = await post({ url: `http://127.0.0.1:${free}`, user: 'admin', password: 'x' });
  t.is(gone.status, 502, gone.text);
  t.is(gone.body.error, 'remote_unreachable');
  const notCouch = await post({ url: `${B.s.url}/api`, user: 'admin', password: B.password });
  t.is(notCouch.status, 502, notCouch.text);
  t.is((await post({ url: 'ftp://x', user: 'admin', password: 'x' })).status, 400);
  t.is((await post({ url: B.s.url })).status, 400);
  const self = await post({ url: A.s.url, user: 'admin', password: A.password });
  t.is(self.status, 400, self.text);
  t.is(self.body.error, 'self_link');
  t.is((await call(A.s.url, '/api/sites', { method: 'POST', auth: basic(node.user, node.password), json: { url: B.s.url, user: 'admin', password: B.password } })).status, 401, 'nb is no user at A');
  const ok = await post({ url: B.s.url, user: 'admin', password: B.password });
  t.is(ok.status, 201, ok.text);
  const dup = await post({ url: `${B.s.url}/db/`, user: 'admin', password: B.password });
  t.is(dup.status, 409, dup.text);
  t.is((await api(A, '/sites')).body.length, 1);
  // The CLI says what is missing.
  const env = { ...process.env, ANYBIOS_URL: A.s.url, ANYBIOS_PASSWORD: A.password, ANYBIOS_CONFIG: '/nonexistent', ANYBIOS_REMOTE_PASSWORD: '' };
  const err = await run(process.execPath, [CLI, 'site', 'link', B.s.url, '--remote-user', 'admin'], { env }).then(() => null, (e) => e);
  t.is(err?.code, 2);
  t.regex(err?.stderr ?? '', /ANYBIOS_REMOTE_PASSWORD/);
  const bad = await run(process.execPath, [CLI, 'site', 'link', B.s.url, '--remote-user', 'admin', '--remote-password', 'nope'], { env }).then(() => null, (e) => e);
  t.is(bad?.code, 1);
  t.regex(bad?.stderr ?? '', /REMOTE_UNAUTHORIZED/);
  await until('up', () => api(A, '/sites'), (r) => r.body[0]?.state === 'up');
  // The remote goes away: the link says so.
  await B.s.stop();
  const down = await until('down', () => api(A, '/sites'), (r) => r.body[0]?.state === 'down');
  t.regex(down.body[0].lastError, /remote: .*(ECONNREFUSED|reach)/);
});
