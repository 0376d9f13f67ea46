// bench/replicate: (1) time for a change at site A to be running on a node of site B (status visible
// at B), p50/p99, beside the same edit made at B itself (the single-site floor, same run); (2) site-to-
// site catch-up after a partition with N changed documents, as documents per second, beside a direct
// one-shot PouchDB replication of the same database (the floor).
// Usage (root): node --import tsx bench/replicate.ts [edits=50] [docs=10000]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { CLI, call, removeDataDir, startServer, type TestServer } from '../test/helpers/server.ts';
import { startTcpProxy } from '../test/helpers/tcp-proxy.ts';
import { guardBench, percentile, report, timeIt } from './lib.ts';
import { docErrors } from '../ddocs/validate.ts';

const EDITS = Number(process.argv[2] ?? 50);
const DOCS = Number(process.argv[3] ?? 10_000);
if (process.getuid?.() !== 0) throw new Error('bench/replicate starts real systems: run it as root');

const [A, B] = await Promise.all([startServer(), startServer()]);
const proxy = await startTcpProxy(Number(new URL(B.url).port));
const work = mkdtempSync(join('/var/tmp', 'anybios-bench-replicate-'));
let agent: ChildProcess | null = null;
const app = (tag: string) => ({ type: 'system', name: 'e', kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; trap 'exit 0' TERM; while :; do sleep 5 & wait; done`] });

async function put(s: TestServer, db: string, id: string, doc: object): Promise<string> {
  const cur = await call(s.couchUrl, `/${db}/${id}`, { auth: s.adminAuth });
  const r = await call(s.couchUrl, `/${db}/${id}`, { method: 'PUT', auth: s.adminAuth, json: { _id: id, ...doc, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
  if (r.status !== 201) throw new Error(r.text);
  return r.body.rev;
}

async function until(fn: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

// Runs once: at the end, on SIGINT/SIGTERM, or on an uncaught error (bench/lib.ts guardBench).
const guard = guardBench('replicate', async () => {
  if (agent) agent.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  const rt = await createRuntime({ checkDoc: docErrors, dataDir: work });
  for (const o of await rt.list()) await rt.destroy(o.name).catch(() => {});
  await proxy.close();
  for (const s of [A, B]) {
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
});

try {
  const link = await call(A.url, '/api/sites', { method: 'POST', auth: A.adminAuth, json: { url: proxy.url, user: 'admin', password: B.adminPassword } });
  if (link.status >= 300) throw new Error(`link: ${link.text}`);
  await A.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never);
  const password = 'bench-node-password';
  await addNode(A.admin, 'edge', { password });
  const db = nodeDbName('edge');
  await until(async () => (await call(B.couchUrl, `/${db}`, { auth: B.adminAuth })).status === 200);
  const cfg = join(work, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: B.url, node: 'edge', user: 'node-edge', password }), { mode: 0o600 });
  // A stdin pipe: if this bench dies (even by SIGKILL) the agent sees EOF and stops.
  agent = spawn(process.execPath, [CLI, 'agent', '--config', cfg, '--data', work], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' } });

  const runningAtB = (rev: string) => until(async () => {
    const r = await call(B.couchUrl, `/${db}/status:e`, { auth: B.adminAuth });
    return r.status === 200 && r.body.phase === 'running' && r.body.observedRev === rev;
  });
  await runningAtB(await put(A, db, 'system:e', app('warm')));
  const viaA: number[] = [];
  const atB: number[] = [];
  for (let i = 0; i < EDITS; i++) {
    viaA.push(await timeIt(async () => runningAtB(await put(A, db, 'system:e', app(`a${i}`)))));
    atB.push(await timeIt(async () => runningAtB(await put(B, db, 'system:e', app(`b${i}`)))));
  }

  // (2) partition, N changed documents at A (a node database without an agent), heal, time the catch-up.
  await addNode(A.admin, 'bulk', { password });
  const bulkDb = nodeDbName('bulk');
  await until(async () => (await call(B.couchUrl, `/${bulkDb}`, { auth: B.adminAuth })).status === 200);
  await proxy.down();
  const docs = Array.from({ length: DOCS }, (_, i) => ({ _id: `volume:v${i}`, type: 'volume', name: `v${i}`, description: `volume ${i}` }));
  for (let i = 0; i < docs.length; i += 1000) await A.admin.use(bulkDb).bulk({ docs: docs.slice(i, i + 1000) as never[] });
  const count = async (s: TestServer, name: string) => (await call(s.couchUrl, `/${name}`, { auth: s.adminAuth })).body.doc_count as number;
  const linkTime = await timeIt(async () => {
    await proxy.up();
    await until(async () => (await count(B, bulkDb)) >= DOCS + 1, 600_000);
  });
  // Floor: one direct PouchDB replication of the same database into a fresh one at B.
  await B.admin.db.create('floor-copy');
  const auth = (s: TestServer) => ({ username: 'admin', password: s.adminPassword });
  const src = new PouchDB(`${A.couchUrl}/${bulkDb}`, { auth: auth(A), skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);
  const dst = new PouchDB(`${B.couchUrl}/floor-copy`, { auth: auth(B), skip_setup: true } as PouchDB.Configuration.RemoteDatabaseConfiguration);
  const floorTime = await timeIt(async () => { await src.replicate.to(dst, { batch_size: 500 } as PouchDB.Replication.ReplicateOptions); });
  report('replicate', [
    { metric: `change at A → running on a node of B, p50 (${EDITS} edits)`, value: percentile(viaA, 50), unit: 'ms', baseline: percentile(atB, 50), note: 'baseline: the same edit made at B' },
    { metric: 'change at A → running on a node of B, p99', value: percentile(viaA, 99), unit: 'ms', baseline: percentile(atB, 99) },
    { metric: `catch-up after a partition, ${DOCS} docs`, value: (DOCS / linkTime) * 1000, unit: 'docs/s', baseline: (DOCS / floorTime) * 1000, note: 'baseline: one direct PouchDB replication' },
    { metric: 'catch-up time', value: linkTime, unit: 'ms', baseline: floorTime },
  ], { edits: EDITS, docs: DOCS });
} finally {
  await guard.done();
}
