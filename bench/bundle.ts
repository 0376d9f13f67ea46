// bench/bundle: a node's desired state by file against a live replication of the same data, same run.
// A server process holds N systems on one node and a tar template of M MB (random bytes: nothing to
// compress). Measured: export time (server → file), import time (file → the node's local PouchDB),
// bundle size, each phase's peak memory above its start (against the template's size), and an
// incremental round (10 changed systems, `--since`) — each beside a PouchDB replication of the same
// data into an empty local copy (what the agent's sync + template pull does), its bytes on the wire
// counted by a loopback proxy. Each phase runs in a child process of its own, so its peak memory is
// its own: VmHWM (the kernel's high-water mark of the resident set) minus VmRSS just before the work.
// Usage: node --import tsx bench/bundle.ts [systems=1000] [templateMB=50]
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import PouchDB from 'pouchdb';
import { addNode } from '../server/nodes.ts';
import { CouchHttp } from '../server/sites/couch-http.ts';
import { exportNodeBundle } from '../bundle/server.ts';
import { importOnDevice } from '../bundle/device.ts';
import { remoteDb } from '../agent/sync/node-sync.ts';
import { removeDataDir, startServer, type TestServer } from '../test/helpers/server.ts';
import { report } from './lib.ts';

const NODE = 'bench-gap';
const PASSWORD = 'bench-gap-password';
const MiB = 1024 * 1024;

type Phase = 'export' | 'import' | 'replicate';
interface PhaseResult { ms: number; peak: number; report: Record<string, unknown> }

const vm = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;

/** One phase, in this (child) process: prints {ms, peak, report} as its last line. */
async function runPhase(name: Phase, a: Record<string, string | null>): Promise<void> {
  // The export needs no local database; it gets a throwaway one beside its file, for the same shape.
  const dir = a.dir ?? `${a.file}.local`;
  const Local = (PouchDB as unknown as { defaults(x: object): PouchDB.Static }).defaults({ prefix: `${dir}-` });
  const db = new Local(`anybios-node-${NODE}`);
  const catalog = new Local('anybios');
  await Promise.all([db.info(), catalog.info()]);
  const rss = vm('VmRSS');
  const t0 = performance.now();
  let out: Record<string, unknown> = {};
  if (name === 'export') {
    const file = createWriteStream(a.file!);
    out = { ...(await exportNodeBundle(new CouchHttp(a.couchUrl!, { username: 'admin', password: a.adminPassword! }, 600_000), NODE, file, a.since)) };
    await new Promise<void>((r) => file.end(() => r()));
  } else if (name === 'import') {
    out = { ...(await importOnDevice({ node: NODE, password: PASSWORD, db, catalog, statePath: `${dir}-bundle.json` }, a.file!)) };
  } else {
    const auth = { username: `node-${NODE}`, password: PASSWORD };
    const remoteNode = remoteDb(`${a.base}/anybios-node-${NODE}`, auth);
    const remoteCat = remoteDb(`${a.base}/anybios`, auth);
    await db.replicate.from(remoteNode, { batch_size: 200 } as PouchDB.Replication.ReplicateOptions);
    await catalog.replicate.from(remoteCat, { doc_ids: ['template:big'] } as PouchDB.Replication.ReplicateOptions);
    await remoteNode.close();
    await remoteCat.close();
  }
  const ms = performance.now() - t0;
  const peak = vm('VmHWM') - rss;
  out.docCount = (await db.info()).doc_count;
  await db.close();
  await catalog.close();
  console.log(JSON.stringify({ ms, peak, report: out }));
}

// ---- the parent: server, data, phases, table ----------------------------------------------------

const children = new Set<ChildProcess>();
let server: TestServer | null = null;
let proxy: net.Server | null = null;
const sockets = new Set<net.Socket>();
let work = '';

function phase(name: Phase, args: Record<string, unknown>): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--phase', name, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('exit', (code) => {
      children.delete(child);
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as PhaseResult);
      else reject(new Error(`phase ${name} exited with ${code}: ${out.slice(-500)}`));
    });
  });
}

/** A loopback proxy that counts the bytes of a replication both ways. */
async function countingProxy(targetPort: number): Promise<{ port: number; bytes: () => number; reset: () => void }> {
  let bytes = 0;
  proxy = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); }
    client.on('data', (d) => { bytes += d.length; });
    upstream.on('data', (d) => { bytes += d.length; });
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => proxy!.listen(0, '127.0.0.1', () => r()));
  return { port: (proxy.address() as net.AddressInfo).port, bytes: () => bytes, reset: () => { bytes = 0; } };
}

