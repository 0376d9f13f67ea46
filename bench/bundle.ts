// bench/bundle: a node's desired state by file against a live replication of the same data, same run.
// A server process holds N systems on one node and a tar template of M MB (random bytes: nothing to
// compress). Measured: export time (server → file), import time (file → the node's local PouchDB),
// bundle size, the importing process's peak memory above its start (against the template's size), and
// an incremental round (10 changed systems, `--since`) — each beside a PouchDB replication of the same
// data into an empty local copy (what the agent's sync + template pull does), its bytes on the wire
// counted by a loopback proxy.
// Usage: node --import tsx bench/bundle.ts [systems=1000] [templateMB=50]
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode } from '../server/nodes.ts';
import { CouchHttp } from '../server/sites/couch-http.ts';
import { exportNodeBundle } from '../bundle/server.ts';
import { importOnDevice, type DeviceBundleContext } from '../bundle/device.ts';
import { remoteDb } from '../agent/sync/node-sync.ts';
import { removeDataDir, startServer, type TestServer } from '../test/helpers/server.ts';
import { report, timeIt } from './lib.ts';

const SYSTEMS = Number(process.argv[2] ?? 1000);
const MB = Number(process.argv[3] ?? 50);
const NODE = 'bench-gap';
const PASSWORD = 'bench-gap-password';
const work = mkdtempSync(join(tmpdir(), 'anybios-bench-bundle-'));
let server: TestServer | null = null;
let proxy: net.Server | null = null;
const sockets = new Set<net.Socket>();
const opened: PouchDB.Database[] = [];

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

