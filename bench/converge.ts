// bench/converge: (1) time from a PUT on the server to `running` (of that revision) visible on the
// server, p50/p99 over N edits, beside two floors measured in the same run: the replication round trip
// alone (server → agent copy → server, no runtime) and a runtime restart alone; (2) catch-up time of a
// new agent's database, as the fleet grows (other nodes' databases) and as its own systems grow;
// (3) agent RSS idle and with M running app systems.
// Usage: node --import tsx bench/converge.ts [edits=100] [fleetNodes=100] [systemsPerNode=100] [running=100]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { NodeSync } from '../agent/sync/node-sync.ts';
import { CLI, call, removeDataDir, startServer } from '../test/helpers/server.ts';
import { guardBench, statusRunningAt, percentile, report, timeIt, type Row } from './lib.ts';
import { docErrors } from '../ddocs/validate.ts';

const EDITS = Number(process.argv[2] ?? 100);
const FLEET = Number(process.argv[3] ?? 100);
const PER_NODE = Number(process.argv[4] ?? 100);
const RUNNING = Number(process.argv[5] ?? 100);
if (process.getuid?.() !== 0) throw new Error('bench/converge starts real systems: run it as root');

const s = await startServer();
const work = mkdtempSync(join('/var/tmp', 'anybios-bench-converge-'));
const agents: ChildProcess[] = [];
const rows: Row[] = [];
const app = (name: string, tag: string) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; trap 'exit 0' TERM; while :; do sleep 5 & wait; done`] });

async function put(db: string, doc: Record<string, unknown>): Promise<string> {
  const cur = await call(s.couchUrl, `/${db}/${doc._id}`, { auth: s.adminAuth });
  const r = await call(s.couchUrl, `/${db}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
  if (r.status !== 201) throw new Error(r.text);
  return r.body.rev;
}

/** Resolves when `status:<name>` on the server says running at `rev`. */
const runningAt = (db: string, name: string, rev: string, timeoutMs = 60_000) => statusRunningAt((path) => call(s.couchUrl, path, { auth: s.adminAuth }), db, name, rev, timeoutMs);

/** `small`: bin/anybios-agent (1 MiB V8 young generation, the recommended way on devices); else `anybios agent`. */
function startAgent(node: string, password: string, dataDir: string, small = true): ChildProcess {
  mkdirSync(dataDir, { recursive: true });
  const cfg = join(dataDir, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: s.url, node, user: `node-${node}`, password }), { mode: 0o600 });
  // A stdin pipe: if this bench dies (even by SIGKILL) the agent sees EOF and stops.
  const opts = { stdio: ['pipe', 'ignore', 'ignore'] as ('pipe' | 'ignore')[], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' } };
  const p = small
    ? spawn(join(dirname(CLI), 'anybios-agent'), ['--config', cfg, '--data', dataDir], opts)
    : spawn(process.execPath, [CLI, 'agent', '--config', cfg, '--data', dataDir], opts);
  agents.push(p);
  return p;
}

const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

async function cleanup(dataDir: string): Promise<void> {
  const rt = await createRuntime({ checkDoc: docErrors, dataDir });
  for (const o of await rt.list()) await rt.destroy(o.name).catch(() => {});
}

// Runs once: at the end, on SIGINT/SIGTERM, or on an uncaught error (bench/lib.ts guardBench).
const guard = guardBench('converge', async () => {
  for (const p of agents) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  for (const d of ['conv', 'many', 'idle-small', 'idle-default', 'rt']) await cleanup(join(work, d)).catch(() => {});
  await s.stop();
  removeDataDir(s.dataDir);
  rmSync(work, { recursive: true, force: true });
});

