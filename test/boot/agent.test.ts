// The PE built with --agent under qemu (software emulation, user networking): resident mode starts the
// data disk's two systems with its shell runtime and runs the agent (node + the bundle from the initrd)
// with the node credential from the disk; the agent reaches the server this test started on the host's
// loopback (10.0.2.2 from inside) and the systems' status documents arrive there. Each qemu and the
// server are stopped in teardown, whatever happened.
import test, { type ExecutionContext } from 'ava';
import { promises as fsp } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { buildImage } from '../../boot/image.ts';
import { QemuMachine } from '../../boot/qemu.ts';
import { fixtureDisk } from '../../fixtures/boot/disk.ts';
import { addNode } from '../../server/nodes.ts';
import { CATALOG_DB, nodeDbName } from '../../ddocs/build.ts';
import { removeDataDir, startServer, type TestServer } from '../helpers/server.ts';

const TEST_BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';
const CACHE = process.env.ANYBIOS_IMAGE_CACHE ?? '/var/tmp/anybios-image-cache';
const BOOT_MS = 120_000; // PE boot ~10 s under TCG here with the 40 MB initrd; the margin is for a busy machine
const AGENT_MS = 240_000; // node starting under TCG, then the first sync

let base = '';
let image = '';
let server: TestServer | undefined;

