// bench/api: fleet listing latency from the fleet index against a per-request scan of every node
// database (the baseline, same run), with N nodes × M systems; and the index's catch-up time after a
// restart (warm, from its snapshot) and from nothing (cold). Usage: node --import tsx bench/api.ts [nodes] [systems]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AnybiosServer } from '../server/app.ts';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { guardBench, percentile, report, timeIt } from './lib.ts';

const NODES = Number(process.argv[2] ?? 100);
const SYSTEMS = Number(process.argv[3] ?? 100);
const ROUNDS = 30;
const password = 'bench-admin-password';
process.env.ANYBIOS_ADMIN_PASSWORD = password;
const auth = 'Basic ' + Buffer.from(`admin:${password}`).toString('base64');

async function getJson(url: string): Promise<any> {
  const res = await fetch(url, { headers: { Authorization: auth } });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

async function waitIndexed(server: AnybiosServer, expected: number): Promise<void> {
  await server.index.ready;
  for (;;) {
    if (server.index.systemRows().length >= expected) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'anybios-bench-api-'));
/** The server started last, closed by the cleanup if the bench stops early (closing twice is harmless). */
let live: AnybiosServer | undefined;
// Runs once: at the end, on SIGINT/SIGTERM, or on an uncaught error (bench/lib.ts guardBench).
const guard = guardBench('api', async () => {
  await live?.close().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
});
try {
  let server = (live = await createServer({ dataDir, port: 0 }));
  console.log(`seeding ${NODES} nodes x ${SYSTEMS} systems ...`);
  const t0 = performance.now();
  for (let n = 0; n < NODES; n++) {
    const id = `node${n}`;
    await addNode(server.admin, id);
    const docs = Array.from({ length: SYSTEMS }, (_, i) => ({ _id: `system:s${i}`, type: 'system', name: `s${i}`, kind: 'app', template: 'host', state: 'running', command: ['/bin/true'], labels: { n: String(i % 10) } }));
    await server.admin.use(nodeDbName(id)).bulk({ docs: docs as never[] });
    if ((n + 1) % 20 === 0) process.stdout.write(`  ${n + 1} nodes\n`);
  }
  const total = NODES * SYSTEMS;
  await waitIndexed(server, total);
  console.log(`seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // Listing from the index (what /api/systems does) vs. the same answer by scanning every database.
  const indexTimes: number[] = [];
  const scanTimes: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    indexTimes.push(await timeIt(async () => {
      const rows = await getJson(`${server.url}/api/systems`);
      if (rows.length !== total) throw new Error(`index listed ${rows.length}`);
    }));
    scanTimes.push(await timeIt(async () => {
      const dbs: string[] = (await getJson(`${server.couchUrl}/_all_dbs`)).filter((d: string) => d.startsWith('anybios-node-'));
      let count = 0;
      for (const db of dbs) {
        const res = await getJson(`${server.couchUrl}/${db}/_all_docs?include_docs=true&startkey=%22s%22&endkey=%22t%22`);
        count += res.rows.length;
      }
      if (count !== total) throw new Error(`scan found ${count}`);
    }));
  }

  // Catch-up after a restart: warm (snapshot + checkpoints) and cold (no snapshot).
  await server.close();
  let warm = 0;
  warm = await timeIt(async () => {
    server = live = await createServer({ dataDir, port: 0 });
    await waitIndexed(server, total);
  });
  await server.close();
  rmSync(join(dataDir, 'fleet-index.json'));
  const cold = await timeIt(async () => {
    server = live = await createServer({ dataDir, port: 0 });
    await waitIndexed(server, total);
  });
  await server.close();

  report('api', [
    { metric: `GET /api/systems p50 (${total} systems)`, value: percentile(indexTimes, 50), unit: 'ms', baseline: percentile(scanTimes, 50), note: `baseline: scan of ${NODES} databases per request` },
    { metric: 'GET /api/systems p99', value: percentile(indexTimes, 99), unit: 'ms', baseline: percentile(scanTimes, 99) },
    { metric: 'index catch-up after restart (snapshot)', value: warm, unit: 'ms', baseline: cold, note: 'baseline: rebuild from nothing; both include server start' },
  ], { nodes: NODES, systemsPerNode: SYSTEMS, rounds: ROUNDS });
} finally {
  await guard.done();
}