async function main(systems: number, mb: number): Promise<void> {
  work = mkdtempSync(join(tmpdir(), 'anybios-bench-bundle-'));
  server = await startServer();
  const s = server;
  const http = new CouchHttp(s.couchUrl, { username: 'admin', password: s.adminPassword }, 600_000);
  await addNode(s.admin, NODE, { password: PASSWORD });
  const tar = randomBytes(mb * MiB);
  const sha256 = createHash('sha256').update(tar).digest('hex');
  const doc = await http.put<{ rev: string }>('/anybios/template:big', { type: 'template', name: 'big', source: 'tar', sha256 });
  const put = await fetch(`${s.couchUrl}/anybios/template:big/rootfs.tar?rev=${doc.rev}`, { method: 'PUT', headers: { Authorization: s.adminAuth, 'Content-Type': 'application/x-tar' }, body: tar });
  if (!put.ok) throw new Error(`template upload: ${put.status} ${await put.text()}`);
  const spec = (i: number, tag = 'v1') => ({ _id: `system:s${i}`, type: 'system', name: `s${i}`, kind: 'app', template: 'big', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; sleep infinity`], labels: { idx: String(i) } });
  for (let i = 0; i < systems; i += 500) {
    await http.post(`/anybios-node-${NODE}/_bulk_docs`, { docs: Array.from({ length: Math.min(500, systems - i) }, (_, k) => spec(i + k)) });
  }

  const file = join(work, 'full.bundle');
  const devDir = join(work, 'device');
  const liveDir = join(work, 'live');
  const ex = await phase('export', { couchUrl: s.couchUrl, adminPassword: s.adminPassword, file, since: null });
  const im = await phase('import', { file, dir: devDir });
  if (im.report.docCount !== systems) throw new Error(`import: ${String(im.report.docCount)} docs, expected ${systems}`);
  const counter = await countingProxy(Number(new URL(s.url).port));
  const base = `http://127.0.0.1:${counter.port}/db`;
  const repl = await phase('replicate', { base, dir: liveDir });
  const replBytes = counter.bytes();

  // Incremental: 10 systems changed; the bundle since the checkpoint, beside the replication catching up.
  const changed = await http.post<{ rows: { id: string; value: { rev: string } }[] }>(`/anybios-node-${NODE}/_all_docs`, { keys: Array.from({ length: 10 }, (_, i) => `system:s${i}`) });
  await http.post(`/anybios-node-${NODE}/_bulk_docs`, { docs: changed.rows.map((r, i) => ({ ...spec(i, 'v2'), _rev: r.value.rev })) });
  const deltaFile = join(work, 'delta.bundle');
  const dEx = await phase('export', { couchUrl: s.couchUrl, adminPassword: s.adminPassword, file: deltaFile, since: ex.report.checkpoint });
  const dIm = await phase('import', { file: deltaFile, dir: devDir });
  counter.reset();
  const dRepl = await phase('replicate', { base, dir: liveDir });
  const deltaReplBytes = counter.bytes();

  const t = tar.length / MiB;
  report('bundle', [
    { metric: `export, ${systems} systems + ${mb} MB template`, value: ex.ms, unit: 'ms', baseline: repl.ms, note: 'baseline: live replication of the same data (node db + template)' },
    { metric: 'import on a fresh node', value: im.ms, unit: 'ms', baseline: repl.ms },
    { metric: 'export + import', value: ex.ms + im.ms, unit: 'ms', baseline: repl.ms },
    { metric: 'bundle size', value: statSync(file).size / MiB, unit: 'MiB', baseline: replBytes / MiB, note: 'baseline: bytes on the wire of the replication' },
    { metric: 'peak memory above start, export', value: ex.peak / MiB, unit: 'MiB', baseline: t, note: 'baseline: the template size; each phase its own process (VmHWM - VmRSS)' },
    { metric: 'peak memory above start, import', value: im.peak / MiB, unit: 'MiB', baseline: t },
    { metric: 'peak memory above start, replication', value: repl.peak / MiB, unit: 'MiB', baseline: t },
    { metric: `incremental: ${String(dEx.report.docs)} changed docs, export + import`, value: dEx.ms + dIm.ms, unit: 'ms', baseline: dRepl.ms, note: 'baseline: the replication catching up' },
    { metric: 'incremental bundle size', value: statSync(deltaFile).size / 1024, unit: 'KiB', baseline: deltaReplBytes / 1024 },
  ], { systems, templateMB: mb, bundleBytes: statSync(file).size, replicationBytes: replBytes, peaks: { export: ex.peak, import: im.peak, replication: repl.peak } });
}

async function cleanup(): Promise<void> {
  for (const c of children) c.kill('SIGKILL');
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
  if (server) {
    await server.stop().catch(() => {});
    removeDataDir(server.dataDir);
  }
  if (work) rmSync(work, { recursive: true, force: true });
}

const at = process.argv.indexOf('--phase');
if (at >= 0) {
  await runPhase(process.argv[at + 1] as Phase, JSON.parse(process.argv[at + 2] ?? '{}'));
} else {
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  try {
    await main(Number(process.argv[2] ?? 1000), Number(process.argv[3] ?? 50));
  } catch (err) {
    // A network failure (or any other) is reported, not thrown: the cleanup below still runs.
    const e = err as { code?: string; message?: string; cause?: { code?: string } };
    console.error(`bench/bundle failed: ${e.code ?? e.cause?.code ?? ''} ${e.message ?? String(err)}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}
