// bench/hostile: the server under a stolen node credential and anonymous callers (issue 10). Ten
// agents sync their nodes and an operator edits systems (edit → running on the server, as
// bench/converge measures it), first alone (baseline) and then, in the same run, while SLOW anonymous
// clients hold connections (slow headers, 1 MiB bodies trickled to /api and /db/_session) and a node
// credential sends oversized bodies (declared 40 MB, chunked 40 MB, 12 MB documents, a 50 MB
// attachment) as fast as it is answered. Reported as ratios to the baseline: edit → running p50/p99
// (goal p99 ≤ 2×) and the server's RSS (peak during the phase and after it).
// Each phase runs at least `edits` edits and at least 30 s; the attack starts 10 s before its phase.
// Usage (as root: real systems run): node --import tsx bench/hostile.ts [edits=100] [slow=500] [agents=10]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { CLI, basic, call, removeDataDir, startServer } from '../test/helpers/server.ts';
import { guardBench, statusRunningAt, percentile, report, timeIt, type Row } from './lib.ts';
import { docErrors } from '../ddocs/validate.ts';

const EDITS = Number(process.argv[2] ?? 100);
const SLOW = Number(process.argv[3] ?? 500);
const AGENTS = Number(process.argv[4] ?? 10);
/** Which attackers run (to see each one's share): HOSTILE_ATTACKS=slow,node (default both). */
const ATTACKS = (process.env.HOSTILE_ATTACKS ?? 'slow,node').split(',');
const MIN_PHASE_MS = 30_000;
if (process.getuid?.() !== 0) throw new Error('bench/hostile starts real systems: run it as root');

const s = await startServer();
const port = Number(new URL(s.url).port);
const work = mkdtempSync(join('/var/tmp', 'anybios-bench-hostile-'));
const agents: ChildProcess[] = [];
const nodes = Array.from({ length: AGENTS }, (_, i) => `h${i}`);
const stoppers: (() => void)[] = [];

const guard = guardBench('hostile', async () => {
  for (const stop of stoppers) stop();
  for (const p of agents) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  for (const n of nodes) {
    const rt = await createRuntime({ checkDoc: docErrors, dataDir: join(work, n) }).catch(() => null);
    for (const o of (await rt?.list().catch(() => [])) ?? []) await rt!.destroy(o.name).catch(() => {});
  }
  await s.stop();
  removeDataDir(s.dataDir);
  rmSync(work, { recursive: true, force: true });
});

const app = (name: string, tag: string) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; trap 'exit 0' TERM; while :; do sleep 5 & wait; done`] });

async function put(db: string, doc: Record<string, unknown>): Promise<string> {
  const cur = await call(s.couchUrl, `/${db}/${doc._id}`, { auth: s.adminAuth });
  const r = await call(s.couchUrl, `/${db}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
  if (r.status !== 201) throw new Error(`PUT ${doc._id}: ${r.status} ${r.text}`);
  return r.body.rev;
}

/** Resolves when `status:<name>` on the server says running at `rev`. */
const runningAt = (db: string, name: string, rev: string, timeoutMs = 120_000) => statusRunningAt((path) => call(s.couchUrl, path, { auth: s.adminAuth }), db, name, rev, timeoutMs);