try {
  await s.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never);

  // ---- (1) edit → running, and its floors -----------------------------------------------------
  const conv = await addNode(s.admin, 'conv');
  const convDir = join(work, 'conv');
  const convAgent = startAgent('conv', conv.password, convDir);
  const db = nodeDbName('conv');
  await runningAt(db, 'edit', await put(db, app('edit', 'v0')));
  const times: number[] = [];
  for (let i = 1; i <= EDITS; i++) {
    times.push(await timeIt(async () => runningAt(db, 'edit', await put(db, app('edit', `v${i}`)))));
  }
  // Floor A: replication round trip without the runtime — the server writes, a PouchDB copy syncing
  // like the agent answers with a doc of its own, and we wait for that answer on the server.
  const ping = await addNode(s.admin, 'ping');
  const local = new PouchDB(join(work, 'ping-db'));
  const sync = new NodeSync({ local, remoteUrls: [`${s.couchUrl}/${nodeDbName("ping")}`], auth: { username: ping.user, password: ping.password } });
  sync.start();
  const answer = local.changes({ live: true, since: 'now', include_docs: true }).on('change', (c) => {
    const d = c.doc as { _id: string; _rev: string; type?: string; name?: string; _deleted?: boolean };
    if (d.type === 'system' && !d._deleted) void local.get(`status:${d.name}`).catch(() => null).then((cur) => local.put({ _id: `status:${d.name}`, ...(cur ? { _rev: cur._rev } : {}), type: 'status', name: d.name, phase: 'running', observedRev: d._rev, updated: new Date().toISOString() } as never)).catch(() => {}); // a conflict: the next edit answers
  });
  const pingTimes: number[] = [];
  for (let i = 0; i <= Math.min(EDITS, 50); i++) {
    const t = await timeIt(async () => runningAt(nodeDbName('ping'), 'echo', await put(nodeDbName('ping'), app('echo', `p${i}`))));
    if (i > 0) pingTimes.push(t);
  }
  answer.cancel();
  await sync.stop();
  await local.close();
  // Floor B: a runtime restart (stop + start) of the same kind of system, no database involved.
  const rt = await createRuntime({ checkDoc: docErrors, dataDir: join(work, 'rt') });
  const restartTimes: number[] = [];
  const tpl = { _id: 'template:host', type: 'template' as const, name: 'host', source: 'host' as const };
  for (let i = 0; i <= 20; i++) {
    const spec = { ...app('floor', `f${i}`), _rev: `${i + 1}-x` } as never;
    // Let the previous start settle (its shell installs its TERM trap), as an edited system has.
    await new Promise((r) => setTimeout(r, 300));
    const t = await timeIt(async () => {
      await rt.stop('floor');
      await rt.start(spec, tpl, { specRev: `${i + 1}-x` });
    });
    if (i > 0) restartTimes.push(t);
  }
  await rt.destroy('floor');
  rows.push(
    { metric: `edit → running on server, p50 (${EDITS} edits)`, value: percentile(times, 50), unit: 'ms', baseline: percentile(pingTimes, 50), note: 'baseline: replication round trip, no runtime' },
    { metric: 'edit → running on server, p99', value: percentile(times, 99), unit: 'ms', baseline: percentile(pingTimes, 99) },
    { metric: 'runtime restart alone, p50 (floor B)', value: percentile(restartTimes, 50), unit: 'ms' },
  );

  // ---- (3a) agent RSS: after the edits, and idle with one system (small and default V8 settings) --
  await new Promise((r) => setTimeout(r, 5000));
  const afterEditsRss = rssKiB(convAgent.pid!);
  const idleSmall = await addNode(s.admin, 'idle-small');
  const idleDefault = await addNode(s.admin, 'idle-default');
  const idleAgents = [startAgent('idle-small', idleSmall.password, join(work, 'idle-small')), startAgent('idle-default', idleDefault.password, join(work, 'idle-default'), false)];
  for (const id of ['idle-small', 'idle-default']) await runningAt(nodeDbName(id), 'one', await put(nodeDbName(id), app('one', 'x')));
  await new Promise((r) => setTimeout(r, 15_000));
  const [idleRss, idleDefaultRss] = idleAgents.map((p) => rssKiB(p.pid!));

  // ---- (2) catch-up of a new agent's database vs fleet size and own size -----------------------
  async function fillNode(id: string, n: number): Promise<string> {
    const c = await addNode(s.admin, id);
    const docs = Array.from({ length: n }, (_, i) => app(`s${i}`, 'x'));
    for (let i = 0; i < docs.length; i += 500) await s.admin.use(nodeDbName(id)).bulk({ docs: docs.slice(i, i + 500) as never[] });
    return c.password;
  }
  async function catchUp(id: string, password: string, expected: number): Promise<number> {
    const localDb = new PouchDB(join(work, `catch-${id}`));
    const ns = new NodeSync({ local: localDb, remoteUrls: [`${s.couchUrl}/${nodeDbName(id)}`], auth: { username: `node-${id}`, password } });
    const t = await timeIt(async () => {
      ns.start();
      for (;;) {
        const info = await localDb.info();
        if (info.doc_count >= expected) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    await ns.stop();
    await localDb.close();
    return t;
  }
  const small = Math.max(1, Math.floor(FLEET / 10));
  for (let i = 0; i < small; i++) await fillNode(`fleet${i}`, PER_NODE);
  const catchSmallFleet = await catchUp('new1', await fillNode('new1', PER_NODE), PER_NODE + 1);
  for (let i = small; i < FLEET; i++) await fillNode(`fleet${i}`, PER_NODE);
  const catchBigFleet = await catchUp('new2', await fillNode('new2', PER_NODE), PER_NODE + 1);
  const catchBigOwn = await catchUp('new3', await fillNode('new3', PER_NODE * 4), PER_NODE * 4 + 1);
  rows.push(
    { metric: `catch-up, ${PER_NODE} own systems, fleet of ${FLEET} nodes`, value: catchBigFleet, unit: 'ms', baseline: catchSmallFleet, note: `baseline: same with a fleet of ${small} nodes` },
    { metric: `catch-up, ${PER_NODE * 4} own systems, fleet of ${FLEET} nodes`, value: catchBigOwn, unit: 'ms', baseline: catchBigFleet, note: `baseline: ${PER_NODE} own systems` },
  );

  // ---- (3b) agent RSS with many running app systems -------------------------------------------
  const many = await addNode(s.admin, 'many');
  const manyDir = join(work, 'many');
  const manyAgent = startAgent('many', many.password, manyDir);
  const docs = Array.from({ length: RUNNING }, (_, i) => app(`m${i}`, 'm'));
  await s.admin.use(nodeDbName('many')).bulk({ docs: docs as never[] });
  const t0 = Date.now();
  for (;;) {
    const r = await call(s.couchUrl, `/${nodeDbName('many')}/_design/anybios/_view/status_by_phase?reduce=false&startkey=${encodeURIComponent('["running"]')}&endkey=${encodeURIComponent('["running",{}]')}`, { auth: s.adminAuth });
    if ((r.body.rows?.length ?? 0) >= RUNNING) break;
    if (Date.now() - t0 > 600_000) throw new Error('systems did not all start in 10 minutes');
    await new Promise((r) => setTimeout(r, 500));
  }
  const startAll = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 5000));
  const busyRss = rssKiB(manyAgent.pid!);
  rows.push(
    { metric: 'agent RSS idle, 1 system (anybios-agent)', value: idleRss / 1024, unit: 'MiB', baseline: idleDefaultRss / 1024, note: 'goal ≤ 80 MiB; baseline: `anybios agent`, default V8' },
    { metric: `agent RSS after ${EDITS} edits (anybios-agent)`, value: afterEditsRss / 1024, unit: 'MiB', baseline: idleRss / 1024 },
    { metric: `agent RSS with ${RUNNING} running app systems (anybios-agent)`, value: busyRss / 1024, unit: 'MiB', baseline: idleRss / 1024 },
    { metric: `${RUNNING} systems: bulk write → all running on server`, value: startAll, unit: 'ms' },
  );
  report('converge', rows, { edits: EDITS, fleetNodes: FLEET, systemsPerNode: PER_NODE, running: RUNNING });
} finally {
  await guard.done();
}
