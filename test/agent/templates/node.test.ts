// Templates on a node, end to end with real processes: a plain `server` (no `up` seed) + `node add` +
// an agent reaching the server through a TCP proxy. `host` works without a catalog document; a
// template created after the agent started reaches it without waiting for a back-off, also when it was
// missing while the server was away; a rootfs pull cut halfway resumes and is verified by sha256; an
// unused template is collected after its grace; a pull that would fill the disk is refused up front.
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildRootfs } from '../../../fixtures/rootfs/build.ts';
import { addNode, removeNode } from '../../../server/nodes.ts';
import { destroySystems, spawnAgent, type TestAgent } from '../../helpers/agent.ts';
import { eventually } from '../../helpers/wait.ts';
import { CLI, call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.ts';

const run = promisify(execFile);
if (process.getuid?.() !== 0) throw new Error('the agent tests need root (real mounts and namespaces); run them as root');

let s: TestServer;
let proxy: TcpProxy;
let agent: TestAgent | null = null;
const node = uniq('tpl');
const base = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-templates-test-'));
const dataDir = join(base, 'node');
let configFile = '';
const made: string[] = [];

function startAgent(extra: string[] = []): void {
  agent = spawnAgent(configFile, dataDir, ['--full-pass', '2', '--heartbeat', '2', '--watchdog', '2', '--template-grace', '1', ...extra]);
}
const agentOut = () => agent?.output() ?? '';
async function killAgent(): Promise<void> {
  const a = agent;
  agent = null;
  await a?.stop();
}

test.before(async () => {
  // `anybios server`: no demo seed, so no template:host in the catalog. Embedded also with COUCH_URL: these
  // tests write the catalog's template:host, which on a shared CouchDB would change every other server's
  // templates (agents pulling from an Apache CouchDB catalog: test/agent/templates/pull.test.ts).
  s = await startServer({ embedded: true });
  const cred = await addNode(s.admin, node);
  proxy = await startTcpProxy(Number(new URL(s.url).port));
  configFile = join(base, 'enrol.json');
  writeFileSync(configFile, JSON.stringify({ server: proxy.url, node, user: cred.user, password: cred.password }), { mode: 0o600 });
  startAgent();
  await eventually('agent ready', async () => agentOut(), (o) => o.includes('anybios agent ready'), { ms: 30_000 });
});

test.after.always(async () => {
  await killAgent();
  await destroySystems(dataDir);
  await proxy?.close();
  if (s) {
    for (const name of made) {
      const cur = await call(s.couchUrl, `/anybios/template:${name}`, { auth: s.adminAuth });
      if (cur.status === 200) await call(s.couchUrl, `/anybios/template:${name}?rev=${cur.body._rev}`, { method: 'DELETE', auth: s.adminAuth });
    }
    await removeNode(s.admin, node).catch(() => {});
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(base, { recursive: true, force: true });
});

const db = `/anybios-node-${node}`;
const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 30_000) => eventually(what, fn, pred, { ms, context: agentOut });
const getDoc = async (path: string) => {
  const r = await call(s.couchUrl, path, { auth: s.adminAuth });
  return r.status === 200 ? r.body : null;
};
const statusOf = (name: string) => getDoc(`${db}/status:${name}`);
async function putDoc(path: string, doc: Record<string, unknown>): Promise<string> {
  const cur = await getDoc(path);
  const r = await call(s.couchUrl, path, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur ? { _rev: cur._rev } : {}) } });
  if (r.status !== 201) throw new Error(`${path}: ${r.text}`);
  return r.body.rev;
}
async function deleteDoc(path: string): Promise<void> {
  const cur = await getDoc(path);
  if (cur) await call(s.couchUrl, `${path}?rev=${cur._rev}`, { method: 'DELETE', auth: s.adminAuth });
}
const sleeper = ['/bin/sh', '-c', "trap 'exit 0' TERM; while :; do sleep 1; done"];
const system = (name: string, template: string) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template, state: 'running', command: sleeper, network: 'none' });

/** The agent's loopback status (templates: follow state, pulls, disk). */
async function localStatus(): Promise<any> {
  const { url, token } = JSON.parse(readFileSync(join(dataDir, 'agent', 'local.json'), 'utf8'));
  return (await fetch(`${url}/status`, { headers: { Authorization: `Bearer ${token}` } })).json();
}

