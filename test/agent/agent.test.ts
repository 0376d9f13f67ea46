// The agent end to end, with real processes, real HTTP and real mounts: a server process, an agent
// process reaching it through a TCP proxy (so the link can be cut or frozen while the server stays
// editable), and systems on the host template.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addNode, removeNode } from '../../server/nodes.ts';
import { destroySystems, spawnAgent, type TestAgent } from '../helpers/agent.ts';
import { eventually } from '../helpers/wait.ts';
import { CLI, basic, call, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const run = promisify(execFile);
if (process.getuid?.() !== 0) throw new Error('the agent tests need root (real mounts and namespaces); run them as root');

let s: TestServer;
let proxy: TcpProxy;
let agent: TestAgent | null = null;
const node = uniq('ag');
const other = uniq('ag-other');
const dataDir = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-agent-test-'));
let nodeAuth = '';
let configFile = '';

function startAgent(): void {
  agent = spawnAgent(configFile, dataDir, ['--full-pass', '2', '--heartbeat', '5', '--watchdog', '2']);
}
const agentOut = () => agent?.output() ?? '';

async function killAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const a = agent;
  agent = null;
  await a?.stop(signal);
}

test.before(async () => {
  s = await startServer();
  await s.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never).catch(() => {});
  const cred = await addNode(s.admin, node);
  await addNode(s.admin, other);
  nodeAuth = basic(cred.user, cred.password);
  proxy = await startTcpProxy(Number(new URL(s.url).port));
  configFile = join(dataDir, 'enrol.json');
  writeFileSync(configFile, JSON.stringify({ server: proxy.url, node, user: cred.user, password: cred.password }), { mode: 0o600 });
  startAgent();
});

