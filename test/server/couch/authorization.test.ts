// The authorization matrix over real HTTP: anonymous, operator, node A in its own database, node A in
// node B's database, node A on the catalog, and design documents — same answers on the embedded server
// and (COUCH_URL set) on Apache CouchDB behind our forwarding.
import test from 'ava';
import { addNode, nodeSecurity, removeNode } from '../../../server/nodes.ts';
import { basic, call, external, ownUserDocReadable, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const a = uniq('a');
const b = uniq('b');
const operator = uniq('olga');
const auth: Record<string, string | undefined> = {};

test.before(async () => {
  server = await startServer();
  const ca = await addNode(server.admin, a);
  const cb = await addNode(server.admin, b);
  auth.nodeA = basic(ca.user, ca.password);
  auth.nodeB = basic(cb.user, cb.password);
  await server.admin.use('_users').insert({ _id: `org.couchdb.user:${operator}`, type: 'user', name: operator, roles: ['operator'], password: 'operator-password' } as never);
  auth.operator = basic(operator, 'operator-password');
  auth.admin = server.adminAuth;
  auth.anonymous = undefined;
});

test.after.always(async () => {
  if (!server) return;
  await removeNode(server.admin, a).catch(() => {});
  await removeNode(server.admin, b).catch(() => {});
  const users = server.admin.use('_users');
  await users.get(`org.couchdb.user:${operator}`).then((d) => users.destroy(d._id, d._rev)).catch(() => {});
  await server.stop();
  removeDataDir(server.dataDir);
});

const spec = (name: string) => ({ type: 'system', name, kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] });
const statusDoc = (name: string) => ({ type: 'status', name, phase: 'running', updated: new Date().toISOString() });
const templateDoc = (name: string) => ({ type: 'template', name, source: 'host' });

type Who = 'anonymous' | 'operator' | 'nodeA' | 'nodeB' | 'admin';
/** `couch`: Apache CouchDB 3.5's answer where it differs from the embedded server's `expect` (why: at the case). */
interface Case { who: Who; method: string; path: () => string; body?: () => object; expect: number; couch?: number }

const dbA = () => `anybios-node-${a}`;
let n = 0;
// Unique per run: with COUCH_URL the catalog is shared with every other test (and earlier runs).
const run = uniq('r');
const fresh = (p: string) => `${p}${++n}-${run}`;
/** The name `fresh` made last (bodies are built right after their path). */
const cur = (p: string) => `${p}${n}-${run}`;

