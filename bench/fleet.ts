// bench/fleet: a fleet of N nodes × S systems on one anybios server, for each store given — the embedded
// CouchDB and Apache CouchDB (single node, cluster) — in the same run:
//   - enrolment (POST /api/nodes) total and per node p50/p99;
//   - server RSS after the fleet is written (and the CouchDB process's, when we can find it);
//   - `/api/systems` and `/api/nodes` p50/p99 as an admin and as an operator (read rights per database);
//   - fleet index catch-up after a restart, warm (its snapshot) and cold (snapshot removed);
//   - one new agent's catch-up time with 10 nodes enrolled and with N (must stay flat: the ratio);
//   - edit → running p50/p99 for one real agent, alone and while 100 other agents sync under churn.
// The "other agents" are simulated in this process: each a PouchDB copy with the agent's own NodeSync and
// a responder that answers every spec change with a status document, as an agent does (no runtime).
// Usage: node --import tsx bench/fleet.ts [nodes=1000] [systemsPerNode=10] [edits=50] [syncing=100]
//   FLEET_COUCH="single=http://admin:pw@127.0.0.1:5984 cluster=http://admin:pw@127.0.0.1:15984" adds stores.
//   FLEET_ONLY=embedded|single|… runs one store only. Needs root (the real agent starts a system).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import PouchDB from 'pouchdb';
import { nodeDbName } from '../ddocs/build.ts';
import { eachLimit } from '../server/each-limit.ts';
import { NodeSync } from '../agent/sync/node-sync.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { docErrors } from '../ddocs/validate.ts';
import { CLI, basic, call, removeDataDir, startServer, type TestServer } from '../test/helpers/server.ts';
import { guardBench, percentile, report, statusRunningAt, timeIt, type Row } from './lib.ts';

const NODES = Number(process.argv[2] ?? 1000);
const PER_NODE = Number(process.argv[3] ?? 10);
const EDITS = Number(process.argv[4] ?? 50);
const SYNCING = Math.min(Number(process.argv[5] ?? 100), NODES);
const ENROL_CONCURRENCY = 8;
if (process.getuid?.() !== 0) throw new Error('bench/fleet starts a real system: run it as root');

const stores: { name: string; couchUrl?: string }[] = [{ name: 'embedded' }];
for (const item of (process.env.FLEET_COUCH ?? '').split(/\s+/).filter(Boolean)) {
  const eq = item.indexOf('=');
  if (eq < 1) throw new Error(`FLEET_COUCH: "${item}" is not name=url`);
  stores.push({ name: item.slice(0, eq), couchUrl: item.slice(eq + 1) });
}
const only = process.env.FLEET_ONLY;
const runs = only ? stores.filter((s) => s.name === only) : stores;
if (!runs.length) throw new Error(`FLEET_ONLY=${only}: no such store (have ${stores.map((s) => s.name).join(', ')})`);

const work = mkdtempSync(join('/var/tmp', 'anybios-bench-fleet-'));
const run = randomBytes(2).toString('hex'); // node ids are unique per run: an external CouchDB may hold older ones
const OPERATOR = `fleet-op-${run}`;
const OPERATOR_PASSWORD = randomBytes(12).toString('hex');
const children: ChildProcess[] = [];
const syncs: { ns: NodeSync; db: PouchDB.Database; feed?: PouchDB.Core.Changes<object> }[] = [];
let server: TestServer | null = null;
const enrolled: string[] = [];

const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
const app = (name: string, tag: string) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', `echo ${tag}; trap 'exit 0' TERM; while :; do sleep 5 & wait; done`] });
const nodeId = (i: number) => `fl${run}-${String(i).padStart(4, '0')}`;