/** A rootfs directory (the fixture, plus `padBytes` of random data so pulls take a while). */
async function rootfsDir(tag: string, padBytes = 0): Promise<string> {
  const dir = join(base, `rootfs-${tag}`);
  await buildRootfs(dir);
  writeFileSync(join(dir, 'tag'), tag);
  if (padBytes) writeFileSync(join(dir, 'pad'), randomBytes(padBytes));
  return dir;
}
async function tarball(tag: string): Promise<{ file: string; sha256: string; bytes: Buffer }> {
  const dir = await rootfsDir(tag);
  const file = join(base, `${tag}.tar`);
  await run('tar', ['--numeric-owner', '-C', dir, '-cf', file, '.']);
  const bytes = readFileSync(file);
  return { file, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}
async function putTarTemplate(name: string, t: { sha256: string; bytes: Buffer }): Promise<void> {
  made.push(name);
  const rev = await putDoc(`/anybios/template:${name}`, { type: 'template', name, source: 'tar', sha256: t.sha256 });
  const r = await fetch(`${s.couchUrl}/anybios/template:${name}/rootfs.tar?rev=${rev}`, { method: 'PUT', headers: { Authorization: s.adminAuth, 'Content-Type': 'application/x-tar' }, body: t.bytes });
  if (r.status !== 201) throw new Error(await r.text());
}

test.serial("the README's example system runs on a plain server + node add + agent: host needs no catalog document", async (t) => {
  t.is(await getDoc('/anybios/template:host'), null, 'a plain server has no template:host');
  const rev = await putDoc(`${db}/system:web`, system('web', 'host'));
  const st = await until('web running', () => statusOf('web'), (x) => x?.phase === 'running' && x.observedRev === rev);
  t.true(st.pid > 0);
  const nodeDoc = await until('node doc says host is allowed', () => getDoc(`${db}/node:${node}`), (x) => x?.capabilities?.hostTemplate === true);
  t.true(nodeDoc.capabilities.hostTemplate);
});

test.serial('a template created after the agent started reaches it at once, not after a back-off', async (t) => {
  // The system first: its template is missing (terminal for this revision, not retried hot).
  await putDoc(`${db}/system:late`, system('late', 'late'));
  await until('late fails: template missing', () => statusOf('late'), (x) => x?.code === 'TEMPLATE_MISSING');
  const tar = await tarball('late');
  const before = (await localStatus()).templates.follow.received;
  const t0 = Date.now();
  made.push('late');
  await putDoc('/anybios/template:late', { type: 'template', name: 'late', source: 'tar', sha256: tar.sha256 });
  await eventually('the document reaches the agent', async () => (await localStatus()).templates.follow.received, (n) => n > before, { ms: 20_000, interval: 10, context: agentOut });
  const arrived = Date.now() - t0;
  t.log(`template document on the node ${arrived} ms after it was written on the server`);
  // The old pull retried every 60 s; a live feed brings it in well under that (loosely: 5 s).
  t.true(arrived < 5000, `arrived after ${arrived} ms`);
  // Without its rootfs yet the system waits (pending), then runs once the attachment is there.
  const r = await fetch(`${s.couchUrl}/anybios/template:late/rootfs.tar?rev=${(await getDoc('/anybios/template:late'))._rev}`, { method: 'PUT', headers: { Authorization: s.adminAuth, 'Content-Type': 'application/x-tar' }, body: tar.bytes });
  t.is(r.status, 201);
  await until('late running', () => statusOf('late'), (x) => x?.phase === 'running');
  t.true(existsSync(join(dataDir, 'templates', tar.sha256)), 'unpacked under its verified sha256');
});

test.serial('a template missing while the server was away is fetched as soon as it is back', async (t) => {
  const tar = await tarball('missing');
  await proxy.down();
  // On the device, offline: a system on a template this node has never seen.
  const file = join(base, 'm.json');
  writeFileSync(file, JSON.stringify(system('m', 'missing')));
  await run(process.execPath, [CLI, 'local', 'apply', '-f', file, '--data', dataDir]);
  await until('the follower tried and is offline', async () => (await localStatus()).templates.follow.state, (x) => x === 'offline');
  await putTarTemplate('missing', tar); // on the server, meanwhile
  await new Promise((r) => setTimeout(r, 2000));
  const t0 = Date.now();
  await proxy.up();
  await until('m running', () => statusOf('m'), (x) => x?.phase === 'running');
  const took = Date.now() - t0;
  t.log(`missing template pulled and system running ${took} ms after the link came back`);
  t.true(took < 20_000, `took ${took} ms`);
});

test.serial('a rootfs pull cut at 50 % resumes where it broke and is verified by sha256', async (t) => {
  const dir = await rootfsDir('big', 24 * 1024 * 1024);
  proxy.cutAfter(14 * 1024 * 1024); // about half of the ~28 MB tarball (the connection may have carried a little before)
  made.push('big');
  const added = await run(process.execPath, [CLI, 'template', 'add', 'big', '--from', dir, '--url', s.url, '--password', s.adminPassword]);
  const sha = /sha256 ([0-9a-f]{64})/.exec(added.stdout)?.[1];
  t.truthy(sha, added.stdout);
  await putDoc(`${db}/system:big`, system('big', 'big'));
  await until('the download was cut', async () => proxy.cuts, (n) => n >= 1);
  proxy.cutAfter(null);
  const st = await until('big running', () => statusOf('big'), (x) => x?.phase === 'running', 60_000);
  t.true(st.pid > 0);
  const resumed = /template big: resuming the pull at ([\d.]+) MB of ([\d.]+) MB/.exec(agentOut());
  t.truthy(resumed, 'the agent resumed the pull');
  t.true(Number(resumed![1]) > 5 && Number(resumed![1]) < Number(resumed![2]), `resumed at ${resumed![1]} of ${resumed![2]} MB`);
  t.regex(agentOut(), /template big: pulled [\d.]+ MB \(resumed at [\d.]+ MB\) in [\d.]+ s, sha256 verified/);
  t.true(existsSync(join(dataDir, 'templates', sha!)));
  const ls = await localStatus();
  t.true(ls.templates.resumed >= 1);
  t.true(ls.templates.disk.templatesBytes > 24 * 1024 * 1024, 'disk use of templates is reported');
  t.true(ls.templates.disk.layersBytes > 0);
});

test.serial('a template no system uses any more is removed after its grace period', async (t) => {
  const sha = (await getDoc('/anybios/template:late')).sha256;
  t.true(existsSync(join(dataDir, 'templates', sha)));
  await deleteDoc(`${db}/system:late`);
  await until('late destroyed', () => statusOf('late'), (x) => x === null);
  await until('its template collected', async () => existsSync(join(dataDir, 'templates', sha)), (e) => !e);
  t.regex(agentOut(), new RegExp(`templates: removed ${sha.slice(0, 12)}`));
  // A template still in use stays.
  t.true(existsSync(join(dataDir, 'templates', (await getDoc('/anybios/template:big')).sha256)));
});

test.serial('template:host with enabled: false forbids host everywhere; removing it allows it again', async (t) => {
  made.push('host');
  await putDoc('/anybios/template:host', { type: 'template', name: 'host', source: 'host', enabled: false });
  const st = await until('web stopped: disabled', () => statusOf('web'), (x) => x?.code === 'TEMPLATE_DISABLED');
  t.is(st.phase, 'failed');
  t.is(st.pid, null);
  // host may not be redefined as another kind of template
  const bad = await call(s.couchUrl, '/anybios/template:host', { method: 'PUT', auth: s.adminAuth, json: { type: 'template', name: 'host', source: 'tar', sha256: 'a'.repeat(64), _rev: (await getDoc('/anybios/template:host'))._rev } });
  t.is(bad.status, 403, bad.text);
  await deleteDoc('/anybios/template:host');
  await until('web running again', () => statusOf('web'), (x) => x?.phase === 'running');
});

test.serial('a pull that would fill the disk is refused before it starts; host denied by the agent option', async (t) => {
  await killAgent();
  startAgent(['--disk-reserve', '1000000000', '--host-template', 'deny']); // keep 1 PB free: nothing fits
  const tar = await tarball('huge');
  await putTarTemplate('huge', tar);
  await putDoc(`${db}/system:hg`, system('hg', 'huge'));
  const st = await until('hg refused', () => statusOf('hg'), (x) => x?.code === 'TEMPLATE_NO_SPACE');
  t.is(st.phase, 'failed');
  t.regex(st.message, /refused before pulling/);
  const pulls = join(dataDir, 'agent', 'pulls');
  t.false(readdirSync(pulls).some((f) => f.startsWith(tar.sha256) && f.endsWith('.part')), 'not a byte was fetched');
  t.false(existsSync(join(pulls, `${tar.sha256}.tar`)));
  // The same agent does not allow host: the README system stops, and the node document says so.
  const web = await until('web denied', () => statusOf('web'), (x) => x?.code === 'TEMPLATE_HOST_DENIED');
  t.is(web.pid, null);
  await until('node doc says host is denied', () => getDoc(`${db}/node:${node}`), (x) => x?.capabilities?.hostTemplate === false);
});
