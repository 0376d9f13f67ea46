// bench/agent: the node agent on a small device (issue 15). In one run, side by side:
// - a bare `node -e` process (the floor of any node program),
// - a bare PouchDB live sync of a node database (bench/bare-sync.mjs: replication alone, answering
//   each edit with a `running` status — two replication hops, no runtime),
// - the agent as devices run it (bin/anybios-agent), with one app system,
// - optionally the agent of another checkout (env BEFORE=DIR, e.g. the commit before a change).
// Measured: RSS idle; wake-ups per minute while idle (voluntary context switches of all threads,
// /proc/<pid>/task/*/status, over the idle window); edit → running on the server p50/p99
// (an edit PUT on the server until its status document there says running at that revision); RSS
// after the edits' churn. The edits are interleaved between the processes so drift hits all alike.
// Usage: node --import tsx bench/agent.ts [edits=1000] [idleSeconds=60]
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { CLI, call, removeDataDir, startServer } from '../test/helpers/server.ts';
import { destroySystems } from '../test/helpers/agent.ts';
import { guardBench, percentile, report, statusRunningAt, timeIt, type Row } from './lib.ts';

const EDITS = Number(process.argv[2] ?? 1000);
const IDLE_S = Number(process.argv[3] ?? 60);
const BEFORE = process.env.BEFORE;
if (process.getuid?.() !== 0) throw new Error('bench/agent starts a real system: run it as root');

const here = dirname(fileURLToPath(import.meta.url));
const s = await startServer();
const work = mkdtempSync(join('/var/tmp', 'anybios-bench-agent-'));
const procs: ChildProcess[] = [];
const agentDirs: string[] = [];

const guard = guardBench('agent', async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of agentDirs) await destroySystems(d).catch(() => {});
  await s.stop();
  removeDataDir(s.dataDir);
  rmSync(work, { recursive: true, force: true });
});

/** Spawned with a stdin pipe: if this bench dies, even by SIGKILL, the child sees EOF and stops. */
function start(cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1', ...env } });
  let out = '';
  p.stdout!.on('data', (d) => { out = (out + d).slice(-20_000); });
  p.stderr!.on('data', (d) => { out = (out + d).slice(-20_000); });
  p.on('exit', (code, sig) => { if (!stopping) console.error(`${cmd} ${args[0] ?? ''} exited (${code ?? sig}):\n${out.slice(-3000)}`); });
  procs.push(p);
  return p;
}
let stopping = false;

const status = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8');
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(status(pid))?.[1] ?? NaN) / 1024;
/**
 * Wake-ups of all threads: each voluntary context switch is a sleep, ended by a wake-up. (Involuntary
 * ones are preemptions of a thread already running: CPU contention, not wake-ups.)
 */
function wakeups(pid: number): number {
  let n = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      n += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return n;
}

async function put(db: string, doc: Record<string, unknown>): Promise<string> {
  const cur = await call(s.couchUrl, `/${db}/${doc._id}`, { auth: s.adminAuth });
  const r = await call(s.couchUrl, `/${db}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
  if (r.status !== 201) throw new Error(`PUT ${db}/${doc._id}: ${r.status} ${r.text}`);
  return r.body.rev;
}
const runningAt = (db: string, name: string, rev: string) => statusRunningAt((path) => call(s.couchUrl, path, { auth: s.adminAuth }), db, name, rev, 60_000);
const app = (name: string, tag: string) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; trap 'exit 0' TERM; while :; do sleep 5 & wait; done`] });

/** A checkout of another commit made runnable: its own node_modules of links (its own build cache). */
function runnableCheckout(dir: string): string {
  const nm = join(dir, 'node_modules');
  if (!existsSync(nm)) {
    mkdirSync(nm);
    const ours = join(here, '..', 'node_modules');
    for (const e of readdirSync(ours)) if (e !== '.cache') symlinkSync(join(ours, e), join(nm, e));
  }
  return join(dir, 'bin', 'anybios-agent');
}

interface Subject { label: string; proc: ChildProcess; db?: string; system?: string; times: number[]; idleRss?: number; wakeups?: number; churnRss?: number }

