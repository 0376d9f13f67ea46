// Agent failover between servers: an agent configured with two servers (as for linked sites) leaves
// one that stays unreachable for the next one that answers, and keeps converging there.
// (The sites are not linked here: the node and its password exist at both, as a site link carries them.)
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addNode, removeNode } from '../../server/nodes.ts';
import { destroySystems, spawnAgent, type TestAgent } from '../helpers/agent.ts';
import { eventually } from '../helpers/wait.ts';
import { call, external, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

if (process.getuid?.() !== 0) throw new Error('the agent tests need root (real mounts and namespaces); run them as root');

let a: TestServer;
let b: TestServer;
let proxyA: TcpProxy;
let agent: TestAgent | null = null;
const out = () => agent?.output() ?? '';
const node = uniq('fo');
const dataDir = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-failover-test-'));

test.before(async () => {
  [a, b] = await Promise.all([startServer(), startServer()]);
  const password = 'failover-node-password';
  // With COUCH_URL both server processes front the same CouchDB: the node exists once there.
  for (const s of external ? [a] : [a, b]) {
    await s.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never).catch(() => {});
    await addNode(s.admin, node, { password });
  }
  proxyA = await startTcpProxy(Number(new URL(a.url).port));
  const cfg = join(dataDir, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: [proxyA.url, b.url], node, user: `node-${node}`, password }), { mode: 0o600 });
  agent = spawnAgent(cfg, dataDir, ['--full-pass', '2', '--watchdog', '1']);
});

test.after.always(async () => {
  await agent?.stop();
  await destroySystems(dataDir);
  await proxyA?.close();
  for (const s of [a, b]) {
    if (!s) continue;
    await removeNode(s.admin, node).catch(() => {}); // (with COUCH_URL the second call finds it gone)
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const spec = (name: string) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"] });

const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 30_000) => eventually(what, fn, pred, { ms, context: out });

const status = async (s: TestServer, name: string) => {
  const r = await call(s.couchUrl, `/anybios-node-${node}/status:${name}`, { auth: s.adminAuth });
  return r.status === 200 ? r.body : null;
};

test.serial('the agent fails over to the next server and converges there', async (t) => {
  const put = await call(a.couchUrl, `/anybios-node-${node}/system:one`, { method: 'PUT', auth: a.adminAuth, json: spec('one') });
  t.is(put.status, 201);
  await until('one running, reported to A', () => status(a, 'one'), (x) => x?.phase === 'running' && x.observedRev === put.body.rev);

  await proxyA.down(); // site A unreachable for the agent (A itself stays up)
  await until('failover logged', async () => out(), (o) => /failing over to/.test(o));
  // The agent now syncs with B: what it had (spec one and its status) arrives at B, and B's edits reach it.
  await until('one known at B', () => status(b, 'one'), (x) => x?.phase === 'running');
  const putB = await call(b.couchUrl, `/anybios-node-${node}/system:two`, { method: 'PUT', auth: b.adminAuth, json: spec('two') });
  t.is(putB.status, 201);
  const two = await until('two running, reported to B', () => status(b, 'two'), (x) => x?.phase === 'running' && x.observedRev === putB.body.rev);
  t.truthy(two.pid);
  // Nothing applied twice: system one kept its process through the switch.
  const oneAtB = await status(b, 'one');
  t.is(oneAtB.restarts, 0);
  if (!external) t.is((await status(a, 'two')), null, 'A never heard of two (the sites are not linked in this test)');
});