const cases: Case[] = [
  // anonymous: nothing under /db/ without credentials
  // CouchDB's welcome is public (require_valid_user = false, its default); the embedded server asks for credentials.
  { who: 'anonymous', method: 'GET', path: () => '/', expect: 401, couch: 200 },
  { who: 'anonymous', method: 'GET', path: () => '/anybios', expect: 401 },
  { who: 'anonymous', method: 'GET', path: () => '/anybios/_all_docs', expect: 401 },
  { who: 'anonymous', method: 'GET', path: () => `/${dbA()}`, expect: 401 },
  { who: 'anonymous', method: 'GET', path: () => `/${dbA()}/_changes`, expect: 401 },
  { who: 'anonymous', method: 'PUT', path: () => `/${dbA()}/system:${fresh('x')}`, body: () => spec(cur('x')), expect: 401 },
  { who: 'anonymous', method: 'GET', path: () => '/_all_dbs', expect: 401 },
  { who: 'anonymous', method: 'PUT', path: () => `/${uniq('newdb')}`, expect: 401 },
  // operator: reads and writes specs and templates; never status
  { who: 'operator', method: 'GET', path: () => '/anybios/_all_docs', expect: 200 },
  { who: 'operator', method: 'PUT', path: () => `/anybios/template:${fresh('t')}`, body: () => templateDoc(cur('t')), expect: 201 },
  { who: 'operator', method: 'GET', path: () => `/${dbA()}/_all_docs`, expect: 200 },
  { who: 'operator', method: 'PUT', path: () => `/${dbA()}/system:${fresh('op')}`, body: () => spec(cur('op')), expect: 201 },
  { who: 'operator', method: 'PUT', path: () => `/${dbA()}/status:${fresh('op')}`, body: () => statusDoc(cur('op')), expect: 403 },
  // A member writing a design document: 403 forbidden "You are not a db or server admin." (as CouchDB 3.5).
  { who: 'operator', method: 'PUT', path: () => `/${dbA()}/_design/${fresh('d')}`, body: () => ({ views: {} }), expect: 403 },
  { who: 'operator', method: 'GET', path: () => '/_all_dbs', expect: 401 },
  // node A in its own database
  { who: 'nodeA', method: 'GET', path: () => `/${dbA()}`, expect: 200 },
  { who: 'nodeA', method: 'GET', path: () => `/${dbA()}/_changes`, expect: 200 },
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/system:${fresh('own')}`, body: () => spec(cur('own')), expect: 201 },
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/status:${fresh('own')}`, body: () => statusDoc(cur('own')), expect: 201 },
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/node:${a}`, body: () => ({ type: 'node', name: a }), expect: 201 },
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/node:${b}`, body: () => ({ type: 'node', name: b }), expect: 403 },
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/system:${fresh('bad')}`, body: () => ({ ...spec(cur('bad')), kind: 'vm' }), expect: 403 },
  // a stolen node credential never asks for root of the host; an operator may
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/system:${fresh('priv')}`, body: () => ({ ...spec(cur('priv')), privileged: true }), expect: 403 },
  { who: 'nodeA', method: 'POST', path: () => `/${dbA()}/_bulk_docs`, body: () => ({ new_edits: false, docs: [{ _id: `system:${fresh('privr')}`, _rev: '1-abc', ...spec(cur('privr')), privileged: true }] }), expect: 201 },
  { who: 'operator', method: 'PUT', path: () => `/${dbA()}/system:${fresh('privop')}`, body: () => ({ ...spec(cur('privop')), privileged: true }), expect: 201 },
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/_design/${fresh('d')}`, body: () => ({ views: {} }), expect: 403 },
  // CouchDB 3.5 refuses a member's _security write on every shard and answers 500 {"error":"error","reason":"no_majority"};
  // nothing changes either way (checked by the test after the matrix).
  { who: 'nodeA', method: 'PUT', path: () => `/${dbA()}/_security`, body: () => ({ members: { names: [], roles: [] } }), expect: 401, couch: 500 },
  { who: 'nodeA', method: 'DELETE', path: () => `/${dbA()}`, expect: 401 },
  { who: 'nodeA', method: 'GET', path: () => '/_all_dbs', expect: 401 },
  // CouchDB: 401 unauthorized "You are not a server admin." (listing _users is for server admins only).
  { who: 'nodeA', method: 'GET', path: () => '/_users/_all_docs', expect: 403, couch: 401 },
  // node A in node B's database: 403 for everything
  { who: 'nodeA', method: 'GET', path: () => `/anybios-node-${b}`, expect: 403 },
  { who: 'nodeA', method: 'GET', path: () => `/anybios-node-${b}/_all_docs`, expect: 403 },
  { who: 'nodeA', method: 'GET', path: () => `/anybios-node-${b}/_changes`, expect: 403 },
  { who: 'nodeA', method: 'PUT', path: () => `/anybios-node-${b}/system:${fresh('x')}`, body: () => spec(cur('x')), expect: 403 },
  { who: 'nodeA', method: 'POST', path: () => `/anybios-node-${b}/_bulk_docs`, body: () => ({ docs: [{ _id: `system:${fresh('x')}`, ...spec(cur('x')) }] }), expect: 403 },
  { who: 'nodeB', method: 'GET', path: () => `/${dbA()}/_all_docs`, expect: 403 },
  // node A on the catalog: reads, never writes
  { who: 'nodeA', method: 'GET', path: () => `/anybios/template:absent-${run}`, expect: 404 },
  { who: 'nodeA', method: 'GET', path: () => '/anybios/_all_docs', expect: 200 },
  { who: 'nodeA', method: 'PUT', path: () => `/anybios/template:${fresh('t')}`, body: () => templateDoc(cur('t')), expect: 403 },
  // admin: design docs and everything else
  { who: 'admin', method: 'PUT', path: () => `/${dbA()}/_design/${fresh('d')}`, body: () => ({ views: {} }), expect: 201 },
  { who: 'admin', method: 'PUT', path: () => `/${dbA()}/status:${fresh('adm')}`, body: () => statusDoc(cur('adm')), expect: 201 },
  { who: 'admin', method: 'GET', path: () => '/_all_dbs', expect: 200 },
];

for (const c of cases) {
  const label = `${c.who} ${c.method} ${c.path.toString().replace(/^\(\) => /, '')} → ${c.expect}${c.couch ? ` (CouchDB ${c.couch})` : ''}`;
  test.serial(label, async (t) => {
    const path = c.path();
    const r = await call(server.couchUrl, path, { method: c.method, auth: auth[c.who], ...(c.body ? { json: { _id: decodeURIComponent(path.split('/').slice(2).join('/')), ...c.body() } } : {}) });
    t.is(r.status, external ? c.couch ?? c.expect : c.expect, `${c.method} ${path}: ${r.text}`);
    if (r.status >= 400) t.truthy(r.body.error, 'errors carry {error, reason}');
  });
}

test.serial('the refused _security write changed nothing', async (t) => {
  const sec = await call(server.couchUrl, `/${dbA()}/_security`, { auth: server.adminAuth });
  t.is(sec.status, 200, sec.text);
  t.deepEqual(sec.body, nodeSecurity(a));
});

test.serial('a node reads its own user document and no one else\'s', async (t) => {
  const own = await call(server.couchUrl, `/_users/org.couchdb.user:node-${a}`, { auth: auth.nodeA });
  if (await ownUserDocReadable(server, 'node')) {
    t.is(own.status, 200, own.text);
    t.falsy(own.body.password);
  } else t.is(own.status, 403, `CouchDB's admin-only _users: ${own.text}`);
  const other = await call(server.couchUrl, `/_users/org.couchdb.user:node-${b}`, { auth: auth.nodeA });
  t.true(other.status === 403 || other.status === 404, other.text);
});