/** The pid listening on a loopback port (the CouchDB process behind a URL), or null. */
function listenerPid(url: string): number | null {
  try {
    const port = new URL(url).port || '80';
    const out = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
    const m = /pid=(\d+)/.exec(out);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function cleanupStore(s: TestServer, couchUrl?: string): Promise<void> {
  for (const x of syncs.splice(0)) {
    x.feed?.cancel();
    await x.ns.stop().catch(() => {});
    await x.db.close().catch(() => {});
  }
  for (const p of children.splice(0)) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  // Each store's real agent has its own data dir and node id: a second store must not meet the first
  // one's local copy (the same run once waited 120 s for a system there).
  const rt = await createRuntime({ checkDoc: docErrors, dataDir: agentDir() }).catch(() => null);
  for (const o of (await rt?.list().catch(() => [])) ?? []) await rt!.destroy(o.name).catch(() => {});
  // Remove what this run made (an external CouchDB is shared), a few at a time.
  await eachLimit(enrolled.splice(0), 8, async (id) => void (await call(s.url, `/api/nodes/${id}`, { method: 'DELETE', auth: s.adminAuth }).catch(() => {})));
  // Whatever a failed DELETE left (a busy CouchDB answers 500 all_dbs_active): this run's names only.
  // Straight to an external CouchDB (our server may be the thing that died), else through our server.
  const base = couchUrl ? couchUrl.replace(/\/$/, '') : s.couchUrl;
  const u0 = couchUrl ? new URL(couchUrl) : null;
  const auth = u0 ? basic(decodeURIComponent(u0.username), decodeURIComponent(u0.password)) : s.adminAuth;
  const plain = u0 ? `${u0.protocol}//${u0.host}${u0.pathname.replace(/\/$/, '')}` : base;
  const left = await call(plain, '/_all_dbs', { auth }).catch(() => null);
  await eachLimit((Array.isArray(left?.body) ? (left.body as string[]) : []).filter((d) => d.startsWith(nodeDbName(`fl${run}-`))), 4, async (db) => void (await call(plain, `/${encodeURIComponent(db)}`, { method: 'DELETE', auth }).catch(() => {})));
  const users = await call(plain, `/_users/_all_docs?startkey=${encodeURIComponent(JSON.stringify(`org.couchdb.user:node-fl${run}-`))}&endkey=${encodeURIComponent(JSON.stringify(`org.couchdb.user:node-fl${run}-\ufff0`))}`, { auth }).catch(() => null);
  await eachLimit((users?.body?.rows ?? []) as { id: string; value: { rev: string } }[], 4, async (r) => void (await call(plain, `/_users/${encodeURIComponent(r.id)}?rev=${r.value.rev}`, { method: 'DELETE', auth }).catch(() => {})));
  const u = await call(plain, `/_users/org.couchdb.user:${OPERATOR}`, { auth }).catch(() => null);
  if (u?.status === 200) await call(plain, `/_users/org.couchdb.user:${OPERATOR}?rev=${u.body._rev}`, { method: 'DELETE', auth }).catch(() => {});
  await s.stop();
  removeDataDir(s.dataDir);
}

const guard = guardBench('fleet', async () => {
  if (server) await cleanupStore(server, currentCouch).catch((err) => console.error(`fleet: cleanup: ${err}`));
  rmSync(work, { recursive: true, force: true });
});

async function enrol(s: TestServer, id: string): Promise<{ user: string; password: string }> {
  const r = await call(s.url, '/api/nodes', { method: 'POST', auth: s.adminAuth, json: { id } });
  if (r.status !== 201) throw new Error(`enrol ${id}: ${r.status} ${r.text}`);
  enrolled.push(id);
  return { user: r.body.config.user, password: r.body.config.password };
}

/** What a node's agent would have written: its node document, S systems (admin) and S status documents (node). */
async function fill(s: TestServer, id: string, cred: { user: string; password: string }, n: number): Promise<void> {
  const db = nodeDbName(id);
  const specs = Array.from({ length: n }, (_, i) => app(`s${i}`, 'x'));
  const r = await call(s.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: s.adminAuth, json: { docs: specs } });
  if (r.status !== 201) throw new Error(`fill ${id}: ${r.status} ${r.text}`);
  const now = new Date().toISOString();
  const status = (r.body as { id: string; rev: string }[]).map((x) => ({ _id: `status:${x.id.slice(7)}`, type: 'status', name: x.id.slice(7), phase: 'running', observedRev: x.rev, updated: now }));
  const node = { _id: `node:${id}`, type: 'node', name: id, hostname: `host-${id}`, heartbeat: now, agentVersion: 'bench' };
  const w = await call(s.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: basic(cred.user, cred.password), json: { docs: [node, ...status] } });
  if (w.status !== 201 || (w.body as { error?: string }[]).some((x) => x.error)) throw new Error(`status ${id}: ${w.status} ${w.text.slice(0, 300)}`);
}

