// Three sites, end to end (issue 6): real server processes A, B and C on loopback. A is linked with B
// (through a TCP proxy, so the link can be cut while both stay up and editable) and with C. One node's
// agent syncs with B, and fails over to C. Edits travel across sites and reach the agent; a partition
// with the same system edited at A and at B ends in exactly one conflict, listed, resolved, nothing
// lost, and the agent converges to the resolution; status documents never conflict; links survive a
// server restart.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addNode } from '../server/nodes.ts';
import { destroySystems, spawnAgent, type TestAgent } from './helpers/agent.ts';
import { eventually } from './helpers/wait.ts';
import { basic, call, removeDataDir, startServer, uniq, type TestServer } from './helpers/server.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.ts';

if (process.getuid?.() !== 0) throw new Error('the multi-site test runs real systems: run it as root');

let A: TestServer;
let B: TestServer;
let C: TestServer;
let proxyB: TcpProxy;
let agent: TestAgent | null = null;
const out = () => agent?.output() ?? '';
const node = uniq('ms');
const password = 'multisite-node-password';
const dataDir = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-multisite-test-'));
const db = `/anybios-node-${node}`;

test.before(async () => {
  // Each site has its own embedded CouchDB (also when COUCH_URL is set: one store per site is the point).
  [A, B, C] = await Promise.all([startServer({ embedded: true }), startServer({ embedded: true }), startServer({ embedded: true })]);
  proxyB = await startTcpProxy(Number(new URL(B.url).port));
  for (const target of [proxyB.url, C.url]) {
    const r = await call(A.url, '/api/sites', { method: 'POST', auth: A.adminAuth, json: { url: target, user: 'admin', password: B.adminPassword } });
    if (r.status !== 201 && r.status !== 200) throw new Error(`link to ${target}: ${r.status} ${r.text}`);
  }
  await A.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never);
  await addNode(A.admin, node, { password });
});

test.after.always(async () => {
  await agent?.stop();
  await destroySystems(dataDir);
  await proxyB?.close();
  for (const s of [A, B, C]) {
    if (!s) continue;
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 60_000) => eventually(what, fn, pred, { ms, interval: 200, context: out });

const get = async (s: TestServer, id: string, q = '') => {
  const r = await call(s.couchUrl, `${db}/${id}${q}`, { auth: s.adminAuth });
  return r.status === 200 ? r.body : null;
};
const sleeper = (tag: string) => ['/bin/sh', '-c', `echo ${tag} > /marker; trap 'exit 0' TERM; while :; do sleep 1 & wait; done`];
const marker = (name: string) => { try { return readFileSync(join(dataDir, 'systems', name, 'upper', 'marker'), 'utf8').trim(); } catch { return ''; } };

async function write(s: TestServer, doc: Record<string, unknown>): Promise<string> {
  const cur = await get(s, String(doc._id));
  const r = await call(s.couchUrl, `${db}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...(cur ?? {}), ...doc, ...(cur ? { _rev: cur._rev } : {}) } });
  if (r.status !== 201) throw new Error(`${r.status} ${r.text}`);
  return r.body.rev;
}

test.serial('a node enrolled at A reaches B and C: database, _security and user', async (t) => {
  for (const s of [B, C]) {
    const r = await until(`node db at ${s.url}`, () => call(s.couchUrl, db, { auth: basic(`node-${node}`, password) }), (x) => x.status === 200);
    t.is(r.status, 200);
  }
  const sites = await call(A.url, '/api/sites', { auth: A.adminAuth });
  t.is(sites.body.length, 2);
  const cfg = join(dataDir, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: [B.url, C.url], node, user: `node-${node}`, password }), { mode: 0o600 });
  agent = spawnAgent(cfg, dataDir, ['--full-pass', '2', '--watchdog', '2']);
});

test.serial('an edit at A is applied by the agent of B, and its status comes back to A', async (t) => {
  const rev = await write(A, { _id: 'system:x', type: 'system', name: 'x', kind: 'app', template: 'host', state: 'running', network: 'none', command: sleeper('a1') });
  const st = await until('x running, status at A', () => get(A, 'status:x'), (s) => s?.phase === 'running' && s.observedRev === rev);
  t.truthy(st.pid);
  t.is(marker('x'), 'a1');
});

test.serial('partition: the same system edited at A and at B → exactly one conflict, resolved, nothing lost; the agent follows', async (t) => {
  await proxyB.down();
  const revA = await write(A, { _id: 'system:x', command: sleeper('from-a') });
  const revB = await write(B, { _id: 'system:x', command: sleeper('from-b') });
  await until('agent applies B\'s edit during the partition', async () => marker('x'), (m) => m === 'from-b');
  await proxyB.up();
  const withConflict = await until('the conflict at A', () => get(A, 'system:x', '?conflicts=true'), (d) => d?._conflicts?.length === 1);
  const leaves = [withConflict._rev, ...withConflict._conflicts].sort();
  t.deepEqual(leaves, [revA, revB].sort());
  const listed = await until('listed at A', () => call(A.url, '/api/conflicts', { auth: A.adminAuth }), (r) => r.body.length >= 1);
  t.deepEqual(listed.body.map((c: { id: string }) => c.id), ['system:x'], 'exactly one conflict, and never a status document');
  // Until resolved the agent runs CouchDB's winner and says so in the status.
  const flagged = await until('status says conflict', () => get(A, 'status:x'), (x) => x?.conflict === true);
  t.is(flagged.observedRev, withConflict._rev, 'the deterministic winner is what runs');
  t.falsy((await get(A, 'status:x', '?conflicts=true'))?._conflicts, 'status has one writer: no conflict');
  t.falsy((await get(B, 'status:x', '?conflicts=true'))?._conflicts);
  // Resolve at A by keeping A's version; the losing version stays readable by revision.
  const keep = revA;
  const loser = revB;
  const res = await call(A.url, `/api/nodes/${node}/systems/x/conflicts/resolve`, { method: 'POST', auth: A.adminAuth, json: { keep } });
  t.true(res.status === 200 || res.status === 201, res.text);
  const resolved = await get(A, 'system:x', '?conflicts=true');
  t.falsy(resolved._conflicts);
  t.regex(resolved.command[2], /from-a/);
  t.regex((await get(A, 'system:x', `?rev=${loser}`)).command[2], /from-b/, 'nothing lost');
  // B and the agent converge to the resolution.
  await until('resolution at B', () => get(B, 'system:x', '?conflicts=true'), (d) => d?._rev === resolved._rev && !d._conflicts);
  await until('agent runs the resolution', async () => marker('x'), (m) => m === 'from-a');
  await until('status current at A, conflict gone', () => get(A, 'status:x'), (s) => s?.observedRev === resolved._rev && s.phase === 'running' && s.conflict === false);
});

test.serial('B goes away: the agent fails over to C and keeps converging; links survive a restart of A', async (t) => {
  await B.stop();
  const rev = await write(A, { _id: 'system:y', type: 'system', name: 'y', kind: 'app', template: 'host', state: 'running', network: 'none', command: sleeper('y1') });
  await until('failover to C', async () => out(), (o) => /failing over to/.test(o));
  await until('y running, status at A through C', () => get(A, 'status:y'), (s) => s?.phase === 'running' && s.observedRev === rev);
  t.is(marker('y'), 'y1');
  A = await A.restart();
  const rev2 = await write(A, { _id: 'system:y', command: sleeper('y2') });
  await until('after A restarted, its edit still reaches the agent via C', () => get(A, 'status:y'), (s) => s?.observedRev === rev2 && s.phase === 'running');
  t.is(marker('y'), 'y2');
});
