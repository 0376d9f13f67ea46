// The agent's loopback API on its own: token, schema errors with fields named, conflicts, hostile bodies,
// and that a good edit lands in the local database (from where it replicates).
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { startLocalApi, type LocalApi } from '../../agent/local-api.ts';
import type { NodeSync } from '../../agent/sync/node-sync.ts';
import { isNetworkError } from '../../bin/lib/process-guard.ts';

const dir = mkdtempSync(join(tmpdir(), 'anybios-local-api-'));
const db = new PouchDB(join(dir, 'db'));
const sync = { state: 'offline', restarts: 0, switches: 0, lastError: 'server unreachable', remoteUrl: 'http://127.0.0.1:1/db/anybios-node-n' } as unknown as NodeSync;
let api: LocalApi;

test.before(async () => {
  api = await startLocalApi({ db, node: 'n', sync, infoPath: join(dir, 'local.json') });
});
test.after.always(async () => {
  await api?.close();
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

const req = (path: string, init: RequestInit = {}, token = api.token) =>
  fetch(api.url + path, { ...init, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) } }).then(async (r) => ({ status: r.status, body: await r.json() }));
const spec = { kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] };

test.serial('bound to loopback; the token file is 0600; a wrong or missing token is 401', async (t) => {
  t.regex(api.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.is(statSync(join(dir, 'local.json')).mode & 0o777, 0o600);
  t.is(JSON.parse(readFileSync(join(dir, 'local.json'), 'utf8')).token, api.token);
  t.is((await req('/systems', {}, 'wrong')).status, 401);
  t.is((await fetch(api.url + '/systems')).status, 401);
});

test.serial('works offline: create, read, update with _rev, conflict without, start/stop, delete', async (t) => {
  t.like((await req('/status')).body, { node: 'n', sync: 'offline' });
  const created = await req('/systems/web', { method: 'PUT', body: JSON.stringify(spec) });
  t.is(created.status, 201);
  t.is((await db.get<{ state: string }>('system:web')).state, 'running', 'the edit is in the local database');
  t.is((await req('/systems/web', { method: 'PUT', body: JSON.stringify(spec) })).status, 409);
  const upd = await req('/systems/web', { method: 'PUT', body: JSON.stringify({ ...spec, _rev: created.body.rev, command: ['/bin/echo'] }) });
  t.is(upd.status, 200);
  t.is((await req('/systems/web/stop', { method: 'POST' })).status, 200);
  t.is((await db.get<{ state: string }>('system:web')).state, 'stopped');
  const list = await req('/systems');
  t.deepEqual(list.body.map((x: { spec: { name: string } }) => x.spec.name), ['web']);
  t.is((await req('/systems/web', { method: 'DELETE' })).status, 200);
  t.is((await req('/systems/web')).status, 404);
});

test.serial('bad input: field errors named, bad names, bad JSON, deep nesting, unknown routes and methods', async (t) => {
  const bad = await req('/systems/x', { method: 'PUT', body: JSON.stringify({ ...spec, kind: 'vm', colour: 1 }) });
  t.is(bad.status, 400);
  t.deepEqual(bad.body.details.map((d: { path: string }) => d.path).sort(), ['/colour', '/kind']);
  t.is((await req('/systems/Bad_Name', { method: 'PUT', body: JSON.stringify(spec) })).status, 400);
  t.is((await req('/systems/x', { method: 'PUT', body: '{"kind":' })).status, 400);
  t.is((await req('/systems/x', { method: 'PUT', body: '['.repeat(100_000) })).status, 400);
  t.is((await req('/systems/x', { method: 'PUT', body: 'x'.repeat(2 * 1024 * 1024) })).status, 413);
  t.is((await req('/nothing')).status, 404);
  t.is((await req('/systems/x/explode', { method: 'POST' })).status, 404);
  t.is((await req('/systems', { method: 'POST', body: '{}' })).status, 405);
  t.is((await req('/status')).status, 200, 'still serving');
});

test.serial('the device cannot make a system privileged (the node credential never asks for root of the host)', async (t) => {
  const r = await req('/systems/rooty', { method: 'PUT', body: JSON.stringify({ ...spec, privileged: true }) });
  t.is(r.status, 403);
  t.regex(r.body.reason, /^\/privileged: only admins and operators/);
  t.is((await req('/systems/rooty')).status, 404, 'nothing was written');
});

test('isNetworkError: socket and fetch failures yes, programming errors no', (t) => {
  t.true(isNetworkError(Object.assign(new Error('reset'), { code: 'ECONNRESET' })));
  t.true(isNetworkError({ name: 'FetchError', type: 'system', errno: 'ECONNRESET' }));
  t.true(isNetworkError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'UND_ERR_SOCKET' } })));
  t.false(isNetworkError(new TypeError('cannot read properties of undefined')));
  t.false(isNetworkError(undefined));
});
