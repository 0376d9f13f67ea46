// Issue 10, the data plane against a stolen node credential: a node's own database must not let it
// raise its rights (`_security` kept where no request writes it), and the attacks are replayed
// exactly as found, across restarts too. Embedded server only: these are properties of our layer.
import test from 'ava';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode } from '../../../server/nodes.ts';
import { basic, call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

const servers = new Set<TestServer>();
async function start(dataDir?: string): Promise<TestServer> {
  const s = await startServer({ embedded: true, ...(dataDir ? { dataDir } : {}) });
  servers.add(s);
  return s;
}
async function restart(s: TestServer): Promise<TestServer> {
  const next = await s.restart();
  servers.delete(s);
  servers.add(next);
  return next;
}

test.after.always(async () => {
  const dirs = new Set<string>();
  for (const s of servers) {
    await s.stop();
    dirs.add(s.dataDir);
  }
  for (const d of dirs) removeDataDir(d);
});

const OPERATOR = 'sec-operator';
const OP_PASSWORD = 'operator-pass';
async function addOperator(s: TestServer): Promise<string> {
  await s.admin.use('_users').insert({ _id: `org.couchdb.user:${OPERATOR}`, type: 'user', name: OPERATOR, roles: ['operator'], password: OP_PASSWORD } as never);
  return basic(OPERATOR, OP_PASSWORD);
}

test.serial('a node cannot make itself admin of its database through _local, before or after a restart', async (t) => {
  let s = await start();
  const n1 = await addNode(s.admin, uniq('n1'));
  const n2 = await addNode(s.admin, uniq('n2'));
  const a1 = basic(n1.user, n1.password);
  const a2 = basic(n2.user, n2.password);
  const op = await addOperator(s);
  const standard = (await call(s.couchUrl, `/${n1.db}/_security`, { auth: s.adminAuth })).body;
  t.deepEqual(standard.members, { names: [n1.user], roles: ['operator'] });

  // The attack as found: n1 writes the old security location, naming itself admin, letting n2 in and
  // dropping operators. `_local` stays the member's scratch space, so the write itself succeeds.
  const evil = { security: { admins: { names: [n1.user], roles: [] }, members: { names: [n1.user, n2.user], roles: [] } } };
  const existing = await call(s.couchUrl, `/${n1.db}/_local/_anybios_security`, { auth: a1 });
  const put = await call(s.couchUrl, `/${n1.db}/_local/_anybios_security`, { method: 'PUT', auth: a1, json: { ...evil, ...(existing.status === 200 ? { _rev: existing.body._rev } : {}) } });
  t.is(put.status, 201, put.text);
  t.is((await call(s.couchUrl, `/${n1.db}/_local/scratch`, { method: 'PUT', auth: a1, json: { checkpoint: 7 } })).status, 201);

  for (let round = 0; round < 2; round++) {
    if (round === 1) s = await restart(s);
    const when = round ? 'after a restart' : 'before a restart';
    const sec = await call(s.couchUrl, `/${n1.db}/_security`, { auth: a1 });
    t.is(sec.status, 200, when);
    t.deepEqual(sec.body, standard, when);
    const putSec = await call(s.couchUrl, `/${n1.db}/_security`, { method: 'PUT', auth: a1, json: evil.security });
    t.is(putSec.status, 401, `${when}: ${putSec.text}`);
    t.is(putSec.body.error, 'unauthorized');
    const compact = await call(s.couchUrl, `/${n1.db}/_compact`, { method: 'POST', auth: a1, json: {} });
    t.is(compact.status, 401, `${when}: ${compact.text}`);
    const intruder = await call(s.couchUrl, `/${n1.db}`, { auth: a2 });
    t.is(intruder.status, 403, `${when}: n2 reads n1's database: ${intruder.text}`);
    t.is((await call(s.couchUrl, `/${n1.db}/_all_docs`, { auth: a2 })).status, 403, when);
    t.is((await call(s.couchUrl, `/${n1.db}`, { auth: op })).status, 200, `${when}: operators keep their access`);
    t.is((await call(s.couchUrl, `/${n1.db}`, { auth: a1 })).status, 200, when);
    // The scratch space works and is the node's own.
    t.is((await call(s.couchUrl, `/${n1.db}/_local/scratch`, { auth: a1 })).body.checkpoint, 7, when);
  }
  // _security is no longer a document: nothing in the database carries it.
  t.false(existsSync(join(s.dataDir, 'couch', 'security-legacy.json')));
  t.true(existsSync(join(s.dataDir, 'couch', 'security.json')));
});

test.serial('upgrade: an old _local/_anybios_security is never trusted; node databases get their standard _security back', async (t) => {
  let s = await start();
  const n1 = await addNode(s.admin, uniq('n1'));
  const n2 = await addNode(s.admin, uniq('n2'));
  const op = await addOperator(s);
  const custom = uniq('custom');
  await s.admin.db.create(custom);
  await s.stop();

  // The data dir as the previous version left it, after n1's attack: its `_security` inside the
  // database as `_local/_anybios_security`, and no security.json.
  const evil = { admins: { names: [n1.user], roles: [] }, members: { names: [n1.user, n2.user], roles: [] } };
  const Pouch = (PouchDB as unknown as { defaults(o: object): PouchDB.Static }).defaults({ prefix: join(s.dataDir, 'couch') + '/' });
  for (const [db, security] of [[n1.db, evil], [custom, { admins: { names: [], roles: [] }, members: { names: [n2.user], roles: [] } }]] as const) {
    const pdb = new Pouch(db);
    await pdb.put({ _id: '_local/_anybios_security', security } as never);
    await pdb.close();
  }
  rmSync(join(s.dataDir, 'couch', 'security.json'), { force: true });

  s = await restart(s);
  const a1 = basic(n1.user, n1.password);
  const a2 = basic(n2.user, n2.password);
  // The node database is back to the standard object (setup restores an empty node _security).
  const sec = await call(s.couchUrl, `/${n1.db}/_security`, { auth: s.adminAuth });
  t.deepEqual(sec.body, { admins: { names: [], roles: [] }, members: { names: [n1.user], roles: ['operator'] } });
  t.is((await call(s.couchUrl, `/${n1.db}/_security`, { method: 'PUT', auth: a1, json: evil })).status, 401);
  t.is((await call(s.couchUrl, `/${n1.db}`, { auth: a2 })).status, 403);
  t.is((await call(s.couchUrl, `/${n1.db}`, { auth: op })).status, 200);
  // A database that is not anybios' own is admin-only until an admin PUTs its _security again.
  t.is((await call(s.couchUrl, `/${custom}`, { auth: a2 })).status, 403);
  t.is((await call(s.couchUrl, `/${custom}`, { auth: s.adminAuth })).status, 200);
  // The old documents are gone from the databases, and kept aside for an admin to review.
  t.is((await call(s.couchUrl, `/${n1.db}/_local/_anybios_security`, { auth: s.adminAuth })).status, 404);
  const legacy = JSON.parse(readFileSync(join(s.dataDir, 'couch', 'security-legacy.json'), 'utf8'));
  t.deepEqual(legacy[n1.db], evil);
  t.deepEqual(legacy[custom].members.names, [n2.user]);
  t.regex(s.output(), /not trusted/);

  // The migration runs once: a _local/_anybios_security written afterwards means nothing.
  t.is((await call(s.couchUrl, `/${custom}/_local/_anybios_security`, { method: 'PUT', auth: s.adminAuth, json: { security: evil } })).status, 201);
  s = await restart(s);
  t.is((await call(s.couchUrl, `/${custom}`, { auth: a2 })).status, 403);
  t.is((await call(s.couchUrl, `/${custom}/_local/_anybios_security`, { auth: s.adminAuth })).status, 200);
});

test('a $regex in a _changes selector cannot freeze the server: /healthz answers meanwhile, the answer is right', async (t) => {
  const s = await start();
  const db = uniq('redos');
  await s.admin.db.create(db);
  const node = await addNode(s.admin, uniq('rn'));
  await call(s.couchUrl, `/${db}/_security`, { method: 'PUT', auth: s.adminAuth, json: { members: { names: [node.user] } } });
  const auth = basic(node.user, node.password);
  const docs = [{ _id: 'evil', message: 'a'.repeat(31) + '!' }, { _id: 'match', message: 'aaaa' }, { _id: 'other', n: 1 }];
  t.is((await call(s.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth, json: { docs } })).status, 201);

  // Exactly as found: 31 `a` and a `!` against ^(a+)+$ backtracks for many seconds in JavaScript's RegExp.
  const started = Date.now();
  let done = false;
  const evil = call(s.couchUrl, `/${db}/_changes?filter=_selector`, { method: 'POST', auth, json: { selector: { message: { $regex: '^(a+)+$' } } } })
    .finally(() => { done = true; });
  const pings: number[] = [];
  while (!done && Date.now() - started < 20_000) {
    const t0 = Date.now();
    const h = await fetch(`${s.url}/healthz`);
    await h.arrayBuffer();
    pings.push(Date.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  const r = await evil;
  t.is(r.status, 200, r.text);
  t.deepEqual(r.body.results.map((x: { id: string }) => x.id), ['match']);
  t.true(Date.now() - started < 2000, `the selector took ${Date.now() - started} ms`);
  t.true(pings.length > 0);
  t.true(Math.max(...pings) < 1000, `/healthz took ${Math.max(...pings)} ms while the selector ran`);
});

test('a $regex RE2 cannot run in linear time, or a malformed selector, is a 400 naming the field', async (t) => {
  const s = await start();
  const db = uniq('regex400');
  await s.admin.db.create(db);
  const cases: [unknown, RegExp][] = [
    [{ message: { $regex: '^(a)\\1$' } }, /selector at message: \$regex "\^\(a\)\\\\1\$" is not a valid RE2 pattern/],
    [{ message: { $regex: '(?=a)' } }, /selector at message: \$regex .* not a valid RE2 pattern/],
    [{ a: { b: { $regex: 5 } } }, /selector at a\.b: \$regex needs a string/],
    [{ $or: [{ x: 1 }, { y: { $bogus: 1 } }] }, /selector at \$or\[1\]\.y: unknown operator \$bogus/],
    [{ n: { $mod: [0, 1] } }, /selector at n: \$mod needs/],
  ];
  for (const [selector, reason] of cases) {
    const r = await call(s.couchUrl, `/${db}/_changes?filter=_selector`, { method: 'POST', auth: s.adminAuth, json: { selector } });
    t.is(r.status, 400, r.text);
    t.is(r.body.error, 'bad_request');
    t.regex(r.body.reason, reason);
  }
});

test('a $regex match that would take seconds fails with a clear error instead of holding the server', async (t) => {
  const s = await start();
  const db = uniq('regex-budget');
  await s.admin.db.create(db);
  // Random a/b: RE2's lazy DFA gives up on a[ab]{500}c here, and its NFA needs seconds for 1 MB.
  let message = '';
  let x = 12345;
  for (let i = 0; i < 1_000_000; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    message += (x >> 16) & 1 ? 'a' : 'b';
  }
  t.is((await call(s.couchUrl, `/${db}/big`, { method: 'PUT', auth: s.adminAuth, json: { message: message + ' c' } })).status, 201);
  const started = Date.now();
  let done = false;
  const costly = call(s.couchUrl, `/${db}/_changes?filter=_selector`, { method: 'POST', auth: s.adminAuth, json: { selector: { message: { $regex: 'a[ab]{500}c' } } } })
    .finally(() => { done = true; });
  const pings: number[] = [];
  while (!done && Date.now() - started < 20_000) {
    const t0 = Date.now();
    await (await fetch(`${s.url}/healthz`)).arrayBuffer();
    pings.push(Date.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  const r = await costly;
  t.is(r.status, 400, r.text);
  t.is(r.body.error, 'bad_request');
  t.regex(r.body.reason, /^selector at message: \$regex "a\[ab\]\{500\}c" took longer than 250 ms on a string of 1000002 characters/);
  t.true(Date.now() - started < 3000, `${Date.now() - started} ms`);
  t.true(Math.max(0, ...pings) < 1000, `/healthz took ${Math.max(0, ...pings)} ms`);
  t.true(s.alive());
});
