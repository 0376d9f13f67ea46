// bench/template: time to running for a system on a new big template (a tar of random data, default
// 200 MB), (1) pulled whole and (2) pulled with the link cut at 50 % and resumed, beside a plain `curl`
// of the same attachment through the same link in the same run (the floor of a pull), and the upload
// (`anybios template add`). Ratios are to curl. Never crashes on a network error (a failed phase is
// a row with a note); always removes its agent, systems, server and files.
// Usage (root): node --import tsx bench/template.ts [megabytes=200]
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildRootfs } from '../fixtures/rootfs/build.ts';
import { addNode } from '../server/nodes.ts';
import { nodeDbName } from '../ddocs/build.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { docErrors } from '../ddocs/validate.ts';
import { CLI, call, removeDataDir, startServer, type TestServer } from '../test/helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../test/helpers/tcp-proxy.ts';
import { report, type Row } from './lib.ts';

const run = promisify(execFile);
const MB = Number(process.argv[2] ?? 200);
if (!Number.isFinite(MB) || MB <= 0) throw new Error('usage: bench/template.ts [megabytes]');
if (process.getuid?.() !== 0) throw new Error('bench/template starts real systems: run it as root');

const work = mkdtempSync(join('/var/tmp', 'anybios-bench-template-'));
const data = join(work, 'node');
let s: TestServer | null = null;
let proxy: TcpProxy | null = null;
let agent: ChildProcess | null = null;
let agentLog = '';
const rows: Row[] = [];
const notes: string[] = [];
const password = 'bench-node-password';

async function until(what: string, fn: () => Promise<boolean>, ms = 600_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A rootfs (the fixture) with `mb` MB of random data, packed; `tag` makes each tarball's sha256 its own. */
async function makeTar(tag: string, dir: string): Promise<string> {
  writeFileSync(join(dir, 'tag'), tag);
  const file = join(work, `${tag}.tar`);
  await run('tar', ['--numeric-owner', '-C', dir, '-cf', file, '.']);
  return file;
}

async function writeRandom(file: string, mb: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < mb; i++) if (!out.write(randomBytes(1024 * 1024))) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
}

async function runningSeconds(db: string, name: string): Promise<number> {
  const t0 = performance.now();
  const cur = await call(s!.couchUrl, `/${db}/system:${name}`, { auth: s!.adminAuth });
  const spec = { type: 'system', name, kind: 'app', template: name, state: 'running', network: 'none', command: ['/bin/sh', '-c', "trap 'exit 0' TERM; while :; do sleep 5 & wait; done"] };
  const r = await call(s!.couchUrl, `/${db}/system:${name}`, { method: 'PUT', auth: s!.adminAuth, json: { ...spec, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
  if (r.status !== 201) throw new Error(r.text);
  await until(`${name} running`, async () => (await call(s!.couchUrl, `/${db}/status:${name}`, { auth: s!.adminAuth })).body?.phase === 'running', 300_000);
  return (performance.now() - t0) / 1000;
}

/** One measured phase; false (and a note) when it failed, so the phases that need it are skipped. */
async function phase(name: string, fn: () => Promise<void>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    notes.push(`${name}: ${e.stderr?.trim() || e.message}`);
    console.error(`bench/template: ${name} failed: ${e.stderr?.trim() || e.message}`);
    return false;
  }
}

try {
  s = await startServer();
  proxy = await startTcpProxy(Number(new URL(s.url).port));
  await addNode(s.admin, 'bench', { password });
  const db = nodeDbName('bench');
  const cfg = join(work, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: proxy.url, node: 'bench', user: 'node-bench', password }), { mode: 0o600 });
  agent = spawn(process.execPath, [CLI, 'agent', '--config', cfg, '--data', data, '--watchdog', '2', '--disk-reserve', '64'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' } });
  agent.stdout!.on('data', (d) => (agentLog += d));
  agent.stderr!.on('data', (d) => (agentLog += d));
  await until('agent ready', async () => agentLog.includes('anybios agent ready'), 60_000);

  const dir = join(work, 'rootfs');
  await buildRootfs(dir);
  await writeRandom(join(dir, 'pad'), MB);
  const tarFull = await makeTar('full', dir);
  const tarCut = await makeTar('cut', dir);
  const size = statSync(tarFull).size;

  let curl = NaN;
  const uploaded = await phase('upload', async () => {
    for (const [name, file] of [['full', tarFull], ['cut', tarCut]] as const) {
      const t0 = performance.now();
      await run(process.execPath, [CLI, 'template', 'add', name, '--from', file, '--no-progress', '--url', s!.url, '--password', s!.adminPassword], { maxBuffer: 1 << 20 });
      if (name === 'full') rows.push({ metric: `upload (template add, ${MB} MB)`, value: (performance.now() - t0) / 1000, unit: 's' });
    }
  });
  if (!uploaded) throw new Error('no template uploaded: nothing to pull');
  await phase('curl', async () => {
    // The floor: the same attachment through the same link, with the node's credential, to /dev/null.
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{time_total} %{size_download}', '-u', `node-bench:${password}`, `${proxy!.url}/db/anybios/template:full/rootfs.tar`]);
    const [secs, bytes] = r.stdout.trim().split(' ').map(Number);
    if (bytes !== size) throw new Error(`curl fetched ${bytes} of ${size} bytes`);
    curl = secs;
    rows.push({ metric: 'curl of rootfs.tar (floor)', value: secs, unit: 's', note: `${(size / 1e6 / secs).toFixed(0)} MB/s` });
  });
  await phase('full pull', async () => {
    const secs = await runningSeconds(db, 'full');
    rows.push({ metric: 'time to running, new template, full pull', value: secs, unit: 's', baseline: curl, note: 'doc arrival + pull + sha256 + unpack + start' });
  });
  await phase('resumed pull', async () => {
    proxy!.cutAfter(Math.floor(size / 2));
    const cutsBefore = proxy!.cuts;
    const done = runningSeconds(db, 'cut');
    await until('the cut', async () => proxy!.cuts > cutsBefore);
    proxy!.cutAfter(null);
    const secs = await done;
    const m = /template cut: resuming the pull at ([\d.]+) MB of ([\d.]+) MB/.exec(agentLog);
    const refetched = m ? Number(m[2]) - Number(m[1]) : NaN;
    rows.push({ metric: 'time to running, link cut at 50 %, resumed', value: secs, unit: 's', baseline: curl, note: 'cut, retried at once, Range from the break, sha256 over the whole file' });
    rows.push({ metric: 'bytes fetched after the cut', value: refetched, unit: 'MB', baseline: Number(m?.[2] ?? NaN), note: 'ratio = share of the tarball fetched again (from zero: 1.00x)' });
  });
} catch (err) {
  notes.push(`setup: ${(err as Error).message}`);
  console.error(`bench/template: ${(err as Error).message}`);
} finally {
  if (agent && agent.exitCode === null) {
    const gone = new Promise((r) => agent!.once('exit', r));
    agent.kill('SIGTERM');
    await gone;
  }
  const rt = await createRuntime({ checkDoc: docErrors, dataDir: data }).catch(() => null);
  for (const o of (await rt?.list().catch(() => [])) ?? []) await rt!.destroy(o.name, { volumes: true }).catch(() => {});
  await proxy?.close().catch(() => {});
  if (s) {
    await s.stop().catch(() => {});
    removeDataDir(s.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
}
for (const line of agentLog.split('\n')) if (/template (full|cut)|TEMPLATE_/.test(line)) notes.push(line.replace(/^agent \S+: /, ''));
console.log(notes.join('\n'));
report('template', rows, { megabytes: MB, notes });
