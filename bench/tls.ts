// bench/tls: what TLS costs, beside plain HTTP in the same run. Two servers bound to the same
// non-loopback address of this machine: one serving HTTPS (its self-signed certificate, pinned by the
// agent), one plain HTTP (--insecure-http). (1) edit → running: a spec written at the server until the
// agent's status says it runs that revision, p50/p99; (2) catch-up of N documents: the agent's own
// HTTP client (agent/sync/remote.ts, pinned) pulling a node database into an empty local copy.
// Usage (root): node --import tsx bench/tls.ts [edits=30] [docs=10000]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { remoteDb, newAgent, retireAgent } from '../agent/sync/remote.ts';
import { trustServer } from '../agent/sync/tls.ts';
import { CLI, removeDataDir, startServer, type TestServer } from '../test/helpers/server.ts';
import { couchClient } from '../server/couch/client.ts';
import { dispatcherFor } from '../server/tls/dispatcher.ts';
import { externalAddress, serverCert } from '../test/tls/helpers.ts';
import { guardBench, percentile, report, timeIt } from './lib.ts';
import { docErrors } from '../ddocs/validate.ts';

const EDITS = Number(process.argv[2] ?? 30);
const DOCS = Number(process.argv[3] ?? 10_000);
if (process.getuid?.() !== 0) throw new Error('bench/tls starts real systems: run it as root');
const ip = externalAddress();
if (!ip) throw new Error('bench/tls needs a non-loopback IPv4 address of this machine');

const servers: TestServer[] = [];
const agents: ChildProcess[] = [];
const work = mkdtempSync(join('/var/tmp', 'anybios-bench-tls-'));

// Runs once: at the end, on SIGINT/SIGTERM, or on an uncaught error (bench/lib.ts guardBench).
const guard = guardBench('tls', async () => {
  for (const a of agents) a.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  for (const side of ['https', 'http']) {
    const rt = await createRuntime({ checkDoc: docErrors, dataDir: join(work, side) });
    for (const o of await rt.list()) await rt.destroy(o.name).catch(() => {});
  }
  for (const s of servers) {
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
});

const app = (tag: string) => ({ type: 'system', name: 'e', kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; trap 'exit 0' TERM; while :; do sleep 5 & wait; done`] });

async function until(fn: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    // A network error while polling is a "not yet", never a crash.
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Side { name: 'https' | 'http'; s: TestServer; admin: ReturnType<typeof couchClient>; fingerprint?: string }

async function side(name: 'https' | 'http'): Promise<Side> {
  const s = await startServer({ args: ['--host', ip!, ...(name === 'http' ? ['--insecure-http'] : [])], embedded: true });
  servers.push(s);
  const fingerprint = name === 'https' ? serverCert(s).fingerprint : undefined;
  const admin = couchClient(`${s.url}/db`, 'admin', s.adminPassword, fingerprint ? dispatcherFor({ fingerprint }) : undefined);
  return { name, s, admin, fingerprint };
}

async function put(x: Side, db: string, id: string, doc: object): Promise<string> {
  const d = x.admin.use(db);
  const cur = await d.get(id).catch(() => null);
  return (await d.insert({ _id: id, ...doc, ...(cur ? { _rev: cur._rev } : {}) } as never)).rev;
}

try {
  const sides = await Promise.all([side('https'), side('http')]);
  const password = 'bench-node-password';
  for (const x of sides) {
    await x.admin.use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never);
    await addNode(x.admin, 'edge', { password });
    const cfg = join(work, `${x.name}.json`);
    writeFileSync(cfg, JSON.stringify({ server: x.s.url, node: 'edge', user: 'node-edge', password, ...(x.fingerprint ? { fingerprint: x.fingerprint } : { insecureHttp: true }) }), { mode: 0o600 });
    // A stdin pipe: if this bench dies (even by SIGKILL) the agent sees EOF and stops.
    agents.push(spawn(process.execPath, [CLI, 'agent', '--config', cfg, '--data', join(work, x.name)], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' } }));
  }
  const db = nodeDbName('edge');
  const running = (x: Side, rev: string) => until(async () => {
    const st = (await x.admin.use(db).get('status:e')) as unknown as { phase?: string; observedRev?: string };
    return st.phase === 'running' && st.observedRev === rev;
  });
  for (const x of sides) await running(x, await put(x, db, 'system:e', app('warm')));
  const times: Record<string, number[]> = { https: [], http: [] };
  for (let i = 0; i < EDITS; i++) {
    for (const x of sides) times[x.name].push(await timeIt(async () => running(x, await put(x, db, 'system:e', app(`${x.name}${i}`)))));
  }

  // Catch-up: N documents in a node database, pulled by the agent's HTTP client into an empty copy.
  const docs = Array.from({ length: DOCS }, (_, i) => ({ _id: `volume:v${i}`, type: 'volume', name: `v${i}`, description: `volume ${i}` }));
  const pull: Record<string, number> = {};
  for (const x of sides) {
    await addNode(x.admin, 'bulk', { password });
    for (let i = 0; i < docs.length; i += 1000) await x.admin.use(nodeDbName('bulk')).bulk({ docs: docs.slice(i, i + 1000) as never[] });
    trustServer(x.s.url, x.fingerprint ? { fingerprint: x.fingerprint } : { insecureHttp: true });
    const url = `${x.s.url}/db/${nodeDbName('bulk')}`;
    const pool = newAgent(url);
    const remote = remoteDb(url, { username: 'node-bulk', password }, pool);
    const local = new PouchDB(join(work, `copy-${x.name}`));
    pull[x.name] = await timeIt(async () => { await local.replicate.from(remote, { batch_size: 200 } as PouchDB.Replication.ReplicateOptions); });
    const n = (await local.info()).doc_count;
    if (n < DOCS) throw new Error(`${x.name}: pulled ${n} of ${DOCS}`);
    await local.close();
    await remote.close();
    retireAgent(pool);
  }
  report('tls', [
    { metric: `edit → running, p50 (${EDITS} edits), HTTPS pinned`, value: percentile(times.https, 50), unit: 'ms', baseline: percentile(times.http, 50), note: 'baseline: plain HTTP, same run' },
    { metric: 'edit → running, p99, HTTPS pinned', value: percentile(times.https, 99), unit: 'ms', baseline: percentile(times.http, 99) },
    { metric: `catch-up of ${DOCS} docs, HTTPS pinned`, value: (DOCS / pull.https) * 1000, unit: 'docs/s', baseline: (DOCS / pull.http) * 1000, note: 'agent client, batch 200; baseline plain HTTP' },
    { metric: 'catch-up time, HTTPS pinned', value: pull.https, unit: 'ms', baseline: pull.http },
  ], { edits: EDITS, docs: DOCS, address: ip });
} finally {
  await guard.done();
}
