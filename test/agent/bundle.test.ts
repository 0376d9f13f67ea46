// Air-gapped nodes end to end, with real processes: a server, an agent whose server URL points at a
// closed port (it never connects), and the CLI carrying bundles both ways — the desired state and a tar
// template in through the agent's loopback API, status and history out to the server. Then a bundle
// imported while a live sync delivers the same revisions: nothing is done twice.
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addNode, removeNode } from '../../server/nodes.ts';
import { buildRootfs } from '../../fixtures/rootfs/build.ts';
import { destroySystems, spawnAgent, type TestAgent } from '../helpers/agent.ts';
import { eventually } from '../helpers/wait.ts';
import { CLI, call, ownUserDocReadable, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';

const run = promisify(execFile);
if (process.getuid?.() !== 0) throw new Error('the agent tests need root (real mounts and namespaces); run them as root');

let s: TestServer;
const node = uniq('gap');
const liveNode = uniq('gap-live');
const base = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-bundle-agent-'));
const dataDir = join(base, 'node');
const liveDir = join(base, 'live');
const agents: TestAgent[] = [];
let agent: TestAgent;
let conn: string[] = [];

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test.before(async () => {
  s = await startServer();
  conn = ['--url', s.url, '--user', 'admin', '--password', s.adminPassword];
  // A tar template made from the fixture rootfs: its attachment travels in the bundle.
  const root = await buildRootfs(join(base, 'rootfs'));
  const tarball = join(base, 'rootfs.tar');
  execFileSync('tar', ['-C', root, '-cf', tarball, '.']);
  const bytes = readFileSync(tarball);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await s.admin.use('anybios').insert({ _id: 'template:gap-tiny', type: 'template', name: 'gap-tiny', source: 'tar', sha256, _attachments: { 'rootfs.tar': { content_type: 'application/x-tar', data: bytes.toString('base64') } } } as never).catch(() => {});
  await s.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never).catch(() => {});
  const cred = await addNode(s.admin, node);
  // The server URL is a port nobody listens on: this node never reaches a server.
  const cfg = join(base, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: `http://127.0.0.1:${await closedPort()}`, node, user: cred.user, password: cred.password }), { mode: 0o600 });
  agent = spawnAgent(cfg, dataDir, ['--full-pass', '2', '--heartbeat', '2', '--watchdog', '2']);
  agents.push(agent);
  await eventually('agent ready', async () => agent.output(), (o) => o.includes('anybios agent ready'), { ms: 30_000 });
});

test.after.always(async () => {
  for (const a of agents) await a.stop().catch(() => {});
  await destroySystems(dataDir).catch(() => {});
  await destroySystems(liveDir).catch(() => {});
  if (s) {
    await removeNode(s.admin, node).catch(() => {});
    await removeNode(s.admin, liveNode).catch(() => {});
    await s.admin.use('anybios').get('template:gap-tiny').then((d) => s.admin.use('anybios').destroy(d._id, d._rev)).catch(() => {});
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(base, { recursive: true, force: true });
});

const ctx = () => agents.map((a) => a.output()).join('\n---\n');
const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 30_000) => eventually(what, fn, pred, { ms, context: ctx });
const sleeper = (tag: string) => ['/bin/sh', '-c', `echo ${tag} > /marker; trap 'exit 0' TERM; while :; do sleep 1; done`];
const spec = (name: string, template: string, command: string[], extra: object = {}) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template, state: 'running', command, network: 'none', ...extra });