/** Peak RSS of this process above its value at the start of `fn`, sampled every 20 ms. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, peak: peak - base };
  } finally {
    clearInterval(timer);
  }
}

let n = 0;
function device(): DeviceBundleContext {
  const dir = join(work, `dev-${n++}`);
  const Local = (PouchDB as unknown as { defaults(x: object): PouchDB.Static }).defaults({ prefix: dir + '-' });
  const ctx = { node: NODE, password: PASSWORD, db: new Local(`anybios-node-${NODE}`), catalog: new Local('anybios'), statePath: `${dir}-bundle.json` };
  opened.push(ctx.db, ctx.catalog);
  return ctx;
}

async function exportTo(http: CouchHttp, since: string | null) {
  const file = join(work, `b-${n++}.bundle`);
  const out = createWriteStream(file);
  const r = await exportNodeBundle(http, NODE, out, since);
  await new Promise<void>((res) => out.end(() => res()));
  return { file, ...r };
}

async function main(): Promise<void> {
  server = await startServer();
  const s = server;
  const http = new CouchHttp(s.couchUrl, { username: 'admin', password: s.adminPassword }, 600_000);
  await addNode(s.admin, NODE, { password: PASSWORD });
  const tar = randomBytes(MB * 1024 * 1024);
  const sha256 = createHash('sha256').update(tar).digest('hex');
  const doc = await http.put<{ rev: string }>('/anybios/template:big', { type: 'template', name: 'big', source: 'tar', sha256 });
  const put = await fetch(`${s.couchUrl}/anybios/template:big/rootfs.tar?rev=${doc.rev}`, { method: 'PUT', headers: { Authorization: s.adminAuth, 'Content-Type': 'application/x-tar' }, body: tar });
  if (!put.ok) throw new Error(`template upload: ${put.status} ${await put.text()}`);
  const spec = (i: number, tag = 'v1') => ({ _id: `system:s${i}`, type: 'system', name: `s${i}`, kind: 'app', template: 'big', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; sleep infinity`], labels: { idx: String(i) } });
  for (let i = 0; i < SYSTEMS; i += 500) {
    await http.post(`/anybios-node-${NODE}/_bulk_docs`, { docs: Array.from({ length: Math.min(500, SYSTEMS - i) }, (_, k) => spec(i + k)) });
  }

  // Bundle: export on the server side, import on a fresh device.
  const ex = await peakRss(() => exportTo(http, null));
  const exportMs = await timeIt(async () => { await exportTo(http, null); });
  const bundleBytes = statSync(ex.value.file).size;
  const dev = device();
  let importMs = 0;
  const im = await peakRss(async () => { importMs = await timeIt(() => importOnDevice(dev, ex.value.file)); });
  if ((await dev.db.info()).doc_count !== SYSTEMS) throw new Error(`import: ${(await dev.db.info()).doc_count} docs, expected ${SYSTEMS}`);

  // Baseline: a live replication of the same data into an empty copy, over a counting proxy.
  const counter = await countingProxy(Number(new URL(s.url).port));
  const base = `http://127.0.0.1:${counter.port}/db`;
  const auth = { username: `node-${NODE}`, password: PASSWORD };
  const live = device();
  const remoteNode = remoteDb(`${base}/anybios-node-${NODE}`, auth);
  const remoteCat = remoteDb(`${base}/anybios`, auth);
  opened.push(remoteNode, remoteCat);
  const repl = await peakRss(() => timeIt(async () => {
    await live.db.replicate.from(remoteNode, { batch_size: 200 } as PouchDB.Replication.ReplicateOptions);
    await live.catalog.replicate.from(remoteCat, { doc_ids: ['template:big'] } as PouchDB.Replication.ReplicateOptions);
  }));
  const replBytes = counter.bytes();

  // Incremental: 10 systems changed; the bundle since the checkpoint, beside the replication catching up.
  const changed = await http.post<{ rows: { id: string; value: { rev: string } }[] }>(`/anybios-node-${NODE}/_all_docs`, { keys: Array.from({ length: 10 }, (_, i) => `system:s${i}`) });
  await http.post(`/anybios-node-${NODE}/_bulk_docs`, { docs: changed.rows.map((r, i) => ({ ...spec(i, 'v2'), _rev: r.value.rev })) });
  let delta = { file: '', docs: 0 } as Awaited<ReturnType<typeof exportTo>>;
  const deltaMs = await timeIt(async () => {
    delta = await exportTo(http, ex.value.checkpoint);
    await importOnDevice(dev, delta.file);
  });
  counter.reset();
  const deltaReplMs = await timeIt(async () => {
    await live.db.replicate.from(remoteNode, { batch_size: 200 } as PouchDB.Replication.ReplicateOptions);
    await live.catalog.replicate.from(remoteCat, { doc_ids: ['template:big'] } as PouchDB.Replication.ReplicateOptions);
  });
  const deltaReplBytes = counter.bytes();
  const template = tar.length;
  const MiB = 1024 * 1024;
  report('bundle', [
    { metric: `export, ${SYSTEMS} systems + ${MB} MB template`, value: exportMs, unit: 'ms', baseline: repl.value, note: 'baseline: live replication of the same data (node db + template)' },
    { metric: 'import on a fresh node', value: importMs, unit: 'ms', baseline: repl.value },
    { metric: 'export + import', value: exportMs + importMs, unit: 'ms', baseline: repl.value },
    { metric: 'bundle size', value: bundleBytes / MiB, unit: 'MiB', baseline: replBytes / MiB, note: 'baseline: bytes on the wire of the replication' },
    { metric: 'peak memory above start, export', value: ex.peak / MiB, unit: 'MiB', baseline: template / MiB, note: 'baseline: the template size' },
    { metric: 'peak memory above start, import', value: im.peak / MiB, unit: 'MiB', baseline: template / MiB },
    { metric: 'peak memory above start, replication', value: repl.peak / MiB, unit: 'MiB', baseline: template / MiB },
    { metric: `incremental: ${delta.docs} changed docs, export + import`, value: deltaMs, unit: 'ms', baseline: deltaReplMs, note: 'baseline: the replication catching up' },
    { metric: 'incremental bundle size', value: statSync(delta.file).size / 1024, unit: 'KiB', baseline: deltaReplBytes / 1024 },
  ], { systems: SYSTEMS, templateMB: MB, bundleBytes, replicationBytes: replBytes });
}

async function cleanup(): Promise<void> {
  for (const d of opened) await d.close().catch(() => {});
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
  if (server) {
    await server.stop().catch(() => {});
    removeDataDir(server.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
}

process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
try {
  await main();
} catch (err) {
  // A network failure (or any other) is reported, not thrown: the cleanup below still runs.
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  console.error(`bench/bundle failed: ${e.code ?? e.cause?.code ?? ''} ${e.message ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
