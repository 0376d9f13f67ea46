// The REST API over real HTTP: CRUD, actions, every error status, and authorization that equals CouchDB's.
import test from 'ava';
import { startFleet, type Fleet } from '../../helpers/fleet.ts';
import { basic, call, external, uniq, type TestServer } from '../../helpers/server.ts';
import { eventually } from '../../helpers/wait.ts';

let s: TestServer;
const a = uniq('apia');
const b = uniq('apib');
const operator = uniq('op');
const auth: Record<string, string> = {};
const app = (name: string, extra: object = {}) => ({ name, kind: 'app', template: 'host', state: 'running', command: ['/bin/true'], ...extra });

let fleet: Fleet | undefined;
test.before(async () => {
  fleet = await startFleet({ a, b, operator });
  s = fleet.server;
  Object.assign(auth, fleet.auth);
});

test.after.always(async () => {
  await fleet?.stop();
});

const api = (path: string, init: Parameters<typeof call>[2] = {}) => call(s.url, `/api${path}`, { auth: auth.admin, ...init });

/** The index is eventually consistent: poll until `pred` holds (≤ 5 s). */
const until = <T>(fn: () => Promise<T>, pred: (v: T) => boolean) => eventually('the fleet index to catch up', fn, pred, { ms: 5000, interval: 50 });

test.serial('401 without or with wrong credentials; 404 for unknown routes', async (t) => {
  t.is((await api('/systems', { auth: undefined as unknown as string, headers: {} })).status, 401);
  const noAuth = await call(s.url, '/api/systems');
  t.is(noAuth.status, 401);
  t.is(noAuth.body.error, 'unauthorized');
  // Not the admin's name on Apache CouchDB: its lockout ([chttpd_auth_lockout]) counts wrong passwords per name and IP.
  t.is((await call(s.url, '/api/systems', { auth: basic(external ? uniq('not-the-admin') : 'admin', 'wrong') })).status, 401);
  t.is((await api('/nope')).status, 404);
});