async function apiTimes(s: TestServer, path: string, auth: string, n: number, expect: (body: unknown) => boolean): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let r: Awaited<ReturnType<typeof call>> | undefined;
    out.push(await timeIt(async () => void (r = await call(s.url, path, { auth }))));
    if (r!.status !== 200 || !expect(r!.body)) throw new Error(`${path}: unexpected answer ${r!.status}: ${Array.isArray(r!.body) ? `${r!.body.length} rows` : r!.text.slice(0, 300)}`);
  }
  return out;
}

/** From the server's spawn until `/api/systems` lists `expected` rows. */
async function restartUntilIndexed(s: TestServer, expected: number, cold: boolean): Promise<{ server: TestServer; ms: number; readyMs: number }> {
  await s.stop();
  if (cold) rmSync(join(s.dataDir, 'fleet-index.json'), { force: true });
  const t0 = performance.now();
  const next = await startServer({ dataDir: s.dataDir, ...(currentCouch ? { couchUrl: currentCouch } : {}) });
  const readyMs = performance.now() - t0;
  for (;;) {
    const r = await call(next.url, '/api/systems', { auth: next.adminAuth }).catch(() => null);
    if (r?.status === 200 && (r.body as unknown[]).length >= expected) break;
    if (performance.now() - t0 > 600_000) throw new Error('the fleet index did not catch up in 10 minutes');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { server: next, ms: performance.now() - t0, readyMs };
}

/** The server's event-loop delay since the previous scrape, in ms (GET /metrics). */
async function loopDelay(s: TestServer): Promise<{ p99: number; max: number }> {
  const r = await call(s.url, '/metrics', { auth: s.adminAuth });
  const q = (quantile: string) => Number(new RegExp(`anybios_event_loop_delay_seconds\\{quantile="${quantile}"\\} ([0-9.]+)`).exec(r.text)?.[1] ?? NaN) * 1000;
  return { p99: q('0.99'), max: q('1') };
}

/** A new node with S systems: time until its local copy holds them all (the agent's own NodeSync). */
async function newAgentCatchUp(s: TestServer, id: string): Promise<number> {
  const cred = await enrol(s, id);
  await fill(s, id, cred, PER_NODE);
  const local = new PouchDB(join(work, `catch-${id}`));
  const ns = new NodeSync({ local, remoteUrls: [`${s.couchUrl}/${nodeDbName(id)}`], auth: { username: cred.user, password: cred.password } });
  const expected = 2 * PER_NODE + 1 + 1; // specs, statuses, node doc, design doc
  try {
    return await timeIt(async () => {
      ns.start();
      const t0 = Date.now();
      while ((await local.info()).doc_count < expected) {
        if (Date.now() - t0 > 120_000) throw new Error(`new agent ${id} did not catch up in 2 minutes`);
        await new Promise((r) => setTimeout(r, 10));
      }
    });
  } finally {
    await ns.stop();
    await local.destroy().catch(() => {});
  }
}

/** A simulated agent: its node's copy, live sync, and a status answer to every spec change. */
function simulatedAgent(s: TestServer, id: string, cred: { user: string; password: string }): void {
  const db = new PouchDB(join(work, `sim-${id}`));
  const ns = new NodeSync({ local: db, remoteUrls: [`${s.couchUrl}/${nodeDbName(id)}`], auth: { username: cred.user, password: cred.password } });
  ns.start();
  const feed = db.changes({ live: true, since: 'now', include_docs: true }).on('change', (c) => {
    const d = c.doc as { _rev: string; type?: string; name?: string; _deleted?: boolean };
    if (d.type !== 'system' || d._deleted) return;
    void db.get(`status:${d.name}`).catch(() => null).then((cur) => db.put({ _id: `status:${d.name}`, ...(cur ? { _rev: cur._rev } : {}), type: 'status', name: d.name, phase: 'running', observedRev: d._rev, updated: new Date().toISOString() } as never)).catch(() => {});
  });
  syncs.push({ ns, db, feed });
}

function startRealAgent(s: TestServer, id: string, password: string): ChildProcess {
  const dataDir = agentDir();
  mkdirSync(dataDir, { recursive: true });
  const cfg = join(dataDir, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: s.url, node: id, user: `node-${id}`, password }), { mode: 0o600 });
  const p = spawn(join(dirname(CLI), 'anybios-agent'), ['--config', cfg, '--data', dataDir], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' } });
  children.push(p);
  return p;
}