async function putSpec(n: string, doc: Record<string, unknown>): Promise<string> {
  const cur = await call(s.couchUrl, `/anybios-node-${n}/${doc._id}`, { auth: s.adminAuth });
  const r = await call(s.couchUrl, `/anybios-node-${n}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
  if (r.status !== 201) throw new Error(r.text);
  return r.body.rev;
}
const serverDoc = async (n: string, id: string) => {
  const r = await call(s.couchUrl, `/anybios-node-${n}/${id}?conflicts=true`, { auth: s.adminAuth });
  return r.status === 200 ? r.body : null;
};

async function localGet(dir: string, name: string): Promise<any> {
  const { url, token } = JSON.parse(readFileSync(join(dir, 'agent', 'local.json'), 'utf8'));
  const r = await call(url, `/systems/${name}`, { headers: { Authorization: `Bearer ${token}` } });
  return r.status === 200 ? r.body : null;
}

const cli = async (args: string[]) => {
  try {
    const r = await run(process.execPath, [CLI, ...args]);
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, out: e.stdout ?? '', err: e.stderr ?? '' };
  }
};
const checkpointOf = (out: string) => /checkpoint: (cp1\.\S+)/.exec(out)![1];

let serverCheckpoint = '';

test.serial('a node that never connects runs what the server says, by bundle, and its status with history comes back by bundle', async (t) => {
  const rev = await putSpec(node, spec('app1', 'gap-tiny', sleeper('one')));
  const file = join(base, 'to-node.bundle');
  const ex = await cli(['export', '--node', node, '-o', file, ...conn]);
  t.is(ex.code, 0, ex.err);
  serverCheckpoint = checkpointOf(ex.out);
  const im = await cli(['import', file, '--data', dataDir, '--json']);
  t.is(im.code, 0, im.err);
  const report = JSON.parse(im.out);
  t.is(report.via, 'agent', 'the running agent took the upload through its loopback API');
  t.true(report.written >= 2, 'the spec and the template');
  const st = await until('app1 running on the node', () => localGet(dataDir, 'app1'), (x) => x?.status?.phase === 'running' && x.status.observedRev === rev);
  t.is(readFileSync(join(dataDir, 'systems', 'app1', 'upper', 'marker'), 'utf8').trim(), 'one');
  t.regex(agent.output(), /ECONNREFUSED|fetch failed/, 'the agent never reached a server');
  t.notRegex(agent.output(), /sync: restarting replication \(watchdog: the server has changes/);

  // The way back: the node's bundle, imported on the server.
  const back = join(base, 'from-node.bundle');
  const ex2 = await cli(['export', '--data', dataDir, '-o', back]);
  t.is(ex2.code, 0, ex2.err);
  const im2 = await cli(['import', back, ...conn]);
  t.is(im2.code, 0, im2.err);
  t.regex(im2.out, new RegExp(`next: anybios export --node ${node} --since cp1`), 'the server is told which of its bundles the node has');
  const onServer = await serverDoc(node, 'status:app1');
  t.is(onServer.phase, 'running');
  t.is(onServer.pid, st.status.pid);
  t.true(onServer.history.some((h: { phase: string }) => h.phase === 'running'));
  t.truthy(await serverDoc(node, `node:${node}`), 'the heartbeat came back too');
  // and the fleet API shows the history
  const rows = await call(s.url, `/api/nodes/${node}/systems`, { auth: s.adminAuth });
  await until('fleet index has the history', async () => (await call(s.url, `/api/nodes/${node}/systems`, { auth: s.adminAuth })).body, (b) => b?.[0]?.history?.length > 0);
  t.is(rows.status, 200);
});

test.serial('a week offline: the next bundle carries only the change; the history says what happened meanwhile', async (t) => {
  const rev = await putSpec(node, { ...(await serverDoc(node, 'system:app1')), state: 'stopped' });
  const file = join(base, 'delta.bundle');
  const ex = await cli(['export', '--node', node, '--since', serverCheckpoint, '-o', file, '--json', ...conn]);
  t.is(ex.code, 0, ex.err);
  const rep = JSON.parse(ex.out);
  t.is(rep.docs, 1, 'only the changed spec');
  t.is(rep.blobs, 0, 'the template is not carried again');
  t.is((await cli(['import', file, '--data', dataDir])).code, 0);
  await until('app1 stopped', () => localGet(dataDir, 'app1'), (x) => x?.status?.phase === 'stopped' && x.status.observedRev === rev);
  const back = join(base, 'from-node-2.bundle');
  t.is((await cli(['export', '--data', dataDir, '-o', back])).code, 0);
  t.is((await cli(['import', back, ...conn])).code, 0);
  const st = await serverDoc(node, 'status:app1');
  t.is(st.phase, 'stopped');
  const phases = st.history.map((h: { phase: string }) => h.phase);
  t.deepEqual(phases.slice(-2), ['running', 'stopped'], JSON.stringify(st.history));
  const get = await cli(['get', 'app1', '--node', node, ...conn]);
  t.regex(get.out, /# history:\n(#   \S+ \w+.*\n)*#   \S+ running.*\n#   \S+ stopped/);
});

test.serial('refused by the device with a precise error, nothing changed: altered, cut short, for another node', async (t) => {
  const before = await localGet(dataDir, 'app1');
  t.is(before.status.phase, 'stopped');
  const file = join(base, 'full.bundle');
  t.is((await cli(['export', '--node', node, '-o', file, ...conn])).code, 0);
  const bytes = readFileSync(file);
  const altered = Buffer.from(bytes);
  const at = bytes.indexOf('"stopped"');
  altered.write('"running"', at, 'latin1');
  writeFileSync(join(base, 'altered.bundle'), altered);
  const a = await cli(['import', join(base, 'altered.bundle'), '--data', dataDir]);
  t.is(a.code, 1);
  t.regex(a.err, /anybios: BUNDLE_MAC_MISMATCH: the MAC does not match/);
  writeFileSync(join(base, 'cut.bundle'), bytes.subarray(0, Math.floor(bytes.length / 2)));
  const c = await cli(['import', join(base, 'cut.bundle'), '--data', dataDir]);
  t.regex(c.err, /anybios: BUNDLE_TRUNCATED: the file ends at byte \d+ inside blob/);
  const otherNode = uniq('gap-other');
  await addNode(s.admin, otherNode);
  try {
    const o = join(base, 'other.bundle');
    t.is((await cli(['export', '--node', otherNode, '-o', o, ...conn])).code, 0);
    const w = await cli(['import', o, '--data', dataDir]);
    t.regex(w.err, new RegExp(`anybios: BUNDLE_WRONG_NODE: this bundle is for node ${otherNode}; this device is node ${node}`));
  } finally {
    await removeNode(s.admin, otherNode).catch(() => {});
  }
  const after = await localGet(dataDir, 'app1');
  t.is(after.spec._rev, before.spec._rev, 'the spec is untouched');
  t.is(after.status.phase, 'stopped', agent.output().slice(-3000));
  // no spooled upload is left behind
  t.deepEqual(readdirUploads(), []);
});

function readdirUploads(): string[] {
  return readdirSync(join(dataDir, 'agent')).filter((f) => f.startsWith('upload-'));
}

test.serial('a bundle imported while a live sync delivers the same revisions: started once, no conflict', async (t) => {
  const cred = await addNode(s.admin, liveNode);
  const cfg = join(base, 'live.json');
  writeFileSync(cfg, JSON.stringify({ server: s.url, node: liveNode, user: cred.user, password: cred.password }), { mode: 0o600 });
  const live = spawnAgent(cfg, liveDir, ['--full-pass', '2', '--heartbeat', '5', '--watchdog', '2']);
  agents.push(live);
  await until('live agent ready', async () => live.output(), (o) => o.includes('anybios agent ready'));
  // Not on Apache CouchDB's stock admin-only _users: the node cannot read its user document there (docs/production.md).
  if (await ownUserDocReadable(s, 'node')) await until('the online agent learnt its bundle key parameters', async () => live.output(), (o) => o.includes('bundle key parameters learnt from the server'));
  const rev = await putSpec(liveNode, spec('both', 'host', sleeper('b')));
  const file = join(base, 'live.bundle');
  t.is((await cli(['export', '--node', liveNode, '-o', file, ...conn])).code, 0);
  const im = await cli(['import', file, '--data', liveDir, '--json']);
  t.is(im.code, 0, im.err);
  const st = await until('both running', () => serverDoc(liveNode, 'status:both'), (x) => x?.phase === 'running' && x.observedRev === rev);
  await new Promise((r) => setTimeout(r, 5000)); // a few passes and sync rounds
  const later = await serverDoc(liveNode, 'status:both');
  t.is(later.pid, st.pid, 'the same process: not restarted');
  t.is(later.restarts, 0);
  t.is((live.output().match(/both: started \(supervisor/g) ?? []).length, 1, live.output().slice(-2000));
  t.falsy((await serverDoc(liveNode, 'system:both'))._conflicts, 'one revision tree, no conflict');
  t.falsy(later._conflicts);
});
