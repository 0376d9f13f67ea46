// Boot figures of issue 14 (root; qemu-system-x86, e2fsprogs, mmdebstrap, systemd-container):
//   node --import tsx bench/boot.ts [RUNS] [--only agent]    prints a table, writes bench/results/boot.json
//                                                             (--only agent: parts 1 and 3, boot-agent.json)
// 1. The PE under qemu (software emulation unless ANYBIOS_QEMU_ACCEL=kvm): qemu start → system0's init
//    line on the serial console (switch), and → both systems' lines (resident).
// 2. An os system from the Debian bookworm template (imported once, cached like the tests' copy):
//    start → `systemctl is-system-running` says running/degraded, beside `systemd-nspawn --boot` of the
//    same rootfs in the same run, both polled the same way (nsenter into the container's pid 1).
// 3. The PE built with --agent, resident, with a server on this machine (qemu user networking): qemu
//    start → both systems' status documents `running` on the server (a new node each run: the agent's
//    first sync), beside the resident boot of part 1 (no agent).
import { promises as fsp, existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { buildImage } from '../boot/image.ts';
import { QemuMachine } from '../boot/qemu.ts';
import { fixtureDisk } from '../fixtures/boot/disk.ts';
import { addSystem, addTemplate, makeExt4 } from '../boot/disk.ts';
import { debianCacheName, importTemplate, sha256Of } from '../boot/os-template.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { docErrors } from '../ddocs/validate.ts';
import type { SystemDoc, TemplateDoc } from '../ddocs/schemas/types.ts';
import { percentile, report, type Row } from './lib.ts';
import { addNode } from '../server/nodes.ts';
import { CATALOG_DB, nodeDbName } from '../ddocs/build.ts';
import { removeDataDir, startServer } from '../test/helpers/server.ts';

const RUNS = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3);
const ONLY_AGENT = process.argv.includes('--only') && process.argv[process.argv.indexOf('--only') + 1] === 'agent';
const BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';
const CACHE = process.env.ANYBIOS_IMAGE_CACHE ?? '/var/tmp/anybios-image-cache';
const DEBIAN_TAR = `${CACHE}/${debianCacheName('bookworm')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => percentile(xs, 50);

const base = await fsp.mkdtemp(`${BASE}/anybios-bench-boot-`);
const cleanups: (() => Promise<unknown>)[] = [];
process.on('SIGINT', () => process.exit(130));
try {
  // --- 1. the PE under qemu ---------------------------------------------------------------------------
  const image = `${base}/image`;
  await buildImage({ out: image, cache: CACHE, log: (s) => console.error(s) });
  const qemuBoot = async (append: string, want: RegExp[]): Promise<number> => {
    const dir = await fsp.mkdtemp(`${base}/run-`);
    const disk = await fixtureDisk(dir);
    const m = new QemuMachine({ kernel: `${image}/vmlinuz`, initrd: `${image}/initrd.img`, append: `console=ttyS0 panic=-1 ${append}`, disks: [disk] });
    try {
      for (const re of want) await m.waitFor(re, 120_000);
      return performance.now() - m.startedAt;
    } finally {
      await m.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  };
  const sw: number[] = [];
  const res: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (!ONLY_AGENT) sw.push(await qemuBoot('anybios.root=LABEL=anybios anybios.mode=switch anybios.boot=system0', [/test-init: system=system0/]));
    res.push(await qemuBoot('anybios.root=LABEL=anybios anybios.mode=resident anybios.boot=system0,system1', [/test-init: system=system0/, /test-init: system=system1/]));
    console.error(`qemu run ${i + 1}: switch ${sw.at(-1)?.toFixed(0) ?? '-'} ms, resident ${res.at(-1)!.toFixed(0)} ms`);
  }

  // --- 3. the PE with the agent, reporting to a server on this machine ------------------------------------
  const agentImage = `${base}/image-agent`;
  const built = await buildImage({ out: agentImage, cache: CACHE, agent: true, log: (s) => console.error(s) });
  const server = await startServer();
  cleanups.push(async () => { await server.stop(); removeDataDir(server.dataDir); });
  await server.admin.use(CATALOG_DB).insert({ _id: 'template:fixture', type: 'template', name: 'fixture', source: 'dir', path: '/anybios/templates/fixture' } as never);
  const port = new URL(server.url).port;
  const agentStarted: number[] = [];
  const agentRunning: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const id = `bench-pe${i}`;
    const c = await addNode(server.admin, id);
    const db = server.admin.use(nodeDbName(id));
    for (const name of ['system0', 'system1']) await db.insert({ _id: `system:${name}`, type: 'system', name, kind: 'os', template: 'fixture', state: 'running' } as never);
    const dir = await fsp.mkdtemp(`${base}/agent-run-`);
    const disk = await fixtureDisk(dir, ['system0', 'system1'], { server: `http://10.0.2.2:${port}`, node: id, user: c.user, password: c.password, insecureHttp: true });
    const m = new QemuMachine({ kernel: `${agentImage}/vmlinuz`, initrd: `${agentImage}/initrd.img`, append: `console=ttyS0 panic=-1 anybios.root=LABEL=anybios anybios.mode=resident anybios.boot=system0,system1 anybios.server=http://10.0.2.2:${port}`, disks: [disk], net: true, memMiB: 1024 });
    try {
      await m.waitFor(/anybios: agent: starting/, 120_000);
      agentStarted.push(performance.now() - m.startedAt);
      const phase = (name: string) => db.get(`status:${name}`).then((d) => (d as unknown as { phase: string }).phase, () => null);
      while ((await phase('system0')) !== 'running' || (await phase('system1')) !== 'running') {
        if (performance.now() - m.startedAt > 300_000) throw new Error(`no running status documents within 300 s; console:\n${m.tail(40)}`);
        await sleep(100);
      }
      agentRunning.push(performance.now() - m.startedAt);
    } finally {
      await m.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
    console.error(`agent run ${i + 1}: agent started ${agentStarted.at(-1)!.toFixed(0)} ms, both status documents running ${agentRunning.at(-1)!.toFixed(0)} ms`);
  }
  const agentRows: Row[] = [
    { metric: 'PE resident --agent: qemu start → agent started', value: median(agentStarted), unit: 'ms', baseline: median(res), note: `initrd ${(built.initrdBytes / 1048576).toFixed(1)} MiB (node ${built.agent!.nodeVersion}); baseline: resident without agent` },
    { metric: 'PE resident --agent: qemu start → both status documents running on the server', value: median(agentRunning), unit: 'ms', baseline: median(res), note: 'first boot of a new node; baseline: resident without agent (inits on console)' },
  ];
  if (ONLY_AGENT) {
    report('boot-agent', [{ metric: 'PE resident: qemu start → system0+system1 inits', value: median(res), unit: 'ms', note: `median of ${RUNS}; ${process.env.ANYBIOS_QEMU_ACCEL === 'kvm' ? 'KVM' : 'TCG'}` }, ...agentRows], { runs: RUNS, raw: { res, agentStarted, agentRunning } });
  }

  if (!ONLY_AGENT) {
    // --- 2. Debian with systemd: our runtime beside systemd-nspawn ----------------------------------------
    if (!existsSync(DEBIAN_TAR)) await importTemplate({ source: 'debian:bookworm', out: DEBIAN_TAR, log: (l) => console.error(l) });
    const running = (pid: number): boolean => {
      const r = spawnSync('nsenter', ['-t', String(pid), '-a', 'systemctl', 'is-system-running'], { encoding: 'utf8', timeout: 10_000 });
      return /^(running|degraded)\s*$/.test(r.stdout);
    };
    const untilRunning = async (pid: () => number | null, t0: number): Promise<number> => {
      while (performance.now() - t0 < 120_000) {
        const p = pid();
        if (p && running(p)) return performance.now() - t0;
        await sleep(50);
      }
      throw new Error('no multi-user.target within 120 s');
    };
    // The PE switching a qemu machine to a Debian system: systemd is the VM's pid 1.
    addTemplate(`${base}/debdisk`, 'bookworm', DEBIAN_TAR);
    addSystem(`${base}/debdisk`, { name: 'system0', template: 'bookworm' });
    addSystem(`${base}/debdisk`, { name: 'system1', template: 'bookworm' });
    makeExt4(`${base}/debdisk`, `${base}/deb.img`, { label: 'anybios' });
    await fsp.rm(`${base}/debdisk`, { recursive: true, force: true });
    const debSwitch: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const m = new QemuMachine({ kernel: `${image}/vmlinuz`, initrd: `${image}/initrd.img`, append: 'console=ttyS0 panic=-1 anybios.root=LABEL=anybios anybios.boot=system0', disks: [`${base}/deb.img`], memMiB: 1024 });
      try {
        await m.waitFor(/system0 login: /, 300_000);
        debSwitch.push(performance.now() - m.startedAt);
      } finally {
        await m.close();
      }
      console.error(`debian switch run ${i + 1}: ${debSwitch.at(-1)!.toFixed(0)} ms`);
    }
    // The resident PE running system0 and system1 of the Debian template (shell runtime): qemu start → both
    // systemds `running`, as typed at the PE's console.
    const debResident: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const m = new QemuMachine({ kernel: `${image}/vmlinuz`, initrd: `${image}/initrd.img`, append: 'console=ttyS0 panic=-1 anybios.root=LABEL=anybios anybios.boot=system0,system1 anybios.mode=resident', disks: [`${base}/deb.img`], memMiB: 1024 });
      try {
        await m.waitFor(/Please press Enter to activate this console/, 300_000);
        m.send('\n');
        await sleep(500);
        m.send('for n in system0 system1; do until case $(anybios-enter $n systemctl is-system-running 2>/dev/null) in running|degraded) true;; *) false;; esac; do usleep 200000; done; done; echo both-running\n');
        await m.waitFor(/^both-running\n/m, 300_000);
        debResident.push(performance.now() - m.startedAt);
      } finally {
        await m.close();
      }
      console.error(`debian resident run ${i + 1}: ${debResident.at(-1)!.toFixed(0)} ms`);
    }
    const rt = await createRuntime({ checkDoc: docErrors, dataDir: `${base}/data` });
    cleanups.push(() => rt.destroy('deb0', { graceMs: 1000 }).catch(() => {}));
    const template: TemplateDoc = { _id: 'template:debian-bookworm', type: 'template', name: 'debian-bookworm', source: 'tar', sha256: await sha256Of(DEBIAN_TAR) };
    const spec: SystemDoc = { _id: 'system:deb0', type: 'system', name: 'deb0', kind: 'os', template: 'debian-bookworm', state: 'running', init: ['/sbin/init'], network: 'none' };
    await rt.materialize(spec, template, { tarball: DEBIAN_TAR }); // unpack the tarball once, outside the timing
    const ours: number[] = [];
    const oursStop: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await rt.destroy('deb0', { graceMs: 1000 });
      const t0 = performance.now();
      const o = await rt.start(spec, template, { tarball: DEBIAN_TAR });
      ours.push(await untilRunning(() => o.pid, t0));
      const t1 = performance.now();
      await rt.stop('deb0', { graceMs: 20_000 });
      oursStop.push(performance.now() - t1);
    }
    await rt.destroy('deb0', { graceMs: 1000 });
    // nspawn boots a directory: the same tarball unpacked, and a fresh copy for each run (as ours: a fresh layer).
    const nsTree = `${base}/nspawn-tree`;
    await fsp.mkdir(nsTree);
    spawnSync('tar', ['-xpf', DEBIAN_TAR, '-C', nsTree, '--numeric-owner']);
    const nspawn: number[] = [];
    const nspawnStop: number[] = [];
    const hasNspawn = spawnSync('sh', ['-c', 'command -v systemd-nspawn']).status === 0;
    for (let i = 0; hasNspawn && i < RUNS; i++) {
      const root = `${base}/nspawn-${i}`;
      spawnSync('cp', ['-a', '--reflink=auto', nsTree, root]);
      const t0 = performance.now();
      const p = spawn('systemd-nspawn', ['-D', root, '--boot', '--register=no', '--keep-unit', '--private-network', '-M', `anybios-bench-${i}`], { stdio: ['ignore', 'ignore', 'ignore'] });
      cleanups.push(async () => { if (p.exitCode === null) p.kill('SIGKILL'); });
      // The container's systemd: nspawn's grandchild (nspawn → its inner child = pid 1 of the container).
      const initPid = (): number | null => {
        const r = spawnSync('pgrep', ['-P', String(p.pid), '-x', 'systemd'], { encoding: 'utf8' });
        return Number.parseInt(r.stdout, 10) || null;
      };
      nspawn.push(await untilRunning(initPid, t0));
      const t1 = performance.now();
      const exited = new Promise((r) => p.on('exit', r));
      p.kill('SIGTERM'); // nspawn passes it on as SIGRTMIN+3
      await exited;
      nspawnStop.push(performance.now() - t1);
      await fsp.rm(root, { recursive: true, force: true });
    }
    const rows: Row[] = [
      { metric: 'PE switch: qemu start → system0 init on console', value: median(sw), unit: 'ms', note: `median of ${RUNS}; ${process.env.ANYBIOS_QEMU_ACCEL === 'kvm' ? 'KVM' : 'TCG'}` },
      { metric: 'PE resident: qemu start → system0+system1 inits', value: median(res), unit: 'ms', baseline: median(sw), note: 'baseline: switch' },
      { metric: 'PE switch to Debian: qemu start → login prompt', value: median(debSwitch), unit: 'ms', baseline: median(sw), note: 'systemd as the VM\'s pid 1; baseline: fixture switch' },
      { metric: 'PE resident, 2 Debian systems: qemu start → both running', value: median(debResident), unit: 'ms', baseline: median(debSwitch), note: 'shell runtime; baseline: switch to Debian' },
      { metric: 'Debian os system: start → multi-user (ours, crun)', value: median(ours), unit: 'ms', baseline: hasNspawn ? median(nspawn) : undefined, note: hasNspawn ? 'baseline: systemd-nspawn --boot' : 'systemd-nspawn missing' },
      { metric: 'Debian: systemd-nspawn --boot → multi-user', value: hasNspawn ? median(nspawn) : NaN, unit: 'ms' },
      { metric: 'Debian os system: stop (halt) (ours)', value: median(oursStop), unit: 'ms', baseline: hasNspawn ? median(nspawnStop) : undefined, note: 'baseline: nspawn SIGTERM → exit' },
      ...agentRows,
    ];
    report('boot', rows, { runs: RUNS, raw: { sw, res, debSwitch, debResident, ours, nspawn, oursStop, nspawnStop, agentStarted, agentRunning } });
  }
} finally {
  for (const c of cleanups.reverse()) await c();
  await fsp.rm(base, { recursive: true, force: true });
}