test.serial('system CRUD with every error status', async (t) => {
  const created = await api(`/nodes/${a}/systems`, { method: 'POST', json: app('web') });
  t.is(created.status, 201, created.text);
  t.regex(created.body.rev, /^1-/);
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', json: app('web') })).status, 409);
  const bad = await api(`/nodes/${a}/systems`, { method: 'POST', json: app('bad', { kind: 'vm', colour: 1 }) });
  t.is(bad.status, 400);
  t.is(bad.body.error, 'invalid');
  t.deepEqual(bad.body.details.map((d: { path: string }) => d.path).sort(), ['/colour', '/kind']);
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', json: app('Bad_Name') })).status, 400);
  t.is((await api(`/nodes/${uniq('ghost')}/systems`, { method: 'POST', json: app('x') })).status, 404);
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', body: '{"name":', headers: { 'content-type': 'application/json' } })).status, 400);
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', body: '['.repeat(10000), headers: { 'content-type': 'application/json' } })).status, 400);

  const got = await api(`/nodes/${a}/systems/web`);
  t.is(got.status, 200);
  t.is(got.body.spec.state, 'running');
  t.is(got.body.status, null);
  t.is((await api(`/nodes/${a}/systems/missing`)).status, 404);

  const rev1 = got.body.spec._rev;
  const upd = await api(`/nodes/${a}/systems/web`, { method: 'PUT', json: { ...got.body.spec, command: ['/bin/echo', 'v2'] } });
  t.is(upd.status, 200, upd.text);
  const stale = await api(`/nodes/${a}/systems/web`, { method: 'PUT', json: { ...got.body.spec, _rev: rev1, command: ['/bin/echo', 'v3'] } });
  t.is(stale.status, 409);
  t.is(stale.body.error, 'conflict');
  const { _rev, ...noRev } = got.body.spec;
  const viaIfMatch = await api(`/nodes/${a}/systems/web`, { method: 'PUT', json: { ...noRev, command: ['/bin/echo', 'v3'] }, headers: { 'If-Match': `"${upd.body.rev}"` } });
  t.is(viaIfMatch.status, 200, viaIfMatch.text);
  t.is((await api(`/nodes/${a}/systems/web`, { method: 'PUT', json: { ...noRev } })).status, 409, 'update without a revision is a conflict');
  t.is((await api(`/nodes/${a}/systems/other`, { method: 'PUT', json: app('web') })).status, 400, 'name in body differs from URL');

  const del = await api(`/nodes/${a}/systems/web?rev=${rev1}`, { method: 'DELETE' });
  t.is(del.status, 409, 'stale delete');
  t.is((await api(`/nodes/${a}/systems/web`, { method: 'DELETE' })).status, 200);
  t.is((await api(`/nodes/${a}/systems/web`)).status, 404);
});

test.serial('start, stop, restart and move are document writes', async (t) => {
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', json: app('svc') })).status, 201);
  t.is((await api(`/nodes/${a}/systems/svc/stop`, { method: 'POST' })).status, 200);
  t.is((await api(`/nodes/${a}/systems/svc`)).body.spec.state, 'stopped');
  const again = await api(`/nodes/${a}/systems/svc/stop`, { method: 'POST' });
  t.true(again.body.unchanged);
  await api(`/nodes/${a}/systems/svc/start`, { method: 'POST' });
  const before = (await api(`/nodes/${a}/systems/svc`)).body.spec;
  t.is(before.state, 'running');
  await api(`/nodes/${a}/systems/svc/restart`, { method: 'POST' });
  const after = (await api(`/nodes/${a}/systems/svc`)).body.spec;
  t.truthy(after.restartedAt);
  t.not(after._rev, before._rev);
  t.is((await api(`/nodes/${a}/systems/svc/explode`, { method: 'POST' })).status, 404);

  t.is((await api(`/nodes/${a}/systems/svc/move`, { method: 'POST', json: {} })).status, 400);
  t.is((await api(`/nodes/${a}/systems/svc/move`, { method: 'POST', json: { to: a } })).status, 400);
  t.is((await api(`/nodes/${a}/systems/svc/move`, { method: 'POST', json: { to: uniq('ghost') } })).status, 404);
  const moved = await api(`/nodes/${a}/systems/svc/move`, { method: 'POST', json: { to: b } });
  t.is(moved.status, 200, moved.text);
  t.is((await api(`/nodes/${a}/systems/svc`)).status, 404);
  const there = await api(`/nodes/${b}/systems/svc`);
  t.is(there.body.spec.restartedAt, after.restartedAt);
  const rows = await until(() => api(`/systems?node=${b}`), (r) => r.body.some((x: { name: string }) => x.name === 'svc'));
  t.true(rows.body.some((x: { name: string }) => x.name === 'svc'));
});

test.serial('volumes and templates CRUD', async (t) => {
  t.is((await api(`/nodes/${a}/volumes`, { method: 'POST', json: { name: 'data' } })).status, 201);
  t.is((await api(`/nodes/${a}/volumes/data`)).body.name, 'data');
  t.is((await api(`/nodes/${a}/volumes`, { method: 'POST', json: { name: 'x', size: 1 } })).status, 400);
  const vols = await until(() => api(`/nodes/${a}/volumes`), (r) => r.body.length === 1);
  t.deepEqual(vols.body.map((v: { name: string }) => v.name), ['data']);
  t.is((await api(`/nodes/${a}/volumes/data`, { method: 'DELETE' })).status, 200);

  const tname = uniq('tpl');
  t.is((await api('/templates', { method: 'POST', json: { name: tname, source: 'dir', path: '/srv/t' }, auth: auth.op })).status, 201);
  t.is((await api('/templates', { method: 'POST', json: { name: uniq('tpl'), source: 'host' }, auth: auth.a })).status, 403, 'nodes do not write the catalog');
  t.is((await api('/templates', { method: 'POST', json: { name: uniq('tpl'), source: 'dir' } })).status, 400, 'dir needs path');
  const list = await until(() => api('/templates', { auth: auth.a }), (r) => r.body.some((x: { name: string }) => x.name === tname));
  t.true(list.body.some((x: { name: string }) => x.name === tname));
  t.is((await api(`/templates/${tname}`, { method: 'DELETE', auth: auth.op })).status, 200);
});

test.serial('fleet listing with filters, from the index', async (t) => {
  await api(`/nodes/${a}/systems`, { method: 'POST', json: app('lab1', { labels: { tier: 'web' } }) });
  await api(`/nodes/${b}/systems`, { method: 'POST', json: { name: 'os1', kind: 'os', template: 'host', state: 'stopped', labels: { tier: 'db' } } });
  const all = await until(() => api('/systems'), (r) => r.body.some((x: { name: string }) => x.name === 'os1') && r.body.some((x: { name: string }) => x.name === 'lab1'));
  const row = all.body.find((x: { name: string }) => x.name === 'lab1');
  t.like(row, { node: a, kind: 'app', state: 'running', phase: null, current: false });
  t.true((await api('/systems?kind=os')).body.every((x: { kind: string }) => x.kind === 'os'));
  t.deepEqual((await api('/systems?label=tier=db')).body.map((x: { name: string }) => x.name), ['os1']);
  t.true((await api(`/systems?node=${b}`)).body.every((x: { node: string }) => x.node === b));
  t.true((await api('/systems?phase=unknown')).body.length >= 2);
  t.is((await api('/systems?colour=red')).status, 400);
  t.is((await api('/systems?label=a&label=b')).status, 400, 'a repeated filter is refused, not a 500');
  await api(`/nodes/${a}/systems`, { method: 'POST', json: app('eq', { labels: { expr: 'a=b' } }) });
  const eq = await until(() => api('/systems?label=expr=a=b'), (r) => r.body.length === 1);
  t.deepEqual(eq.body.map((x: { name: string }) => x.name), ['eq']);
  const nodes = await api('/nodes');
  t.true([a, b].every((n) => nodes.body.some((x: { id: string }) => x.id === n)));
});

test.serial('authorization through the API equals CouchDB\'s', async (t) => {
  // node A sees only itself in fleet listings
  const nodes = await api('/nodes', { auth: auth.a });
  t.deepEqual(nodes.body.map((n: { id: string }) => n.id), [a]);
  const systems = await api('/systems', { auth: auth.a });
  t.true(systems.body.length > 0 && systems.body.every((x: { node: string }) => x.node === a));
  // same answers as the CouchDB API for the same operations
  const pairs: [Parameters<typeof call>[2] & { path: string; db: string }, number][] = [
    [{ path: `/nodes/${b}/systems`, db: `/anybios-node-${b}/_all_docs`, auth: auth.a }, 403],
    [{ path: `/nodes/${b}`, db: `/anybios-node-${b}`, auth: auth.a }, 403],
    [{ path: `/nodes/${a}/systems`, db: `/anybios-node-${a}/_all_docs`, auth: auth.a }, 200],
    [{ path: `/nodes/${a}/systems`, db: `/anybios-node-${a}/_all_docs`, auth: auth.op }, 200],
    [{ path: '/templates', db: '/anybios/_all_docs', auth: auth.a }, 200],
  ];
  for (const [c, expected] of pairs) {
    const viaApi = await api(c.path, { auth: c.auth });
    const viaCouch = await call(s.couchUrl, c.db, { auth: c.auth });
    t.is(viaApi.status, expected, `${c.path}: ${viaApi.text}`);
    t.is(viaCouch.status, expected, `${c.db}: ${viaCouch.text}`);
  }
  const write = await api(`/nodes/${b}/systems`, { method: 'POST', json: app('intruder'), auth: auth.a });
  const direct = await call(s.couchUrl, `/anybios-node-${b}/system:intruder`, { method: 'PUT', json: { _id: 'system:intruder', type: 'system', ...app('intruder') }, auth: auth.a });
  t.is(write.status, 403);
  t.is(direct.status, 403);
  // writes CouchDB allows, the API allows: node A writes its own spec
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', json: app('mine'), auth: auth.a })).status, 201);
});
