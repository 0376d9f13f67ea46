// The NAS of fixtures/examples/nas.yaml on a node cut from its server for minutes (issue 15): while the
// link is down (the TCP proxy refuses and drops every connection) the device is edited through the
// agent's loopback API, the agent is killed and started again offline, and the NAS keeps serving its
// volume. When the link returns: every local edit is on the server (each revision the device made is
// in the server's revision history — zero lost), the status there is current and carries the phase
// transitions made offline in its history.
// Timing: the partition lasts ANYBIOS_TEST_PARTITION_S seconds (default 180: long enough for PouchDB's
// retry back-off, 1 s doubling to our 60 s cap, to reach its cap). The agent runs with --watchdog 2
// (default 15 s): the same code path (the watchdog probes the server and restarts a replication still
// offline while it answers), only its period is shorter, so the heal is seen within seconds.
import test from 'ava';
import { promises as fsp, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { addNode, removeNode } from '../../server/nodes.ts';
import { destroySystems, spawnAgent, type TestAgent } from '../helpers/agent.ts';
import { eventually } from '../helpers/wait.ts';
import { call, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

if (process.getuid?.() !== 0) throw new Error('the agent tests need root (real mounts and namespaces); run them as root');
const PARTITION_MS = Number(process.env.ANYBIOS_TEST_PARTITION_S ?? 180) * 1000;

let s: TestServer;
let proxy: TcpProxy;
let agent: TestAgent | null = null;
const node = uniq('nas');
const work = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-nas-partition-'));
const dataDir = join(work, 'node');
const templateRoot = join(work, 'templates');
let configFile = '';
let port = 0;

const agentOut = () => agent?.output() ?? '';
const startAgent = () => { agent = spawnAgent(configFile, dataDir, ['--template-root', templateRoot, '--watchdog', '2', '--heartbeat', '5', '--full-pass', '5']); };
const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 30_000) => eventually(what, fn, pred, { ms, context: agentOut });

const freePort = () => new Promise<number>((resolve, reject) => {
  const srv = createServer().listen(0, '127.0.0.1', () => {
    const p = (srv.address() as { port: number }).port;
    srv.close(() => resolve(p));
  }).on('error', reject);
});

test.before(async () => {
  s = await startServer();
  proxy = await startTcpProxy(Number(new URL(s.url).port));
  const cred = await addNode(s.admin, node);
  configFile = join(work, 'enrol.json');
  writeFileSync(configFile, JSON.stringify({ server: proxy.url, node, user: cred.user, password: cred.password }), { mode: 0o600 });
  port = await freePort();
});

test.after.always(async () => {
  await agent?.stop();
  await destroySystems(dataDir).catch(() => {});
  await proxy?.close();
  if (s) {
    await removeNode(s.admin, node).catch(() => {});
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
});

const db = () => `/anybios-node-${node}`;
async function serverDoc(id: string, query = ''): Promise<any> {
  const r = await call(s.couchUrl, `${db()}/${encodeURIComponent(id)}${query}`, { auth: s.adminAuth });
  return r.status === 200 ? r.body : null;
}

/** The agent's loopback API, with the token from <data>/agent/local.json (read anew: a restart makes a new one). */
async function local(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const { url, token } = JSON.parse(readFileSync(join(dataDir, 'agent', 'local.json'), 'utf8'));
  const r = await fetch(url + path, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

async function localEdit(name: string, change: (spec: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
  const cur = await local('GET', `/systems/${name}`);
  const next = change(cur.status === 200 ? cur.body.spec : {});
  const r = await local('PUT', `/systems/${name}`, next);
  if (r.status !== 200 && r.status !== 201) throw new Error(`local PUT ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.rev;
}

const localStatus = async (name: string) => (await local('GET', `/systems/${name}`)).body?.status ?? null;
const served = (file: string) => fetch(`http://127.0.0.1:${port}/${file}`).then((r) => (r.ok ? r.text() : `HTTP ${r.status}`), (e) => `error ${(e as Error).message}`);

test.serial('the NAS cut from its server for minutes: local edits and an agent restart offline, then it heals with nothing lost', async (t) => {
  t.timeout(PARTITION_MS + 240_000);
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) return t.fail('busybox is not installed (Debian: apt-get install busybox-static)');
  // The example's template: a directory holding a static busybox, under the agent's --template-root.
  const root = join(templateRoot, 'busybox');
  for (const d of ['bin', 'etc', 'srv', 'proc', 'sys', 'dev', 'tmp', 'run']) await fsp.mkdir(join(root, d), { recursive: true });
  await fsp.copyFile(busybox, join(root, 'bin', 'busybox'));
  await fsp.chmod(join(root, 'bin', 'busybox'), 0o755);
  await fsp.symlink('busybox', join(root, 'bin', 'sh'));
  const [tpl, vol, sys] = parseAllDocuments(readFileSync(new URL('../../fixtures/examples/nas.yaml', import.meta.url), 'utf8')).map((d) => d.toJS()).filter(Boolean) as Record<string, any>[];
  t.is(sys._id, 'system:nas');
  await s.admin.use('anybios').insert({ ...tpl, path: root } as never);
  await s.admin.use(`anybios-node-${node}`).insert(vol as never);
  const nas = { ...sys, command: (sys.command as string[]).map((a) => (a === '8088' ? String(port) : a)) };
  const created = await s.admin.use(`anybios-node-${node}`).insert(nas as never);
  startAgent();
  await until('the NAS running on the server', () => serverDoc('status:nas'), (x) => x?.phase === 'running' && x.observedRev === created.rev, 60_000);
  await fsp.writeFile(join(dataDir, 'volumes', 'share', 'hello.txt'), 'from the phone\n');
  t.is(await until('the NAS serving', () => served('hello.txt'), (b) => b === 'from the phone\n'), 'from the phone\n');

  // ---- the link goes down ---------------------------------------------------------------------
  await proxy.down();
  const cutAt = Date.now();
  const revs: string[] = [];
  // 1. An edit on the device: an environment variable (a restart).
  revs.push(await localEdit('nas', (x) => ({ ...x, env: { EDIT: '1' } })));
  await until('edit 1 running locally', () => localStatus('nas'), (x) => x?.observedRev === revs[0] && x.phase === 'running');
  // 2. Stopped from the device (a phase transition, to be found in the history later).
  revs.push(await localEdit('nas', (x) => ({ ...x, state: 'stopped' })));
  await until('edit 2 stopped locally', () => localStatus('nas'), (x) => x?.observedRev === revs[1] && x.phase === 'stopped');
  // 3. The agent is killed and comes back while the server is out of reach.
  await agent!.stop('SIGKILL');
  startAgent();
  await until('the agent back, offline', async () => agentOut(), (o) => o.includes('anybios agent ready'));
  await until('its loopback API answers', () => local('GET', '/status').catch(() => ({ status: 0, body: null })), (r) => r.status === 200);
  // The watchdog's probe finds the server out of reach (PouchDB alone says `idle` for its first seconds).
  await until('the agent knows it is offline', () => local('GET', '/status'), (r) => r.body?.sync === 'offline', 15_000);
  // 4. Running again, and a new system, both from the device.
  revs.push(await localEdit('nas', (x) => ({ ...x, state: 'running', env: { EDIT: '3' } })));
  const noteRev = await localEdit('note', () => ({ name: 'note', type: 'system', kind: 'app', template: 'busybox', state: 'running', network: 'none', command: ['/bin/sh', '-c', "echo offline; trap 'exit 0' TERM; while :; do sleep 1; done"] }));
  await until('edit 3 running locally', () => localStatus('nas'), (x) => x?.observedRev === revs[2] && x.phase === 'running');
  await until('the new system running locally', () => localStatus('note'), (x) => x?.observedRev === noteRev && x.phase === 'running');
  await fsp.writeFile(join(dataDir, 'volumes', 'share', 'offline.txt'), 'written offline\n');
  t.is(await until('the NAS serving offline', () => served('offline.txt'), (b) => b === 'written offline\n'), 'written offline\n');
  // Nothing of it reached the server.
  t.is((await serverDoc('system:nas'))._rev, created.rev);
  t.is(await serverDoc('system:note'), null);
  // The rest of the partition: the replication's back-off grows to its cap meanwhile.
  await new Promise((r) => setTimeout(r, Math.max(0, PARTITION_MS - (Date.now() - cutAt))));

  // ---- the link returns -----------------------------------------------------------------------
  await proxy.up();
  const upAt = Date.now();
  const onServer = await until('the last device edit on the server', () => serverDoc('system:nas', '?revs=true&conflicts=true'), (x) => x?._rev === revs[2], 90_000);
  t.log(`healed in ${Date.now() - upAt} ms after ${Math.round((upAt - cutAt) / 1000)} s cut off`);
  // Zero lost edits: every revision made on the device is in the server's history of the document.
  const ids: string[] = onServer._revisions.ids;
  for (const rev of revs) t.true(ids.includes(rev.split('-')[1]), `revision ${rev} in the server's history`);
  t.falsy(onServer._conflicts);
  t.deepEqual(onServer.env, { EDIT: '3' });
  t.is((await until('the new system on the server', () => serverDoc('system:note'), (x) => !!x))._rev, noteRev);
  // The status history made offline is uploaded: stopped and running again, both during the cut.
  const st = await until('the current status on the server', () => serverDoc('status:nas'), (x) => x?.observedRev === revs[2] && x.phase === 'running', 60_000);
  t.is(typeof st.diskUsed, 'number', 'disk use measured');
  const during = (st.history as { at: string; phase: string }[]).filter((h) => Date.parse(h.at) >= cutAt && Date.parse(h.at) < upAt);
  const phases = during.map((h) => h.phase);
  t.true(phases.includes('stopped'), `history during the cut: ${JSON.stringify(during)}`);
  t.is(phases[phases.length - 1], 'running');
  t.true(phases.lastIndexOf('running') > phases.indexOf('stopped'));
  await until('the new system\'s status on the server', () => serverDoc('status:note'), (x) => x?.observedRev === noteRev && x.phase === 'running');
  t.is(await served('hello.txt'), 'from the phone\n');
});