test.before(async (t) => {
  t.timeout(600_000);
  for (const tool of ['qemu-system-x86_64', 'mkfs.ext4', 'debugfs', 'ldd']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is needed (apt-get install qemu-system-x86 e2fsprogs)`);
  }
  base = await fsp.mkdtemp(`${TEST_BASE}/anybios-boot-agent-test-`);
  image = `${base}/image`;
  const m = await buildImage({ out: image, cache: CACHE, agent: true, log: (s) => t.log(s) });
  t.log(`initrd ${(m.initrdBytes / 1048576).toFixed(1)} MiB with node ${m.agent?.nodeVersion}`);
  server = await startServer();
});

test.after.always(async () => {
  if (server) {
    await server.stop();
    removeDataDir(server.dataDir);
  }
  if (base) await fsp.rm(base, { recursive: true, force: true });
});

const portOf = (url: string) => new URL(url).port;

/** A node on the server with system0 and system1 (fixture template, a dir template on the disk). */
async function fleetNode(id: string, systems: string[]): Promise<{ credential: object; db: ReturnType<TestServer['admin']['use']> }> {
  const s = server!;
  const c = await addNode(s.admin, id);
  const catalog = s.admin.use(CATALOG_DB);
  await catalog.insert({ _id: 'template:fixture', type: 'template', name: 'fixture', source: 'dir', path: '/anybios/templates/fixture' } as never).catch((e: { statusCode?: number }) => {
    if (e.statusCode !== 409) throw e;
  });
  const db = s.admin.use(nodeDbName(id));
  for (const name of systems) await db.insert({ _id: `system:${name}`, type: 'system', name, kind: 'os', template: 'fixture', state: 'running' } as never);
  // What `anybios node add` prints, for a server the PE reaches over qemu's user network (not loopback
  // from inside: plain http must be allowed explicitly).
  const credential = { server: `http://10.0.2.2:${portOf(s.url)}`, node: c.node, user: c.user, password: c.password, insecureHttp: true };
  return { credential, db };
}

async function boot(t: ExecutionContext, append: string, node?: object): Promise<QemuMachine & { disk: string }> {
  const dir = await fsp.mkdtemp(`${base}/run-`);
  const disk = await fixtureDisk(dir, ['system0', 'system1'], node);
  const m = new QemuMachine({ kernel: `${image}/vmlinuz`, initrd: `${image}/initrd.img`, append: `console=ttyS0 panic=-1 ${append}`, disks: [disk], net: true, memMiB: 1024 });
  t.teardown(async () => {
    await m.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return Object.assign(m, { disk });
}

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms: number, context: () => string): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  while (Date.now() < end) {
    last = await fn().catch(() => undefined as T);
    if (last !== undefined && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)}); console:\n${context()}`);
}

const count = (s: string, re: RegExp) => (s.match(new RegExp(re.source, 'g')) ?? []).length;

test.serial('image build --agent: node, its libraries at their ldd paths, the bundle, leveldown\'s binaries and the scripts are in the initrd', async (t) => {
  const list = execFileSync('sh', ['-c', `zcat '${image}/initrd.img' | cpio -t --quiet`], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n');
  for (const f of ['lib/anybios/agent/node', 'lib/anybios/agent/agent.mjs', 'lib/anybios/agent/ddocs/lib/rules.js', 'lib/anybios/agent.sh', 'lib/anybios/udhcpc.sh', 'lib/anybios/start-system', 'lib/anybios/stop-system', 'lib64/ld-linux-x86-64.so.2', 'lib/x86_64-linux-gnu/libc.so.6', 'lib/x86_64-linux-gnu/libstdc++.so.6']) t.true(list.includes(f), f);
  // leveldown's binary per leveldown version in the bundle (PouchDB's and level's), each its own.
  t.is(list.filter((f) => /^lib\/anybios\/agent\/leveldown-\d+\.\d+\.\d+\.node$/.test(f)).length, 2);
  t.true(list.some((f) => /^lib\/anybios\/agent\/node_modules\/\.cache\/anybios\/schemas-[0-9a-f]{16}\.js$/.test(f)), 'the compiled schemas');
  const manifest = JSON.parse(await fsp.readFile(`${image}/image.json`, 'utf8'));
  t.is(manifest.agent.libraries['/lib/x86_64-linux-gnu/libc.so.6'], 'libc6');
  t.is(manifest.agent.nodeVersion, process.version);
});

test.serial('resident --agent: both systems run and their status documents reach the server (running); a fleet edit stops one', async (t) => {
  t.timeout(AGENT_MS + 3 * BOOT_MS);
  const { credential, db } = await fleetNode('pe1', ['system0', 'system1']);
  const m = await boot(t, `anybios.root=LABEL=anybios anybios.mode=resident anybios.boot=system0,system1 anybios.server=http://10.0.2.2:${portOf(server!.url)} anybios.debug`, credential);
  await m.waitFor(/anybios: resident: running system0 system1/, BOOT_MS);
  await m.waitFor(/anybios: network: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2 \(DHCP\)/, BOOT_MS);
  await m.waitFor(/anybios: agent: starting \(node data \/anybios\/node on LABEL=anybios, server http:\/\/10\.0\.2\.2:\d+/, BOOT_MS);
  const t0 = performance.now();
  for (const name of ['system0', 'system1']) {
    const st = await until(`status:${name} running on the server`, async () => (await db.get(`status:${name}`)) as unknown as { phase: string; pid: number | null; logTail: string }, (d) => d.phase === 'running', AGENT_MS, () => m.tail(60));
    t.true(typeof st.pid === 'number' && st.pid > 1, `${name} reports the init's pid in the PE`);
    // Its output reaches the console and its log in the PE (the status' logTail).
    t.regex(st.logTail, new RegExp(`test-init: system=${name} pid=1 template=fixture hostname=${name}`));
  }
  t.log(`status documents running ${((performance.now() - t0) / 1000).toFixed(1)} s after the agent started; ${((performance.now() - m.startedAt) / 1000).toFixed(1)} s after qemu started`);
  // Adopted as /init started them: each init ran once (no restart by the agent).
  t.is(count(m.output, /test-init: system=system0 /), 1);
  t.is(count(m.output, /test-init: system=system1 /), 1);
  const nodeDoc = (await db.get('node:pe1')) as unknown as { hostname: string; capabilities: { launcherReason: string } };
  t.is(nodeDoc.hostname, 'anybios');
  t.regex(nodeDoc.capabilities.launcherReason, /the anybios PE/);
  // The fleet stops system1: the agent halts it through the PE's stop-system, and says so.
  const spec = (await db.get('system:system1')) as unknown as Record<string, unknown>;
  await db.insert({ ...spec, state: 'stopped' } as never);
  await m.waitFor(/test-init: system1 stopping/, AGENT_MS);
  await until('status:system1 stopped', async () => (await db.get("status:system1")) as unknown as { phase: string }, (d) => d.phase === 'stopped', AGENT_MS, () => m.tail(60));
  t.is(((await db.get('status:system0')) as unknown as { phase: string }).phase, 'running');
  // poweroff at the PE's shell: the agent is stopped first (it would start system0 again), then
  // system0 halts, the disk is unmounted and qemu exits; the agent's database stayed on the disk.
  await m.waitFor(/Please press Enter to activate this console/, BOOT_MS);
  m.send('\n');
  await new Promise((r) => setTimeout(r, 1000));
  m.send('poweroff\n');
  await m.waitFor(/test-init: system0 stopping[\s\S]*anybios: resident: systems stopped, data disk unmounted/, BOOT_MS);
  const code = await Promise.race([m.exited, new Promise((r) => setTimeout(() => r('still running'), BOOT_MS))]);
  t.is(code, 0, 'qemu exits when the PE powers off');
  t.notRegex(m.output, /anybios: agent exited/);
  const ls = spawnSync('debugfs', ['-R', 'ls /anybios/node/agent/db', m.disk], { encoding: 'utf8' }).stdout;
  t.regex(ls, new RegExp(nodeDbName('pe1')), 'the agent\'s local copy of its node database is on the data disk');
});

test.serial('resident --agent with a static address (anybios.net): the agent reaches the server without DHCP', async (t) => {
  t.timeout(AGENT_MS + 2 * BOOT_MS);
  const { credential, db } = await fleetNode('pe2', []);
  const m = await boot(t, `anybios.root=LABEL=anybios anybios.mode=resident anybios.boot=system0 anybios.net=10.0.2.42/24,10.0.2.2,10.0.2.3 anybios.server=http://10.0.2.2:${portOf(server!.url)}`, credential);
  await m.waitFor(/anybios: network: eth0 10\.0\.2\.42\/24 via 10\.0\.2\.2 \(anybios\.net\)/, BOOT_MS);
  const node = await until('node:pe2 heartbeat on the server', async () => (await db.get('node:pe2')) as unknown as { hostname: string }, (d) => d.hostname === 'anybios', AGENT_MS, () => m.tail(60));
  t.is(node.hostname, 'anybios');
  t.notRegex(m.output, /\(DHCP\)/);
});

const rescues: [string, string, boolean, RegExp][] = [
  ['an anybios.server that is not an http(s) URL', 'anybios.server=ftp://10.0.2.2', true, /anybios: rescue: anybios\.server=ftp:\/\/10\.0\.2\.2: expected http:\/\/HOST\[:PORT\] or https:\/\/HOST\[:PORT\]/],
  ['an anybios.server with characters a URL host has not', 'anybios.server=http://a;b', true, /anybios: rescue: anybios\.server=http:\/\/a;b: expected http:\/\/HOST\[:PORT\]/],
  ['an anybios.server without a node credential on the disk', 'anybios.server=http://10.0.2.2:9', false, /anybios: rescue: anybios\.server=http:\/\/10\.0\.2\.2:9: no node credential on LABEL=anybios at \/anybios\/node\/agent\/credentials\.json/],
  ['a bad anybios.net', 'anybios.net=10.0.2.15', true, /anybios: rescue: anybios\.net=10\.0\.2\.15: expected dhcp, none or ADDRESS\/PREFIX/],
];

for (const [what, param, withCredential, message] of rescues) {
  test.serial(`resident --agent: rescue shell for ${what}, saying which parameter`, async (t) => {
    t.timeout(2 * BOOT_MS);
    const cred = withCredential ? { server: 'http://10.0.2.2:9', node: 'x', user: 'node-x', password: 'p' } : undefined;
    const m = await boot(t, `anybios.root=LABEL=anybios anybios.mode=resident anybios.boot=system0,system1 ${param}`, cred);
    await m.waitFor(message, BOOT_MS);
    await m.waitFor(/rescue: starting a shell on the console/, BOOT_MS);
    t.notRegex(m.output, /test-init:/, 'no system was started');
    t.notRegex(m.output, /anybios: agent: starting/);
    await new Promise((r) => setTimeout(r, 500));
    m.send('echo rescue-$((40 + 2))\n');
    await m.waitFor(/^rescue-42$/m, BOOT_MS);
  });
}