try {
  await s.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never);
  const subjects: Subject[] = [];
  // The bare node process.
  subjects.push({ label: 'node -e (bare)', proc: start(process.execPath, ['-e', "process.stdin.on('end', () => process.exit(0)).resume()"]), times: [] });
  // The bare PouchDB live sync.
  const bare = await addNode(s.admin, 'bare');
  subjects.push({ label: 'PouchDB live sync (bare)', proc: start(process.execPath, [join(here, 'bare-sync.mjs'), join(work, 'bare-db'), `${s.couchUrl}/${nodeDbName('bare')}`, bare.user], { BARE_SYNC_PASSWORD: bare.password }), db: nodeDbName('bare'), system: 'echo', times: [] });
  // The agents.
  const agents: [string, string][] = [['agent', join(dirname(CLI), 'anybios-agent')]];
  if (BEFORE) agents.push(['agent (BEFORE)', runnableCheckout(BEFORE)]);
  for (const [i, [label, cmd]] of agents.entries()) {
    const node = `a${i}`;
    const c = await addNode(s.admin, node);
    const dataDir = join(work, node);
    mkdirSync(dataDir, { recursive: true });
    agentDirs.push(dataDir);
    const cfg = join(dataDir, 'enrol.json');
    writeFileSync(cfg, JSON.stringify({ server: s.url, node, user: c.user, password: c.password }), { mode: 0o600 });
    subjects.push({ label, proc: start(cmd, ['--config', cfg, '--data', dataDir]), db: nodeDbName(node), system: 'edit', times: [] });
  }
  // Each replicating subject running its system once, then everyone idle.
  for (const x of subjects) if (x.db) await runningAt(x.db, x.system!, await put(x.db, app(x.system!, 'v0')));
  await new Promise((r) => setTimeout(r, 15_000));
  const c0 = subjects.map((x) => wakeups(x.proc.pid!));
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  for (const [i, x] of subjects.entries()) {
    x.wakeups = ((wakeups(x.proc.pid!) - c0[i]) * 60) / IDLE_S;
    x.idleRss = rssMiB(x.proc.pid!);
  }
  // Churn: EDITS edits each, interleaved.
  for (let i = 1; i <= EDITS; i++) {
    for (const x of subjects) if (x.db) x.times.push(await timeIt(async () => runningAt(x.db!, x.system!, await put(x.db!, app(x.system!, `v${i}`)))));
    if (i % 100 === 0) console.error(`  ${i}/${EDITS} edits`);
  }
  await new Promise((r) => setTimeout(r, 10_000));
  for (const x of subjects) x.churnRss = rssMiB(x.proc.pid!);

  const [node, sync, ...ags] = subjects;
  const rows: Row[] = [];
  for (const x of [node, sync]) {
    rows.push({ metric: `${x.label}: RSS idle`, value: x.idleRss!, unit: 'MiB' });
    if (x.db) rows.push({ metric: `${x.label}: RSS after ${EDITS} edits`, value: x.churnRss!, unit: 'MiB' });
    rows.push({ metric: `${x.label}: wake-ups idle`, value: x.wakeups!, unit: '/min' });
  }
  rows.push({ metric: `${sync.label}: edit → answered p50`, value: percentile(sync.times, 50), unit: 'ms' });
  rows.push({ metric: `${sync.label}: edit → answered p99`, value: percentile(sync.times, 99), unit: 'ms' });
  for (const a of ags) {
    rows.push(
      { metric: `${a.label}: RSS idle, 1 system`, value: a.idleRss!, unit: 'MiB', baseline: node.idleRss, note: 'goal ≤ 64 MiB; baseline: node -e' },
      { metric: `${a.label}: RSS idle ÷ bare sync`, value: a.idleRss!, unit: 'MiB', baseline: sync.idleRss },
      { metric: `${a.label}: RSS after ${EDITS} edits`, value: a.churnRss!, unit: 'MiB', baseline: sync.churnRss, note: 'goal ≤ 80 MiB; baseline: bare sync' },
      { metric: `${a.label}: wake-ups idle`, value: a.wakeups!, unit: '/min', baseline: sync.wakeups, note: 'baseline: bare sync' },
      { metric: `${a.label}: edit → running p50`, value: percentile(a.times, 50), unit: 'ms', baseline: percentile(sync.times, 50), note: 'goal ≤ 50 ms; baseline: bare sync answer' },
      { metric: `${a.label}: edit → running p99`, value: percentile(a.times, 99), unit: 'ms', baseline: percentile(sync.times, 99), note: 'goal ≤ 150 ms' },
    );
  }
  stopping = true;
  report('agent', rows, { edits: EDITS, idleSeconds: IDLE_S, before: BEFORE ?? null, node: process.version });
} finally {
  stopping = true;
  await guard.done();
}
