// POST /api/nodes and DELETE /api/nodes/:node (the web console's "Nodes" page): admins only, the agent
// config is answered once and works (the new node's user can read its own database), duplicates and
// bad names are refused with the field named, removal deletes the database and the user.
import test from 'ava';
import { basic, call, removeDataDir, startServer, type TestServer } from '../../helpers/server.ts';
import { OPERATOR_PASSWORD } from '../../helpers/fleet.ts';

let server: TestServer;
test.before(async () => {
  server = await startServer({ embedded: true });
  await server.admin.use('_users').insert({ _id: 'org.couchdb.user:op1', type: 'user', name: 'op1', roles: ['operator'], password: OPERATOR_PASSWORD } as never);
});
test.after.always(async () => {
  await server?.stop();
  if (server) removeDataDir(server.dataDir);
});

test.serial('an admin enrols a node and gets its agent config once; the credentials work', async (t) => {
  const r = await call(server.url, '/api/nodes', { method: 'POST', auth: server.adminAuth, json: { id: 'rack7' } });
  t.is(r.status, 201, r.text);
  t.is(r.body.config.node, 'rack7');
  t.is(r.body.config.user, 'node-rack7');
  t.is(r.body.config.server, server.url);
  t.true(r.body.config.password.length >= 24);
  const own = await call(server.url, '/db/anybios-node-rack7', { auth: basic('node-rack7', r.body.config.password) });
  t.is(own.status, 200);
  const listed = await call(server.url, '/api/nodes/rack7', { auth: server.adminAuth });
  t.is(listed.status, 200);
  const again = await call(server.url, '/api/nodes', { method: 'POST', auth: server.adminAuth, json: { id: 'rack7' } });
  t.is(again.status, 409);
});

test.serial('bad names and non-admins are refused', async (t) => {
  const bad = await call(server.url, '/api/nodes', { method: 'POST', auth: server.adminAuth, json: { id: 'Rack 7' } });
  t.is(bad.status, 400);
  t.is(bad.body.details[0].path, '/id');
  const missing = await call(server.url, '/api/nodes', { method: 'POST', auth: server.adminAuth, json: {} });
  t.is(missing.status, 400);
  const op = await call(server.url, '/api/nodes', { method: 'POST', auth: basic('op1', OPERATOR_PASSWORD), json: { id: 'rack8' } });
  t.is(op.status, 403);
  t.is((await call(server.url, '/db/anybios-node-rack8', { auth: server.adminAuth })).status, 404);
  const opDel = await call(server.url, '/api/nodes/rack7', { method: 'DELETE', auth: basic('op1', OPERATOR_PASSWORD) });
  t.is(opDel.status, 403);
  t.is((await call(server.url, '/api/nodes', { method: 'POST', json: { id: 'rack9' } })).status, 401);
});

test.serial('an admin removes a node: its database and user are gone', async (t) => {
  const r = await call(server.url, '/api/nodes/rack7', { method: 'DELETE', auth: server.adminAuth });
  t.is(r.status, 200, r.text);
  t.is((await call(server.url, '/db/anybios-node-rack7', { auth: server.adminAuth })).status, 404);
  t.is((await call(server.url, '/db/_users/org.couchdb.user:node-rack7', { auth: server.adminAuth })).status, 404);
  t.is((await call(server.url, '/api/nodes/rack7', { method: 'DELETE', auth: server.adminAuth })).status, 404);
});