test.serial('privileged from a node credential: refused over PUT and over replication (new_edits:false), with the field named', async (t) => {
  const r = await call(server.couchUrl, `/${dbA()}/system:privy`, { method: 'PUT', auth: auth.nodeA, json: { _id: 'system:privy', ...spec('privy'), privileged: true } });
  t.is(r.status, 403);
  t.regex(r.body.reason, /\/privileged: only admins and operators may make a system privileged/);
  // As a replicator pushes it: the per-document answer is forbidden and nothing is stored.
  const b = await call(server.couchUrl, `/${dbA()}/_bulk_docs`, { method: 'POST', auth: auth.nodeA, json: { new_edits: false, docs: [{ _id: 'system:privy2', _rev: '1-abc', ...spec('privy2'), privileged: true }] } });
  t.is(b.status, 201);
  t.like(b.body[0], { id: 'system:privy2', error: 'forbidden' });
  t.is((await call(server.couchUrl, `/${dbA()}/system:privy2`, { auth: server.adminAuth })).status, 404);
});

test.serial('a refused write names the field and the rule', async (t) => {
  const r = await call(server.couchUrl, `/${dbA()}/system:named`, { method: 'PUT', auth: auth.nodeA, json: { ...spec('named'), kind: 'vm', color: 'red' } });
  t.is(r.status, 403);
  t.regex(r.body.reason, /\/kind must be one of: os, app/);
  t.regex(r.body.reason, /\/color unknown field/);
});
