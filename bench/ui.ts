// bench/ui: the web console in real Chromium with N systems (default 1,000) on one node.
//   first load   navigation (already logged in) → every system row in the table; baseline: the page
//                fetching /api/systems itself (the data alone), same run
//   JS shipped   the bundle's bytes over the wire (gzip), against the 150 KiB budget
//   status → page  a status document written (as the agent would) → its row shows the new phase;
//                baseline: the same event arriving at a bare EventSource in the same page
// Usage: node --import tsx bench/ui.ts [systems]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createServer } from '../server/app.ts';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import { percentile, report } from './lib.ts';

const SYSTEMS = Number(process.argv[2] ?? 1000);
const LOADS = 7;
const CHANGES = 15;
const password = 'bench-admin-password';
process.env.ANYBIOS_ADMIN_PASSWORD = password;
const median = (v: number[]) => percentile(v, 50);

const dataDir = mkdtempSync(join(tmpdir(), 'anybios-bench-ui-'));
const server = await createServer({ dataDir, port: 0 });
const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
try {
  await addNode(server.admin, 'bench');
  const db = server.admin.use(nodeDbName('bench'));
  const now = new Date().toISOString();
  await db.insert({ _id: 'node:bench', type: 'node', name: 'bench', heartbeat: now, agentVersion: 'bench' } as never);
  const specs = Array.from({ length: SYSTEMS }, (_, i) => ({ _id: `system:s${i}`, type: 'system', name: `s${i}`, kind: 'app', template: 'host', state: 'running', command: ['/bin/true'], labels: { n: String(i % 10) } }));
  const revs = await db.bulk({ docs: specs as never[] });
  const statuses = specs.map((s, i) => ({ _id: `status:${s.name}`, type: 'status', name: s.name, phase: 'running', observedRev: revs[i].rev, pid: 1000 + i, updated: now }));
  const statusRevs = new Map((await db.bulk({ docs: statuses as never[] })).map((r) => [r.id, r.rev]));
  await server.index.ready;
  while (server.index.systemRows().filter((r) => r.phase).length < SYSTEMS) await new Promise((r) => setTimeout(r, 20));

  const page = await browser.context.newPage();
  await page.goto(server.url + '/');
  await page.getByLabel('User').fill('admin');
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('table.systems tbody tr').length === n, SYSTEMS, { timeout: 60_000 });

  // First load: fresh navigation with the session cookie, until every row is there.
  const loads: number[] = [];
  const dataOnly: number[] = [];
  for (let i = 0; i < LOADS; i++) {
    await page.goto('about:blank');
    const t0 = performance.now();
    await page.goto(server.url + '/#/');
    await page.waitForFunction((n) => document.querySelectorAll('table.systems tbody tr').length === n, SYSTEMS, { timeout: 60_000, polling: 'raf' });
    loads.push(performance.now() - t0);
    dataOnly.push(await page.evaluate(async () => {
      const t = performance.now();
      await (await fetch('/api/systems')).json();
      return performance.now() - t;
    }));
  }

  // fetch() decompresses; the bytes on the wire are the Content-Length of the gzip answer.
  const jsRes = await fetch(server.url + '/app.js', { headers: { 'Accept-Encoding': 'gzip' } });
  if (jsRes.headers.get('content-encoding') !== 'gzip') throw new Error('app.js was not sent gzipped');
  const js = { byteLength: Number(jsRes.headers.get('content-length')) };
  const css = gzipSync(Buffer.from(await (await fetch(server.url + '/style.css')).arrayBuffer())).length;

  // Status change → the row's phase badge, and → a bare EventSource in the same page (baseline).
  await page.evaluate(() => {
    const w = window as unknown as { seen: Record<string, number>; es: EventSource };
    w.seen = {};
    w.es = new EventSource('/api/events');
    w.es.addEventListener('status', (e) => {
      const d = JSON.parse((e as MessageEvent).data);
      w.seen[`${d.name}:${d.doc?.phase}`] = performance.now();
    });
  });
  await page.waitForFunction(() => (window as unknown as { es: EventSource }).es.readyState === 1);
  const toPage: number[] = [];
  const toEvent: number[] = [];
  for (let k = 0; k < CHANGES; k++) {
    const name = `s${(k * 37) % SYSTEMS}`;
    const phase = k % 2 ? 'running' : 'failed';
    const id = `status:${name}`;
    const prev = (await db.get(id)) as unknown as Record<string, unknown>;
    const startIn = await page.evaluate(() => performance.now());
    const tNode = performance.now();
    const r = await db.insert({ ...prev, phase, updated: new Date().toISOString() } as never);
    statusRevs.set(id, r.rev);
    await page.waitForFunction(([n, p]) => {
      const row = document.querySelector(`tr[data-name="${n}"] .badge`);
      return row?.textContent === p;
    }, [name, phase] as const, { polling: 'raf', timeout: 10_000 });
    toPage.push(performance.now() - tNode);
    const key = `${name}:${phase}`;
    await page.waitForFunction((k) => (window as unknown as { seen: Record<string, number> }).seen[k] !== undefined, key, { timeout: 10_000 });
    const seenAt = await page.evaluate((k) => (window as unknown as { seen: Record<string, number> }).seen[k], key);
    toEvent.push(seenAt - startIn);
    await page.waitForTimeout(100);
  }

  report('ui', [
    { metric: `first load to ${SYSTEMS} systems visible (median of ${LOADS})`, value: median(loads), unit: 'ms', baseline: median(dataOnly), note: 'baseline: fetching /api/systems alone' },
    { metric: 'first load p95', value: percentile(loads, 95), unit: 'ms' },
    { metric: 'JS shipped (gzip)', value: js.byteLength / 1024, unit: 'KiB', baseline: 150, note: 'baseline: the 150 KiB budget' },
    { metric: 'CSS shipped (gzip)', value: css / 1024, unit: 'KiB' },
    { metric: `status change → row shows it (median of ${CHANGES})`, value: median(toPage), unit: 'ms', baseline: median(toEvent), note: 'baseline: the SSE event reaching a bare EventSource' },
    { metric: 'status change → row p95', value: percentile(toPage, 95), unit: 'ms' },
  ], { systems: SYSTEMS, chromium: browser.context.browser()?.version() ?? 'chromium' });
} finally {
  await browser.close();
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