test.after.always(async () => {
  await killAgent();
  // Systems outlive the agent by design: remove what the tests made, then check no mount is left.
  await destroySystems(dataDir);
  await proxy?.close();
  if (s) {
    await removeNode(s.admin, node).catch(() => {});
    await removeNode(s.admin, other).catch(() => {});
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const db = `/anybios-node-${node}`;
const spec = (name: string, command: string[], extra: object = {}) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'host', state: 'running', command, network: 'none', ...extra });
const sleeper = (tag: string) => ['/bin/sh', '-c', `echo ${tag} > /marker; trap 'exit 0' TERM; while :; do sleep 1; done`];

async function getDoc(id: string): Promise<any> {
  const r = await call(s.couchUrl, `${db}/${id}`, { auth: s.adminAuth });
  return r.status === 200 ? r.body : null;
}

async function putSpec(doc: Record<string, unknown>): Promise<string> {
  const cur = await getDoc(String(doc._id));
  const r = await call(s.couchUrl, `${db}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur ? { _rev: cur._rev } : {}) } });
  if (r.status !== 201) throw new Error(r.text);
  return r.body.rev;
}

const until = <T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 20_000) => eventually(what, fn, pred, { ms, context: agentOut });

const statusOf = (name: string) => getDoc(`status:${name}`);
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const marker = (name: string) => readFileSync(join(dataDir, 'systems', name, 'upper', 'marker'), 'utf8').trim();
/** `running` means the system's pid 1 started, not that its first line ran: the marker follows moments later. */
const markerBecomes = (name: string, want: string) => until(`${name} marker ${want}`, async () => { try { return marker(name); } catch { return ''; } }, (m) => m === want, 5000);

test.serial('spec on the server → running → status on the server; stop; new command → restarted; delete → cleaned', async (t) => {
  const rev1 = await putSpec(spec('web', sleeper('v1')));
  const st1 = await until('web running', () => statusOf('web'), (x) => x?.phase === 'running' && x.observedRev === rev1);
  t.true(alive(st1.pid));
  t.is(await markerBecomes('web', 'v1'), 'v1');
  // the node's heartbeat is there too
  const nodeDoc = await until('heartbeat', () => getDoc(`node:${node}`), (x) => !!x?.heartbeat);
  t.is(nodeDoc.name, node);

  const rev2 = await putSpec({ ...(await getDoc('system:web')), state: 'stopped' });
  await until('web stopped', () => statusOf('web'), (x) => x?.phase === 'stopped' && x.observedRev === rev2);
  await until('process gone', async () => alive(st1.pid), (a) => !a, 10_000);

  const rev3 = await putSpec({ ...(await getDoc('system:web')), state: 'running', command: sleeper('v2') });
  const st3 = await until('web v2 running', () => statusOf('web'), (x) => x?.phase === 'running' && x.observedRev === rev3);
  t.not(st3.pid, st1.pid);
  t.is(await markerBecomes('web', 'v2'), 'v2');

  // a cosmetic change is adopted without a restart
  const rev4 = await putSpec({ ...(await getDoc('system:web')), labels: { tier: 'front' } });
  const st4 = await until('web adopted', () => statusOf('web'), (x) => x?.observedRev === rev4);
  t.is(st4.pid, st3.pid);

  const cur = await getDoc('system:web');
  t.is((await call(s.couchUrl, `${db}/system:web?rev=${cur._rev}`, { method: 'DELETE', auth: s.adminAuth })).status, 200);
  await until('status deleted', () => statusOf('web'), (x) => x === null);
  await until('layer removed', async () => existsSync(join(dataDir, 'systems', 'web')), (e) => !e, 10_000);
  t.false(alive(st3.pid));
});

test.serial('agent killed with SIGKILL and restarted: running systems are adopted, not restarted', async (t) => {
  const rev = await putSpec(spec('keep', sleeper('k')));
  const before = await until('keep running', () => statusOf('keep'), (x) => x?.phase === 'running' && x.observedRev === rev);
  await killAgent('SIGKILL');
  t.true(alive(before.pid), 'the system outlives its agent');
  startAgent();
  await until('agent back', async () => agentOut(), (o) => o.includes('anybios agent ready'));
  // a few passes later: same process, same restart count
  await new Promise((r) => setTimeout(r, 5000));
  const after = await statusOf('keep');
  t.is(after.pid, before.pid);
  t.is(after.restarts, before.restarts);
  t.true(alive(before.pid));
  t.notRegex(agentOut(), /keep: started/);
});

test.serial('link down: an edit on the device and one on the server both converge when it returns', async (t) => {
  const revA = await putSpec(spec('dev', sleeper('a1')));
  const revB = await putSpec(spec('srv', sleeper('b1')));
  await until('both running', async () => [await statusOf('dev'), await statusOf('srv')], ([a, b]) => a?.observedRev === revA && b?.observedRev === revB && a.phase === 'running' && b.phase === 'running');
  await proxy.down();
  // On the device (through the agent's loopback API, as `anybios local apply` does)
  const file = join(dataDir, 'dev.json');
  const current = JSON.parse((await run(process.execPath, [CLI, 'local', 'get', 'dev', '--data', dataDir])).stdout).spec;
  writeFileSync(file, JSON.stringify({ ...current, command: sleeper('a2') }));
  const applied = await run(process.execPath, [CLI, 'local', 'apply', '-f', file, '--data', dataDir]);
  t.regex(applied.stdout, /system dev: updated locally/);
  await until('device edit applied offline', async () => { try { return marker('dev'); } catch { return ''; } }, (m) => m === 'a2');
  // On the server, meanwhile
  const revB2 = await putSpec({ ...(await getDoc('system:srv')), command: sleeper('b2') });
  await new Promise((r) => setTimeout(r, 1000));
  t.is(marker('srv'), 'b1', 'the server edit cannot arrive while the link is down');
  await proxy.up();
  await until('server edit applied', () => statusOf('srv'), (x) => x?.observedRev === revB2 && x.phase === 'running', 40_000);
  t.is(await markerBecomes('srv', 'b2'), 'b2');
  const devOnServer = await until('device edit on the server', () => getDoc('system:dev'), (x) => x?.command?.[2]?.includes('a2'), 40_000);
  await until('device status current on the server', () => statusOf('dev'), (x) => x?.observedRev === devOnServer._rev, 40_000);
  t.falsy(devOnServer._conflicts);
});

test.serial("the node's credentials cannot read or write another node's database", async (t) => {
  t.is((await call(s.couchUrl, `/anybios-node-${other}/_all_docs`, { auth: nodeAuth })).status, 403);
  t.is((await call(s.couchUrl, `/anybios-node-${other}/system:x`, { method: 'PUT', auth: nodeAuth, json: spec('x', ['/bin/true']) })).status, 403);
  t.is((await call(s.couchUrl, `${db}/_all_docs`, { auth: nodeAuth })).status, 200);
});

test.serial('a stalled replication is noticed by the watchdog and restarted', async (t) => {
  const watchdogRestarts = () => (agentOut().match(/restarting replication \(watchdog/g) ?? []).length;
  proxy.freeze(); // every open connection hangs silently; new ones work
  const before = watchdogRestarts();
  const rev = await putSpec(spec('late', sleeper('l')));
  await until('late running', () => statusOf('late'), (x) => x?.observedRev === rev && x.phase === 'running', 40_000);
  t.true(watchdogRestarts() > before, `the watchdog restarted the replication:\n${agentOut().slice(-2000)}`);
});