function startAgent(node: string, password: string): ChildProcess {
  const dataDir = join(work, node);
  mkdirSync(dataDir, { recursive: true });
  const cfg = join(dataDir, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: s.url, node, user: `node-${node}`, password }), { mode: 0o600 });
  // A stdin pipe: if this bench dies (even by SIGKILL) the agent sees EOF and stops.
  const p = spawn(join(dirname(CLI), 'anybios-agent'), ['--config', cfg, '--data', dataDir], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' } });
  agents.push(p);
  return p;
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

function sampleRss(pid: number): { stop: () => { max: number; last: number } } {
  let max = rssMiB(pid);
  let last = max;
  const t = setInterval(() => {
    last = rssMiB(pid);
    max = Math.max(max, last);
  }, 250);
  return { stop: () => { clearInterval(t); return { max, last }; } };
}

// ---- attackers: child processes (bench/hostile-attackers.ts), so their own work does not slow the
// operator's measuring loop in this process -------------------------------------------------------

interface Attacker { stop: () => Promise<Record<string, unknown>> }

function attacker(args: string[]): Attacker {
  const p = spawn(process.execPath, ['--import', 'tsx', join(dirname(fileURLToPath(import.meta.url)), 'hostile-attackers.ts'), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  stoppers.push(() => p.kill('SIGKILL'));
  return {
    async stop() {
      p.stdin!.end(); // EOF: the attacker stops, prints its counts and exits
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
      try {
        return JSON.parse(out.trim().split('\n').pop() ?? '{}');
      } catch {
        return {};
      }
    },
  };
}

// ---- the run -----------------------------------------------------------------------------------

async function phase(attack: boolean) {
  const rss = sampleRss(s.proc.pid!);
  let swarm: Attacker | undefined;
  let thief: Attacker | undefined;
  if (attack) {
    if (ATTACKS.includes('slow')) swarm = attacker(['slow', String(port), String(SLOW)]);
    if (ATTACKS.includes('node')) thief = attacker(['node', String(port), nodeDbName('thief'), thiefAuth]);
    await new Promise((r) => setTimeout(r, 10_000)); // let the attack build up
  }
  const times: number[] = [];
  // At least EDITS edits and at least MIN_PHASE_MS, so the attack meets every timeout (headers: 20 s).
  const started = Date.now();
  for (let i = 1; i <= EDITS || Date.now() - started < MIN_PHASE_MS; i++) {
    const node = nodes[i % nodes.length];
    const db = nodeDbName(node);
    times.push(await timeIt(async () => runningAt(db, 'edit', await put(db, app('edit', `${attack ? 'a' : 'b'}${i}`)))));
  }
  const metrics = attack ? (await call(s.url, '/metrics')).text : '';
  const swarmStats = (await swarm?.stop()) as { connects: number; closedByServer: number; statuses: Record<string, number> } | undefined;
  const thiefStats = (await thief?.stop()) as Record<string, number> | undefined;
  const during = rss.stop();
  await new Promise((r) => setTimeout(r, 5000));
  return { times, rssMax: during.max, rssAfter: rssMiB(s.proc.pid!), swarm: swarmStats, thief: thiefStats, metrics };
}

let thiefAuth = '';
try {
  await s.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never);
  const thief = await addNode(s.admin, 'thief');
  thiefAuth = basic(thief.user, thief.password);
  for (const n of nodes) startAgent(n, (await addNode(s.admin, n)).password);
  await Promise.all(nodes.map(async (n) => runningAt(nodeDbName(n), 'edit', await put(nodeDbName(n), app('edit', 'v0')))));
  const rssStart = rssMiB(s.proc.pid!);
  console.log(`${AGENTS} agents running; baseline: ≥ ${EDITS} edits, ≥ ${MIN_PHASE_MS / 1000} s …`);
  const base = await phase(false);
  console.log(`attack: ${SLOW} slow anonymous clients + oversized bodies from a node credential …`);
  const atk = await phase(true);
  const gauge = (name: string) => Number(new RegExp(`^anybios_${name} (\\d+)`, 'm').exec(atk.metrics)?.[1] ?? NaN);
  const rows: Row[] = [
    { metric: `edit → running p50 under attack (${atk.times.length} edits, ${AGENTS} agents)`, value: percentile(atk.times, 50), unit: 'ms', baseline: percentile(base.times, 50), note: 'baseline: same run, no attackers' },
    { metric: 'edit → running p99 under attack', value: percentile(atk.times, 99), unit: 'ms', baseline: percentile(base.times, 99), note: 'goal ≤ 2×' },
    { metric: 'server RSS peak under attack', value: atk.rssMax, unit: 'MiB', baseline: base.rssMax, note: 'baseline: peak of the baseline phase' },
    { metric: 'server RSS 5 s after the attack', value: atk.rssAfter, unit: 'MiB', baseline: base.rssAfter, note: `at start ${rssStart.toFixed(0)} MiB` },
    { metric: 'slow clients: connections opened', value: atk.swarm?.connects ?? NaN, unit: '', note: `${SLOW} at a time; cut by the server: ${atk.swarm?.closedByServer}` },
    { metric: 'unauthenticated connections evicted (cap)', value: gauge('connections_evicted_total'), unit: '' },
    { metric: 'anonymous requests refused 503 (cap)', value: gauge('anonymous_requests_refused_total'), unit: '' },
    { metric: 'anonymous bodies refused 413 (larger than a login)', value: gauge('anonymous_bodies_refused_total'), unit: '' },
    { metric: 'requests cut by header/request timeout', value: gauge('request_timeouts_total'), unit: '' },
    { metric: 'bodies refused for the memory budget', value: gauge('body_budget_refusals_total'), unit: '' },
    { metric: 'oversized bodies answered (node credential)', value: Object.values(atk.thief ?? {}).reduce((a, b) => a + b, 0), unit: '', note: JSON.stringify(atk.thief) },
  ];
  console.log(`slow clients' answers: ${JSON.stringify(atk.swarm?.statuses)}`);
  report('hostile', rows, { edits: EDITS, slowClients: SLOW, agents: AGENTS, attacks: ATTACKS, swarmStatuses: atk.swarm?.statuses, thief: atk.thief });
} finally {
  await guard.done();
}