async function editTimes(s: TestServer, id: string, n: number): Promise<number[]> {
  const db = nodeDbName(id);
  const get = (path: string) => call(s.couchUrl, path, { auth: s.adminAuth });
  const put = async (doc: Record<string, unknown>) => {
    const cur = await get(`/${db}/${doc._id}`);
    const r = await call(s.couchUrl, `/${db}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
    if (r.status !== 201) throw new Error(r.text);
    return r.body.rev as string;
  };
  await statusRunningAt(get, db, 'edit', await put(app('edit', 'v0')), 120_000);
  const times: number[] = [];
  for (let i = 1; i <= n; i++) times.push(await timeIt(async () => statusRunningAt(get, db, 'edit', await put(app('edit', `v${i}`)), 60_000)));
  return times;
}

let currentCouch: string | undefined;
let currentStore = '';
const agentDir = () => join(work, `agent-${currentStore}`);
const rows: Row[] = [];
const meta: Record<string, unknown> = { nodes: NODES, systemsPerNode: PER_NODE, edits: EDITS, syncing: SYNCING, stores: runs.map((s) => s.name) };

try {
  for (const store of runs) {
    currentCouch = store.couchUrl;
    currentStore = store.name;
    const tag = `[${store.name}]`;
    console.log(`${tag} starting`);
    server = await startServer(store.couchUrl ? { couchUrl: store.couchUrl } : {});
    let s = server;
    const couchPid = store.couchUrl ? listenerPid(store.couchUrl) : null;
    if (store.couchUrl) {
      // Each node database is q shard files; when CouchDB cannot close one to open another it answers
      // 500 all_dbs_active (seen at 662 nodes with the default 500). Say so before minutes of enrolment.
      const open = await call(s.couchUrl, '/_node/_local/_config/couchdb/max_dbs_open', { auth: s.adminAuth });
      const q = await call(s.couchUrl, '/_node/_local/_config/cluster/q', { auth: s.adminAuth });
      const need = (Number(q.body) || 2) * (NODES + 2) + 100;
      if (Number(open.body || 500) < need) console.log(`${tag} warning: [couchdb] max_dbs_open is ${open.body || '500 (default)'}; ${NODES} nodes need about ${need} (docs/production.md)`);
    }
    await call(s.couchUrl, '/anybios/template:host', { method: 'PUT', auth: s.adminAuth, json: { type: 'template', name: 'host', source: 'host' } });
    const op = await call(s.couchUrl, `/_users/org.couchdb.user:${OPERATOR}`, { method: 'PUT', auth: s.adminAuth, json: { type: 'user', name: OPERATOR, roles: ['operator'], password: OPERATOR_PASSWORD } });
    if (op.status !== 201) throw new Error(`operator: ${op.text}`);
    const opAuth = basic(OPERATOR, OPERATOR_PASSWORD);

    // ---- enrolment and the fleet's documents ----------------------------------------------------
    const creds = new Map<string, { user: string; password: string }>();
    const enrolTimes: number[] = [];
    const ids = Array.from({ length: NODES }, (_, i) => nodeId(i));
    let catchSmall = NaN;
    const t0 = performance.now();
    let done = 0;
    const progress = setInterval(() => console.log(`${tag} enrolled ${done}/${NODES}`), 10_000);
    try {
      // The first 10 alone, then the new-agent catch-up with a fleet of 10.
      for (const [i, batch] of [ids.slice(0, 10), ids.slice(10)].entries()) {
        await eachLimit(batch, ENROL_CONCURRENCY, async (id) => {
          const t = performance.now();
          const c = await enrol(s, id);
          enrolTimes.push(performance.now() - t);
          creds.set(id, c);
          await fill(s, id, c, PER_NODE);
          done++;
        });
        if (i === 0) catchSmall = await newAgentCatchUp(s, `fl${run}-new10`);
      }
    } finally {
      clearInterval(progress);
    }
    const enrolTotal = performance.now() - t0;
    const catchBig = await newAgentCatchUp(s, `fl${run}-new${NODES}`);
    const total = (NODES + 2) * PER_NODE;
    // Let the index settle, then measure the server.
    for (let t = Date.now(); ;) {
      const r = await call(s.url, '/api/systems', { auth: s.adminAuth });
      if (r.status === 200 && r.body.length >= total) break;
      if (Date.now() - t > 300_000) throw new Error(`the index lists ${r.body.length} of ${total} systems after 5 minutes`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const serverRss = rssKiB(s.proc.pid!);
    const couchRss = couchPid ? rssKiB(couchPid) : NaN;
    const sysAdmin = await apiTimes(s, '/api/systems', s.adminAuth, 30, (b) => (b as unknown[]).length >= total);
    const sysOp = await apiTimes(s, '/api/systems', opAuth, 30, (b) => (b as unknown[]).length >= total);
    const nodesOp = await apiTimes(s, '/api/nodes', opAuth, 30, (b) => (b as unknown[]).length >= NODES);
    const oneNode = await apiTimes(s, `/api/systems?node=${nodeId(0)}`, opAuth, 30, (b) => (b as unknown[]).length === PER_NODE);

    // ---- index catch-up after a restart -----------------------------------------------------------
    const warm = await restartUntilIndexed(s, total, false);
    server = s = warm.server;
    const cold = await restartUntilIndexed(s, total, true);
    server = s = cold.server;
    const rssAfterRestart = rssKiB(s.proc.pid!);

    // ---- edit → running: one real agent, alone, then with 100 agents syncing under churn ----------
    const real = `fl${run}-real-${store.name}`;
    const realCred = await enrol(s, real);
    startRealAgent(s, real, realCred.password);
    await loopDelay(s);
    const alone = await editTimes(s, real, EDITS);
    const loopAlone = await loopDelay(s);
    for (const id of ids.slice(0, SYNCING)) simulatedAgent(s, id, creds.get(id)!);
    let churn = true;
    let churned = 0;
    const churner = (async () => {
      let i = 0;
      while (churn) {
        const id = ids[i++ % SYNCING];
        const name = `s${i % PER_NODE}`;
        const db = nodeDbName(id);
        const cur = await call(s.couchUrl, `/${db}/system:${name}`, { auth: s.adminAuth }).catch(() => null);
        if (cur?.status === 200) {
          const w = await call(s.couchUrl, `/${db}/system:${name}`, { method: 'PUT', auth: s.adminAuth, json: { ...cur.body, labels: { churn: String(i) } } }).catch(() => null);
          if (w?.status === 201) churned++;
        }
        await new Promise((r) => setTimeout(r, 50)); // ~20 edits/s across the 100 nodes
      }
    })();
    // Measure once every simulated agent holds its node's documents (their first pulls are done).
    for (const t = Date.now(); ;) {
      const counts = await Promise.all(syncs.map((x) => x.db.info().then((i) => i.doc_count)));
      if (counts.every((n) => n >= 2 * PER_NODE + 2)) break;
      if (Date.now() - t > 300_000) throw new Error(`simulated agents not caught up after 5 minutes: ${counts.filter((n) => n < 2 * PER_NODE + 2).length} behind`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 2000));
    await loopDelay(s);
    const busy = await editTimes(s, real, EDITS);
    const loopBusy = await loopDelay(s);
    churn = false;
    await churner;
    console.log(`${tag} edit → running, ms: alone ${alone.map((t) => t.toFixed(0)).join(' ')}; busy ${busy.map((t) => t.toFixed(0)).join(' ')}`);

    const k = (n: number) => n / 1024;
    rows.push(
      { metric: `${tag} enrol ${NODES} nodes × ${PER_NODE} systems (total)`, value: enrolTotal / 1000, unit: 's', note: `${ENROL_CONCURRENCY} at a time, with each node's documents` },
      { metric: `${tag} enrol one node, p50`, value: percentile(enrolTimes, 50), unit: 'ms' },
      { metric: `${tag} enrol one node, p99`, value: percentile(enrolTimes, 99), unit: 'ms' },
      { metric: `${tag} server RSS, fleet written`, value: k(serverRss), unit: 'MiB', note: 'the anybios server process' },
      ...(store.couchUrl ? [{ metric: `${tag} CouchDB RSS, fleet written`, value: k(couchRss), unit: 'MiB', note: couchPid ? `pid ${couchPid} (first node)` : 'pid not found' }] : []),
      { metric: `${tag} server RSS after restart`, value: k(rssAfterRestart), unit: 'MiB' },
      { metric: `${tag} /api/systems (${total} rows) admin, p50`, value: percentile(sysAdmin, 50), unit: 'ms' },
      { metric: `${tag} /api/systems admin, p99`, value: percentile(sysAdmin, 99), unit: 'ms' },
      { metric: `${tag} /api/systems operator, p50`, value: percentile(sysOp, 50), unit: 'ms', baseline: percentile(sysAdmin, 50), note: 'baseline: admin (no read-rights check)' },
      { metric: `${tag} /api/systems operator, p99`, value: percentile(sysOp, 99), unit: 'ms', baseline: percentile(sysAdmin, 99) },
      { metric: `${tag} /api/nodes operator, p50`, value: percentile(nodesOp, 50), unit: 'ms' },
      { metric: `${tag} /api/nodes operator, p99`, value: percentile(nodesOp, 99), unit: 'ms' },
      { metric: `${tag} /api/systems?node= operator, p50`, value: percentile(oneNode, 50), unit: 'ms' },
      { metric: `${tag} server restart, spawn → listening`, value: warm.readyMs, unit: 'ms', note: 'setup checks every node database' },
      { metric: `${tag} index catch-up after restart, warm`, value: warm.ms, unit: 'ms', note: 'spawn → /api/systems complete, with the snapshot' },
      { metric: `${tag} index catch-up after restart, cold`, value: cold.ms, unit: 'ms', baseline: warm.ms, note: 'snapshot removed; baseline: warm' },
      { metric: `${tag} new agent catch-up, fleet of ${NODES}`, value: catchBig, unit: 'ms', baseline: catchSmall, note: 'baseline: fleet of 10 (flat = 1.0x)' },
      { metric: `${tag} edit → running p50, ${SYNCING} agents syncing`, value: percentile(busy, 50), unit: 'ms', baseline: percentile(alone, 50), note: `baseline: no other agent syncing; ${churned} churn edits` },
      { metric: `${tag} edit → running p99, ${SYNCING} agents syncing`, value: percentile(busy, 99), unit: 'ms', baseline: percentile(alone, 99) },
      { metric: `${tag} server event-loop delay max, ${SYNCING} agents syncing`, value: loopBusy.max, unit: 'ms', baseline: loopAlone.max, note: `p99 ${loopBusy.p99.toFixed(1)} ms (alone ${loopAlone.p99.toFixed(1)} ms)` },
    );
    console.log(`${tag} done; cleaning up`);
    await cleanupStore(s, store.couchUrl);
    server = null;
  }
  report('fleet', rows, meta);
} finally {
  await guard.done();
}
